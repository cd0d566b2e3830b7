"""Step conditions: a registered predicate or a small declarative filter; never eval.

    {"predicate": "demo.is_active"}
    {"field": "status", "op": "eq", "value": "active"}
    {"all": [cond, ...]}  {"any": [cond, ...]}  {"not": cond}

Operators: eq, ne, in, not_in, gt, gte, lt, lte, exists, missing, contains.
"""

from .actions import get_predicate

OPERATORS = {
    "eq": lambda a, b: a == b,
    "ne": lambda a, b: a != b,
    "in": lambda a, b: a in b,
    "not_in": lambda a, b: a not in b,
    "gt": lambda a, b: a is not None and a > b,
    "gte": lambda a, b: a is not None and a >= b,
    "lt": lambda a, b: a is not None and a < b,
    "lte": lambda a, b: a is not None and a <= b,
    "contains": lambda a, b: a is not None and b in a,
}
_MISSING = object()


class InvalidCondition(ValueError):
    pass


def validate_condition(condition, path="condition") -> None:
    """Raise InvalidCondition naming the bad part of `condition`."""
    if condition is None:
        return
    if not isinstance(condition, dict) or not condition:
        raise InvalidCondition(f"{path}: must be an object")
    if "predicate" in condition:
        if not isinstance(condition["predicate"], str):
            raise InvalidCondition(f"{path}.predicate: must be a string")
        return
    for combinator in ("all", "any"):
        if combinator in condition:
            parts = condition[combinator]
            if not isinstance(parts, list) or not parts:
                raise InvalidCondition(f"{path}.{combinator}: must be a non-empty list")
            for index, part in enumerate(parts):
                validate_condition(part, f"{path}.{combinator}[{index}]")
            return
    if "not" in condition:
        validate_condition(condition["not"], f"{path}.not")
        return
    if not isinstance(condition.get("field"), str):
        raise InvalidCondition(f"{path}.field: must be a string")
    op = condition.get("op", "eq")
    if op not in OPERATORS and op not in ("exists", "missing"):
        raise InvalidCondition(
            f"{path}.op: unknown operator {op!r} (one of "
            f"{', '.join([*OPERATORS, 'exists', 'missing'])})"
        )
    if op in ("in", "not_in") and not isinstance(condition.get("value"), list):
        raise InvalidCondition(f"{path}.value: {op} needs a list")


def _lookup(payload, dotted: str):
    value = payload
    for part in dotted.split("."):
        if not isinstance(value, dict) or part not in value:
            return _MISSING
        value = value[part]
    return value


def evaluate(condition, payload: dict) -> bool:
    if condition is None:
        return True
    if "predicate" in condition:
        return bool(get_predicate(condition["predicate"])(payload))
    if "all" in condition:
        return all(evaluate(part, payload) for part in condition["all"])
    if "any" in condition:
        return any(evaluate(part, payload) for part in condition["any"])
    if "not" in condition:
        return not evaluate(condition["not"], payload)
    value = _lookup(payload, condition["field"])
    op = condition.get("op", "eq")
    if op == "exists":
        return value is not _MISSING
    if op == "missing":
        return value is _MISSING
    if value is _MISSING:
        value = None
    try:
        return bool(OPERATORS[op](value, condition.get("value")))
    except TypeError:
        return False
