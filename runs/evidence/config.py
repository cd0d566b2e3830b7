"""Configuration changes in the ledger, whichever door they came through.

One mechanism for every door (admin forms and inlines, the API, management
commands, definitions import, the shell): receivers of `pre_save`/`post_save`,
`pre_delete`/`post_delete` and `m2m_changed`, connected only for the models in
`AUDITED`. A `pre_save` reads the row as it stands in the database (the
`before`), `post_save` compares it with what was written, and a change appends
one audit event to the global chain in the caller's transaction (admin views are
atomic, so the event and the change commit together). Saves that change no
audited field write nothing; `bulk_create` and `QuerySet.update` send no signals,
so the services that use them on these models record their own events
(`version.published`, `automation.retired`).

Workspaces and memberships (who holds which role where) are audited like the
rest: `membership.created` / `membership.deleted` name the user, workspace and role.

Verbs are `<name>.created|changed|deleted` and `<name>.<relation>_changed`;
`before`/`after` carry the changed fields only (all of them on create and
delete), with related users, groups, automations and permissions by name. Fields
whose name says they hold a secret (`secret`, `password`, `token`, …) show as
`REDACTED`, never their value; a change to one still shows as a change.

Who: the person of the current request (`AuditActorMiddleware` keeps it; DRF's
token authentication sets the same `request.user`), else an actor pinned with
`config_actor(...)` (commands, services), else "system".
"""

import contextvars
import datetime
import re
from contextlib import contextmanager
from dataclasses import dataclass

from django.apps import apps
from django.conf import settings
from django.contrib.auth import get_user_model
from django.db.models import signals

REDACTED = "[redacted]"
_SECRET_NAME = re.compile(
    r"secret|password|passphrase|token|credential|private|(^|_)key$"
)


@dataclass(frozen=True)
class Audited:
    """How one model's changes are recorded: `name` is the verb prefix; `exclude`
    names fields that are runtime state or timestamps, not configuration."""

    name: str
    exclude: frozenset = frozenset()
    relations: tuple = ()  # many-to-many fields recorded as `<name>.<field>_changed`
    secret: frozenset = frozenset()  # redacted on top of the name rule
    # foreign keys recorded by a name of the related row (field → its attribute,
    # e.g. "workspace": "slug"; USERNAME: the user model's) rather than its id
    names: tuple = ()

    def name_attrs(self) -> dict[str, str]:
        return {
            field: get_user_model().USERNAME_FIELD if attr is USERNAME else attr
            for field, attr in self.names
        }


USERNAME = object()  # Audited.names: the user model's USERNAME_FIELD


AUDITED = {
    "automations.automation": Audited(
        "automation", frozenset({"created_at", "updated_at"}), ("owners",)
    ),
    "automations.automationversion": Audited("version", frozenset({"created_at"})),
    "automations.step": Audited("step"),
    "automations.trigger": Audited("trigger", frozenset({"schedule", "last_fired_at"})),
    # who holds which role where (issue 15)
    "automations.workspace": Audited("workspace", frozenset({"created_at"})),
    "automations.membership": Audited(
        "membership",
        frozenset({"created_at"}),
        names=(("user", USERNAME), ("workspace", "slug")),
    ),
    "runs.automationsubscription": Audited("subscription", frozenset({"created_at"})),
    "runs.webhook": Audited(
        "webhook", frozenset({"created_at"}), secret=frozenset({"secret"})
    ),
    "runs.apiclient": Audited(
        "api_client", frozenset({"created_at"}), ("automations",)
    ),
    # runs.ApiToken is not here: its primary key is the token's digest (an audit
    # event's object_id would carry it), and its only doors, api_token_create and
    # api_token_revoke (admin's delete too), record api_token.created|revoked
    # with the user, name and expiry (runs.api.tokens)
    # secrets by workspace slug, name and key names; the values' ciphertext
    # shows as redacted
    "runs.secret": Audited(
        "secret",
        frozenset({"created_at", "updated_at"}),
        secret=frozenset({"ciphertext"}),
        names=(("workspace", "slug"),),
    ),
    "auth.group": Audited("group", relations=("permissions",)),
    "__user__": Audited(
        "user", frozenset({"last_login", "date_joined"}), ("groups", "user_permissions")
    ),
}


def config_audit_register(label: str, spec: Audited) -> None:
    """Audit one more model (`app_label.modelname`), e.g. from another app's
    `ready()`; call before the receivers connect or call `connect()` again."""
    AUDITED[label.lower()] = spec


# -- who ----------------------------------------------------------------------

_pinned = contextvars.ContextVar("runs_config_actor", default=None)
_request = contextvars.ContextVar("runs_config_request", default=None)


@contextmanager
def config_actor(actor=None, label: str = ""):
    """Record configuration changes made inside the block as done by `actor`
    (a user) or `label` (e.g. "manage.py import_automations"); with neither, the
    actor already in effect stays."""
    if actor is None and not label:
        yield
        return
    token = _pinned.set((actor, label))
    try:
        yield
    finally:
        _pinned.reset(token)


class AuditActorMiddleware:
    """Keeps the request for the receivers: its user is read when a change is
    recorded, so a user DRF authenticates by token later is seen too."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        token = _request.set(request)
        try:
            return self.get_response(request)
        finally:
            _request.reset(token)


def current_actor():
    """(user, label) of whoever makes configuration changes now."""
    pinned = _pinned.get()
    if pinned is not None:
        return pinned
    request = _request.get()
    user = getattr(request, "user", None) if request is not None else None
    if user is not None and user.is_authenticated:
        return user, ""
    return None, "system"


# -- what ---------------------------------------------------------------------


def _spec(model) -> Audited | None:
    label = model._meta.label_lower
    if label == settings.AUTH_USER_MODEL.lower():
        return AUDITED.get(label) or AUDITED["__user__"]
    return AUDITED.get(label)


def _fields(model, spec):
    return [
        f
        for f in model._meta.concrete_fields
        if not f.primary_key and f.name not in spec.exclude
    ]


def _is_secret(name: str, spec) -> bool:
    return name in spec.secret or bool(_SECRET_NAME.search(name))


def _plain(value):
    """A JSON value for before/after (the ledger's canonical JSON takes it)."""
    if value is None or isinstance(value, (bool, int, float, str, list, dict)):
        return value
    if isinstance(value, datetime.datetime):
        return value.astimezone(datetime.UTC).isoformat()
    if isinstance(value, datetime.date):
        return value.isoformat()
    return str(value)


def _row_from_db(model, spec, pk) -> dict | None:
    fields = _fields(model, spec)
    names = spec.name_attrs()
    columns = [
        f"{f.name}__{names[f.name]}" if f.name in names else f.attname for f in fields
    ]
    row = model._base_manager.filter(pk=pk).values(*columns).first()
    if row is None:
        return None
    return {f.name: _plain(row[c]) for f, c in zip(fields, columns, strict=True)}


def _row_from_instance(instance, spec) -> dict:
    row, names = {}, spec.name_attrs()
    for f in _fields(type(instance), spec):
        value = f.value_from_object(instance)
        if f.name in names and value is not None:
            value = getattr(getattr(instance, f.name), names[f.name])
        row[f.name] = _plain(value)
    return row


def _label(obj) -> str:
    meta = obj._meta
    if meta.label_lower == settings.AUTH_USER_MODEL.lower():
        return obj.get_username()
    if meta.label_lower == "auth.permission":
        return f"{obj.content_type.app_label}.{obj.codename}"
    if meta.label_lower == "automations.automation":
        return obj.slug
    if meta.label_lower == "auth.group":
        return obj.name
    if meta.label_lower == "automations.workspace":
        return obj.slug
    return str(obj)


def _related(instance, field: str) -> list[str]:
    related = getattr(instance, field).all()
    if related.model._meta.label_lower == "auth.permission":
        related = related.select_related("content_type")
    return sorted(_label(obj) for obj in related)


def _shown(name: str, value, spec):
    if _is_secret(name, spec):
        return REDACTED if value not in (None, "") else value
    return value


def _record(verb: str, obj, before: dict, after: dict) -> None:
    from runs import ledger  # runs.ledger imports runs.models, which load after apps

    actor, label = current_actor()
    if actor is not None and getattr(actor, "pk", None) is not None:
        gone = obj._meta.label_lower == settings.AUTH_USER_MODEL.lower() and (
            verb.endswith(".deleted") and obj.pk == actor.pk
        )
        if gone:  # a person deleting their own account: keep the name only
            actor, label = None, actor.get_username()
    ledger.append(
        events=[
            ledger.audit_event(
                verb=verb,
                obj=obj,
                actor=actor,
                actor_label=label,
                before=before,
                after=after,
            )
        ]
    )


# -- receivers ----------------------------------------------------------------

_SKIP = object()


def _pre_save(sender, instance, update_fields=None, **kwargs):
    spec = _spec(sender)
    names = {f.name for f in _fields(sender, spec)} | {
        f.attname for f in _fields(sender, spec)
    }
    if update_fields is not None and not names.intersection(update_fields):
        instance._config_before = _SKIP  # e.g. last_login: nothing audited changes
        return
    instance._config_before = (
        _row_from_db(sender, spec, instance.pk) if instance.pk is not None else None
    )


def _post_save(sender, instance, created, **kwargs):
    before = instance.__dict__.pop("_config_before", None)
    if before is _SKIP:
        return
    spec = _spec(sender)
    after = _row_from_instance(instance, spec)
    if before is None:
        shown = {name: _shown(name, value, spec) for name, value in after.items()}
        _record(f"{spec.name}.created", instance, {}, shown)
        return
    changed = [name for name in after if before.get(name) != after[name]]
    if not changed:
        return
    _record(
        f"{spec.name}.changed",
        instance,
        {name: _shown(name, before.get(name), spec) for name in changed},
        {name: _shown(name, after[name], spec) for name in changed},
    )


def _pre_delete(sender, instance, **kwargs):
    spec = _spec(sender)
    row = _row_from_instance(instance, spec)
    before = {name: _shown(name, value, spec) for name, value in row.items()}
    for field in spec.relations:
        before[field] = _related(instance, field)
    # the other side: a deleted group leaves its members' `groups` silently (the
    # link rows go without m2m_changed), so the event names them: "groups_of"
    for owner, field in _THROUGH.values():
        if owner._meta.get_field(field).related_model is sender:
            holders = owner._base_manager.filter(**{field: instance})
            before[f"{field}_of"] = sorted(_label(obj) for obj in holders)
    instance._config_deleted = before


def _post_delete(sender, instance, **kwargs):
    spec = _spec(sender)
    before = instance.__dict__.pop("_config_deleted", None)
    if before is None:
        before = _row_from_instance(instance, spec)
    _record(f"{spec.name}.deleted", instance, before, {})


_THROUGH: dict = {}  # through model -> (owner model, field name)


def _m2m_changed(sender, instance, action, reverse, pk_set, **kwargs):
    owner, field = _THROUGH[sender]
    key = f"_config_m2m_{field}"
    if action.startswith("pre_"):
        if not reverse:
            owners = [instance]
        elif action == "pre_clear":
            owners = list(owner._base_manager.filter(**{field: instance}))
        else:
            owners = list(owner._base_manager.filter(pk__in=pk_set or ()))
        setattr(instance, key, [(o, _related(o, field)) for o in owners])
        return
    spec = _spec(owner)
    for obj, before in instance.__dict__.pop(key, []):
        after = _related(obj, field)
        if after != before:
            _record(
                f"{spec.name}.{field}_changed", obj, {field: before}, {field: after}
            )


def connect() -> None:
    """Connect the receivers for every model in AUDITED (from `RunsConfig.ready`)."""
    for label in AUDITED:
        if label == "__user__":
            label = settings.AUTH_USER_MODEL
        try:
            model = apps.get_model(label)
        except LookupError:
            continue
        spec = _spec(model)
        uid = f"runs.evidence.config:{model._meta.label_lower}"
        signals.pre_save.connect(_pre_save, sender=model, dispatch_uid=uid)
        signals.post_save.connect(_post_save, sender=model, dispatch_uid=uid)
        signals.pre_delete.connect(_pre_delete, sender=model, dispatch_uid=uid)
        signals.post_delete.connect(_post_delete, sender=model, dispatch_uid=uid)
        for field in spec.relations:
            through = model._meta.get_field(field).remote_field.through
            _THROUGH[through] = (model, field)
            signals.m2m_changed.connect(
                _m2m_changed, sender=through, dispatch_uid=f"{uid}:{field}"
            )
