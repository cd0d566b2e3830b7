"""Date and time formats of the control room (English locales).

Django's English formats show "Dec. 1, 2026, 7 a.m.": no minutes when they are
zero, no seconds, no zone. An operator reading a run's trail needs all three, in
an order that sorts: 2026-12-01 07:00:05 UTC (the zone is the active time zone,
TIME_ZONE or the one a page activates).
"""

DATETIME_FORMAT = "Y-m-d H:i:s T"
SHORT_DATETIME_FORMAT = "Y-m-d H:i:s T"
DATE_FORMAT = "Y-m-d"
SHORT_DATE_FORMAT = "Y-m-d"
TIME_FORMAT = "H:i:s"
