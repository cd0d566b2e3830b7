"""The admin control room: runs, their items and ledger, operator actions.

Modules: `runs` (changelist, run page, actions), `ledger` (engine and ledger
tables), `run_actions` (what each action does and needs), `changelist` (parts that
keep big tables fast), `charts` and `display` (HTML pieces).
"""

from django.contrib import admin
from django.contrib.admin import AdminSite

from . import ledger, reports, runs  # noqa: F401  (registers the ModelAdmins)

# The control room's name in the header and the window title, unless the host
# project named its admin site itself.
if admin.site.site_header == AdminSite.site_header:
    admin.site.site_header = "Runs control room"
if admin.site.site_title == AdminSite.site_title:
    admin.site.site_title = "Runs control room"
