"""Robots: external processes (Robocorp robots, unchanged) as steps.

`runner` starts one robot per step run with the `RC_*` environment the
`robocorp-workitems` client reads; `views` serve the work-items API it calls;
`services` are the writes behind that API, through the same machines and ledger as
Python actions. See docs/robots.md.
"""
