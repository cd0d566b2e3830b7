from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError

from automations.models import WorkspaceRole
from automations.services import workspace_grant
from automations.workspaces import UnknownWorkspace, workspace_get
from runs.evidence.config import config_actor


class Command(BaseCommand):
    help = (
        "Give a person a role in one workspace: "
        "manage.py workspace_grant USERNAME WORKSPACE ROLE [--revoke]."
    )

    def add_arguments(self, parser):
        parser.add_argument("username")
        parser.add_argument("workspace")
        parser.add_argument("role", choices=WorkspaceRole.values)
        parser.add_argument(
            "--revoke", action="store_true", help="take the role back instead"
        )

    def handle(self, *args, username, workspace, role, revoke, **options):
        User = get_user_model()
        user = User.objects.filter(**{User.USERNAME_FIELD: username}).first()
        if user is None:
            raise CommandError(f"no user named {username!r}")
        try:
            found = workspace_get(workspace)
        except UnknownWorkspace as exc:
            raise CommandError(str(exc)) from None
        with config_actor(label="manage.py workspace_grant"):
            changed = workspace_grant(
                user=user, workspace=found, role=role, revoke=revoke
            )
        what = "revoked" if revoke else "granted"
        if not changed:
            what = "was not held" if revoke else "already held"
        self.stdout.write(f"{username}: {role} in {found.slug} {what}")
