"""The admin control room: runs, their items and ledger, operator actions.

Modules: `runs` (changelist, run page, actions), `ledger` (engine and ledger
tables), `run_actions` (what each action does and needs), `changelist` (parts that
keep big tables fast), `charts` and `display` (HTML pieces).
"""

from . import ledger, reports, runs  # noqa: F401  (registers the ModelAdmins)
