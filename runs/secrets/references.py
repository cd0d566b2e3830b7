"""`{"$secret": "NAME.KEY"}` in step parameters: checked at import, resolved only
at the call, and redacted from whatever would be written.

A reference stands wherever a string may (nested in objects and lists, e.g.
`builtin.http_request` headers). Definitions, versions, run items, audit events
and exports keep the reference; the action gets the value (`resolve`). Robot
steps name the secrets their robot may read through the Vault API
(`"secrets": ["NAME"]` in the step's parameters). Whatever a step run writes
from the outside world (a failure cause, an HTTP error body, a robot's log, a
step run's error, outputs) goes through `Redactor.text`/`Redactor.value` first:
each value of a secret the step refers to or names is replaced by its reference.

Secrets belong to a workspace: a reference names a secret of its automation's
workspace (checked there at import and publish, looked up there at the call); a
secret of the same name in another workspace is unknown to it.
"""

import json
import re
from dataclasses import dataclass, field
from urllib.parse import quote, quote_plus

from .crypto import UndecryptableError
from .models import KEY_RE, NAME_RE, Secret

REFERENCE = "$secret"
ROBOT_SECRETS = "secrets"  # a robot step's parameter naming the secrets it reads
MAX_ROBOT_SECRETS = 50
MIN_CUT = 4  # the shortest start of a cut-off value that is redacted


class ReferenceError(ValueError):
    """A malformed reference, or one to an unknown secret or key; the message
    names the path and the reference, never a value."""


class SecretUnavailable(LookupError):
    """A reference whose secret or key is gone since the version was imported."""


def is_reference(value) -> bool:
    return isinstance(value, dict) and REFERENCE in value


def parse(reference, path: str = "") -> tuple[str, str]:
    where = f"{path}: " if path else ""
    if not isinstance(reference, str) or "." not in reference:
        raise ReferenceError(
            f'{where}a secret reference is {{"$secret": "NAME.KEY"}}, got {reference!r}'
        )
    name, key = reference.split(".", 1)
    if not re.match(NAME_RE, name) or not re.match(KEY_RE, key):
        raise ReferenceError(f"{where}{reference!r} is not NAME.KEY")
    return name, key


def references(value, path: str = "parameters") -> dict[str, str]:
    """Every reference in `value`: {path: "NAME.KEY"}; ReferenceError when one
    is malformed (`{"$secret": ...}` with other keys, or not NAME.KEY)."""
    found: dict[str, str] = {}
    stack = [(path, value)]
    while stack:
        where, item = stack.pop()
        if isinstance(item, dict):
            if REFERENCE in item:
                if len(item) != 1:
                    raise ReferenceError(
                        f'{where}: a secret reference has the one key "$secret"'
                    )
                parse(item[REFERENCE], where)
                found[where] = item[REFERENCE]
                continue
            stack.extend((f"{where}.{k}", v) for k, v in item.items())
        elif isinstance(item, list):
            stack.extend((f"{where}[{i}]", v) for i, v in enumerate(item))
    return found


def named_secrets(parameters: dict) -> list[str]:
    named = parameters.get(ROBOT_SECRETS, []) if isinstance(parameters, dict) else []
    return list(named) if isinstance(named, list) else []


def in_workspace(workspace):
    """The secrets of `workspace` (its id, or its slug in a definition)."""
    if isinstance(workspace, str):
        return Secret.objects.filter(workspace__slug=workspace)
    return Secret.objects.filter(workspace_id=workspace)


def parameters_problem(parameters: dict, *, workspace, robot: bool = False) -> str:
    """What is wrong with the secrets of a step's parameters ("" when nothing):
    a malformed reference, a reference to an unknown secret or key, or (robot
    steps) a `secrets` list that is not names of existing secrets; "existing"
    means in `workspace` (an id, or a definition's slug)."""
    try:
        found = references(parameters)
    except ReferenceError as exc:
        return str(exc)
    wanted = {parse(ref)[0] for ref in found.values()}
    named = []
    if robot and ROBOT_SECRETS in parameters:
        named = parameters[ROBOT_SECRETS]
        if (
            not isinstance(named, list)
            or len(named) > MAX_ROBOT_SECRETS
            or not all(isinstance(n, str) and re.match(NAME_RE, n) for n in named)
        ):
            return (
                f"parameters.{ROBOT_SECRETS}: a list of at most {MAX_ROBOT_SECRETS} "
                "secret names"
            )
        wanted |= set(named)
    if not wanted:
        return ""
    keys = dict(
        in_workspace(workspace).filter(name__in=wanted).values_list("name", "keys")
    )
    for name in named:
        if name not in keys:
            return f"parameters.{ROBOT_SECRETS}: no secret {name!r}"
    for where, ref in sorted(found.items()):
        name, key = parse(ref)
        if name not in keys:
            return f"{where}: no secret {name!r} (reference {ref!r})"
        if key not in keys[name]:
            known = ", ".join(keys[name]) or "none"
            return f"{where}: secret {name!r} has no key {key!r} (keys: {known})"
    return ""


# -- at the call ----------------------------------------------------------------


def _forms(value: str) -> list[str]:
    """How a value may come back in text: as is, JSON-escaped, URL-encoded."""
    forms = {value, json.dumps(value)[1:-1], quote(value, safe=""), quote_plus(value)}
    return sorted((f for f in forms if f), key=len, reverse=True)


@dataclass
class Redactor:
    """Replaces secret values by their references. `pairs` are (value, label),
    longest value first; an empty Redactor changes nothing."""

    pairs: list = field(default_factory=list)

    def text(self, text):
        if not self.pairs or not isinstance(text, str) or not text:
            return text
        for value, label in self.pairs:
            if value in text:
                text = text.replace(value, label)
        # a value cut off at the end (an action that kept the first 200
        # characters of an error body): its start goes too
        for value, label in self.pairs:
            for size in range(len(value) - 1, MIN_CUT - 1, -1):
                if text.endswith(value[:size]):
                    text = text[:-size] + label
                    break
        return text

    def value(self, value):
        """`value` (JSON: dicts, lists, strings) with every string redacted."""
        if not self.pairs:
            return value
        if isinstance(value, str):
            return self.text(value)
        if isinstance(value, dict):
            return {self.text(k): self.value(v) for k, v in value.items()}
        if isinstance(value, list):
            return [self.value(v) for v in value]
        return value


def label(reference: str) -> str:
    return f"[$secret {reference}]"


def _redactor(values) -> Redactor:
    """The Redactor of (name, values) pairs."""
    pairs = []
    for name, secret_values in values:
        for key, value in secret_values.items():
            for form in _forms(value):
                pairs.append((form, label(f"{name}.{key}")))
    pairs.sort(key=lambda pair: len(pair[0]), reverse=True)
    return Redactor(pairs)


def _load(names, workspace_id, *, strict: bool = True) -> list[tuple[str, dict]]:
    """(name, values) of the secrets `names` that exist in the workspace
    `workspace_id` (None, to redact: in every workspace, so a value of whichever
    one the step used goes). One no key opens is SecretUnavailable (`strict`: it
    was to be used) or left out (to redact: no one could have read it)."""
    rows = Secret.objects.filter(name__in=names)
    if workspace_id is not None:
        rows = rows.filter(workspace_id=workspace_id)
    values = []
    for secret in rows:
        try:
            values.append((secret.name, secret.get_values()))
        except UndecryptableError:
            if strict:
                raise SecretUnavailable(
                    f"secret {secret.name!r}: no key in RUNS_SECRET_KEYS decrypts it"
                ) from None
    return values


@dataclass
class Resolved:
    parameters: dict
    redactor: Redactor


def resolve(parameters: dict, workspace_id: int) -> Resolved:
    """The parameters with every reference replaced by its value from the
    secrets of the workspace `workspace_id` (the step's automation's), and the
    Redactor of those values (and of the secrets a robot step names).
    SecretUnavailable names a reference whose secret or key is gone."""
    try:
        found = references(parameters)
    except ReferenceError as exc:
        raise SecretUnavailable(str(exc)) from None
    names = {parse(ref)[0] for ref in found.values()} | set(named_secrets(parameters))
    if not names:
        return Resolved(parameters, Redactor())
    loaded = _load(names, workspace_id)
    values = dict(loaded)

    def put(item, where):
        if isinstance(item, dict):
            if REFERENCE in item:
                name, key = parse(item[REFERENCE])
                if key not in values.get(name, {}):
                    raise SecretUnavailable(
                        f"{where}: secret reference {item[REFERENCE]!r} is "
                        "unavailable (the secret or its key was removed)"
                    )
                return values[name][key]
            return {k: put(v, f"{where}.{k}") for k, v in item.items()}
        if isinstance(item, list):
            return [put(v, f"{where}[{i}]") for i, v in enumerate(item)]
        return item

    return Resolved(put(parameters, "parameters"), _redactor(loaded))


def redactor_for(parameters: dict, workspace_id: int | None = None) -> Redactor:
    """The Redactor of a step's secrets (an empty one, without a query, when the
    step neither refers to nor names any): those of `workspace_id`, or of the
    same names in every workspace when the caller does not know it (redacting
    more never shows less)."""
    try:
        found = references(parameters)
    except ReferenceError:
        found = {}
    names = set()
    for ref in found.values():
        try:
            names.add(parse(ref)[0])
        except ReferenceError:
            continue
    names |= {n for n in named_secrets(parameters) if isinstance(n, str)}
    if not names:
        return Redactor()
    return _redactor(_load(names, workspace_id, strict=False))
