"""System checks of secrets: the encryption keys, and credentials written as
literals into step parameters (where every run item and export would copy them)."""

import re

from django.core.checks import Error, Tags, Warning, register
from django.db import DatabaseError

from runs.conf import runs_settings

from .crypto import SecretKeyError, fernet
from .references import ROBOT_SECRETS, is_reference

CREDENTIAL_NAME = re.compile(
    r"authorization|password|passwd|passphrase|secret|token|api[-_]?key|"
    r"private[-_]?key|credential|cookie",
    re.IGNORECASE,
)
CREDENTIAL_VALUE = re.compile(r"^(bearer|basic|token)\s+\S", re.IGNORECASE)
MAX_FINDINGS = 50


@register()
def secret_keys_valid(app_configs=None, **kwargs):
    try:
        fernet()
    except SecretKeyError as exc:
        return [
            Error(
                str(exc),
                hint='Generate one with python -c "from cryptography.fernet import '
                'Fernet; print(Fernet.generate_key().decode())".',
                id="runs.E311",
            )
        ]
    return []


@register(deploy=True)
def secret_keys_set(app_configs=None, **kwargs):
    if runs_settings.SECRET_KEYS:
        return []
    return [
        Warning(
            "RUNS_SECRET_KEYS is not set: secrets and webhook secrets are encrypted "
            "with a key derived from SECRET_KEY.",
            hint="Set RUNS_SECRET_KEYS to a Fernet key of its own (newest first, "
            "comma-separated), then run manage.py secrets_reencrypt.",
            id="runs.W311",
        )
    ]


def literal_credentials(parameters, path="parameters"):
    """Paths in `parameters` that hold a literal credential: a string under a
    name such as Authorization, password, token or api_key, or a string that
    starts like an Authorization header value."""
    found = []
    stack = [(path, None, parameters)]
    while stack:
        where, name, value = stack.pop()
        if is_reference(value):
            continue
        if isinstance(value, dict):
            stack.extend(
                (f"{where}.{k}", k, v)
                for k, v in value.items()
                # a robot step's list of the secret names it reads
                if not (where == path and k == ROBOT_SECRETS)
            )
        elif isinstance(value, list):
            stack.extend((f"{where}[{i}]", name, v) for i, v in enumerate(value))
        elif isinstance(value, str) and value:
            named = isinstance(name, str) and CREDENTIAL_NAME.search(name)
            if named or CREDENTIAL_VALUE.match(value):
                found.append(where)
    return sorted(found)


@register(Tags.database)
def literal_credentials_in_steps(app_configs=None, databases=None, **kwargs):
    if not databases:
        return []
    from automations.models import Step

    warnings = []
    try:
        steps = Step.objects.select_related("version__automation").only(
            "name", "parameters", "version__number", "version__automation__slug"
        )
        for step in steps.iterator(chunk_size=500):
            for where in literal_credentials(step.parameters):
                version = step.version
                warnings.append(
                    Warning(
                        f"{version.automation.slug} v{version.number}, step "
                        f"{step.name}: {where} looks like a literal credential; "
                        "run items, audit exports and version pages copy it.",
                        hint="Store it with manage.py secret_set and refer to it as "
                        '{"$secret": "NAME.KEY"}.',
                        obj=step,
                        id="runs.W312",
                    )
                )
                if len(warnings) >= MAX_FINDINGS:
                    return warnings
    except DatabaseError:  # not migrated yet
        return []
    return warnings
