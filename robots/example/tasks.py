"""Credit union loan applications: a robot written for Robocorp Control Room.

Each input work item is one application `{"applicant", "amount", "income"}`.
The robot checks it and, for a sound application, creates an output work item with
its decision and a decision letter attached as a file. An application without an
amount fails as a BUSINESS exception (not retried); the core banking system being
unreachable (simulated by `"applicant": "flaky"`, which succeeds on its second
attempt when FLAKY_MARKER_DIR is set) fails as an APPLICATION exception (retried).

Nothing here knows about Runs: it uses `robocorp.tasks` and `robocorp.workitems`
exactly as on Control Room.
"""

import os
from pathlib import Path

from robocorp import workitems
from robocorp.tasks import get_output_dir, task
from robocorp.workitems import ApplicationException, BusinessException


def _core_banking_available(applicant: str) -> bool:
    if applicant != "flaky":
        return True
    marker_dir = os.environ.get("FLAKY_MARKER_DIR")
    if not marker_dir:
        return False
    marker = Path(marker_dir) / "flaky-seen"
    if marker.exists():
        return True
    marker.write_text("first attempt failed")
    return False


@task
def review_applications():
    out_dir = Path(get_output_dir() or ".")
    out_dir.mkdir(parents=True, exist_ok=True)
    for item in workitems.inputs:
        with item:
            application = item.payload or {}
            applicant = application.get("applicant", "")
            if application.get("amount") in (None, ""):
                raise BusinessException(
                    code="MISSING_AMOUNT", message=f"{applicant}: no amount requested"
                )
            if not _core_banking_available(applicant):
                raise ApplicationException(
                    code="CORE_BANKING_DOWN", message="core banking did not answer"
                )
            amount = float(application["amount"])
            income = float(application.get("income") or 0)
            decision = "approved" if amount <= income * 0.4 else "referred"
            letter = out_dir / f"decision-{item.id}.txt"
            letter.write_text(
                f"Dear {applicant},\nyour application for {amount:.2f} is {decision}.\n"
            )
            workitems.outputs.create(
                payload={
                    "subject": applicant,
                    "applicant": applicant,
                    "amount": amount,
                    "decision": decision,
                },
                files=[str(letter)],
            )
