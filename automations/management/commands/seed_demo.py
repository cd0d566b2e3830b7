import datetime
import json
import secrets
from pathlib import Path

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.core.management.base import BaseCommand
from django.db import transaction
from django.utils import timezone

from automations.definitions import automation_import
from automations.models import Automation, Subject

FIXTURE = Path(__file__).resolve().parents[2] / "fixtures" / "credit_union.json"

ACCOUNTS = [
    # reference, name, status, days overdue, manager e-mail
    ("ACC-1001", "Harbor Bakery LLC", "active", 12, "maria.lopez@cu.example"),
    ("ACC-1002", "Northside Tools", "active", 3, "maria.lopez@cu.example"),
    ("ACC-1003", "Delta Shipping", "active", 40, "ken.ito@cu.example"),
    ("ACC-1004", "Quarry Lane Dental", "dormant", 25, "ken.ito@cu.example"),
    ("ACC-1005", "Pine & Co", "active", 7, ""),
    ("ACC-1006", "Riverside Farm Coop", "active", -20, "ana.silva@cu.example"),
    ("ACC-1007", "Blue Fern Studio", "active", 1, "ana.silva@cu.example"),
]
SUPPLIERS = [
    ("SUP-01", "CoreBanking Cloud", 10, "attest@corebanking.example"),
    ("SUP-02", "CardNet Processing", 25, "compliance@cardnet.example"),
    ("SUP-03", "PrintMail Services", 90, "ops@printmail.example"),
]


class Command(BaseCommand):
    help = (
        "Seed the credit-union demo: subjects, its automations (and a quarterly "
        "review job that runs two of them in order), demo users and a few finished "
        "runs. With --admin, (re)create the 'admin' superuser and print "
        "its password."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--admin", action="store_true", help="create the admin login"
        )
        parser.add_argument(
            "--no-runs", action="store_true", help="do not execute demo runs"
        )

    def handle(self, *args, admin=False, no_runs=False, **options):
        User = get_user_model()
        today = timezone.localdate()
        with transaction.atomic():
            for ref, name, status, overdue, manager in ACCOUNTS:
                Subject.objects.update_or_create(
                    kind="account",
                    reference=ref,
                    defaults={
                        "name": name,
                        "status": status,
                        "due_on": today - datetime.timedelta(days=overdue),
                        "attributes": {"account": ref, "manager_email": manager},
                    },
                )
            for ref, name, expires_in, contact in SUPPLIERS:
                Subject.objects.update_or_create(
                    kind="supplier",
                    reference=ref,
                    defaults={
                        "name": name,
                        "due_on": today + datetime.timedelta(days=expires_in),
                        "attributes": {"supplier": ref, "contact": contact},
                    },
                )
            for definition in json.loads(FIXTURE.read_text()):
                result = automation_import(definition)
                self.stdout.write(f"automation {result.summary()}")
            for username, group in (
                ("olivia", "Operator"),
                ("victor", "Viewer"),
                ("ada", "Author"),
            ):
                user, created = User.objects.get_or_create(
                    username=username,
                    defaults={"is_staff": True, "email": f"{username}@cu.example"},
                )
                if created:
                    user.set_password(f"{username}-demo")
                    user.save()
                group_obj = Group.objects.filter(name=group).first()
                if group_obj:
                    user.groups.add(group_obj)
        if admin:
            password = secrets.token_urlsafe(12)
            user, _ = User.objects.get_or_create(
                username="admin", defaults={"email": "admin@cu.example"}
            )
            user.is_staff = user.is_superuser = True
            user.set_password(password)
            user.save()
            self.admin_password = password
        if not no_runs:
            self._demo_runs()
        if admin:
            self.stdout.write(
                self.style.SUCCESS(
                    f"admin login: username 'admin', password '{self.admin_password}'"
                )
            )

    def _demo_runs(self):
        from runs.engine import run_until_idle
        from runs.services import run_start

        for slug, inputs in (
            ("kyc-review", None),
            ("supplier-attestation", None),
            (
                "aml-monitor-failure",
                [{"monitor": "wire-velocity", "result": "threshold breached"}],
            ),
            # waits in awaiting_input for the six-digit code (docs/human-input.md)
            (
                "payment-release",
                [
                    {
                        "payment": "PAY-2041",
                        "subject": "PAY-2041",
                        "amount": 12500,
                        "beneficiary": "CoreBanking Cloud",
                    }
                ],
            ),
        ):
            automation = Automation.objects.get(slug=slug)
            run = run_start(
                automation=automation, inputs=inputs, actor_label="seed_demo"
            )
            run_until_idle(run)
            run.refresh_from_db()
            self.stdout.write(f"demo run #{run.number} of {slug}: {run.state}")
        self._demo_job()

    def _demo_job(self):
        """The quarterly review, a job: its KYC child run leaves a business failure
        (an account without a manager's e-mail), which a person resolves in the
        child; the job's retry then takes the child's outcome and runs the supplier
        attestations."""
        from runs.engine import run_until_idle
        from runs.models import Run
        from runs.services import run_resolve, run_retry, run_start
        from runs.states import RunState

        job = Automation.objects.get(slug="quarterly-review")
        run = run_start(
            automation=job, inputs=[{"quarter": "demo"}], actor_label="seed_demo"
        )
        run_until_idle()
        run.refresh_from_db()
        self.stdout.write(f"demo job run #{run.number} of {job.slug}: {run.state}")
        if run.state != RunState.UNRESOLVED:
            return
        for child in Run.objects.filter(parent=run, state=RunState.UNRESOLVED):
            run_resolve(
                child, note="manager e-mail missing: evidence requested by phone"
            )
        run_retry(run, reason="the KYC review's failure was resolved")
        run_until_idle()
        run.refresh_from_db()
        children = ", ".join(
            f"#{n} {slug} {state}"
            for n, slug, state in Run.objects.filter(parent=run)
            .order_by("number")
            .values_list("number", "automation__slug", "state")
        )
        self.stdout.write(
            f"demo job run #{run.number} after resolve and retry: {run.state} "
            f"(child runs {children})"
        )
