"""Typed human input: the `input_schema` of `builtin.request_approval` (a JSON
Schema, checked with `jsonschema`).

A schema is checked when the definition is imported (`schema_problem`), and the
data of every approval is checked against it (`data_problems`), whichever door the
decision came through (admin form, API `input`). The admin renders a form from it
(`runs.admin.approvals`), so a schema is an object of simple fields: strings
(`pattern`, `enum`, `minLength`, `maxLength`), integers and numbers (`minimum`,
`maximum`) and booleans, with a `required` list.
"""

import json
import re

from jsonschema import Draft202012Validator
from jsonschema.exceptions import SchemaError

FIELD_TYPES = ("string", "integer", "number", "boolean")
SCHEMA_BYTES_MAX = 20_000
PATTERN_MAX = 200
FIELDS_MAX = 50


def schema_problem(schema) -> str:
    """Why `schema` cannot be an input schema ('' when it can)."""
    if not isinstance(schema, dict):
        return "must be an object (a JSON Schema)"
    if len(json.dumps(schema)) > SCHEMA_BYTES_MAX:
        return f"at most {SCHEMA_BYTES_MAX} bytes"
    try:
        Draft202012Validator.check_schema(schema)
    except SchemaError as exc:
        where = ".".join(str(p) for p in exc.path)
        return f"not a valid JSON Schema{f' at {where}' if where else ''}: " + (
            exc.message
        )
    if schema.get("type") != "object":
        return 'must have "type": "object"'
    properties = schema.get("properties") or {}
    if not properties:
        return "properties: name at least one field"
    if len(properties) > FIELDS_MAX:
        return f"properties: at most {FIELDS_MAX} fields"
    for name, spec in properties.items():
        if spec.get("type") not in FIELD_TYPES:
            return f"properties.{name}.type: must be one of {', '.join(FIELD_TYPES)}"
        pattern = spec.get("pattern")
        if pattern is not None:
            # jsonschema matches with `re`: a bounded, compilable pattern only
            if len(pattern) > PATTERN_MAX:
                return f"properties.{name}.pattern: at most {PATTERN_MAX} characters"
            try:
                re.compile(pattern)
            except re.error as exc:
                return f"properties.{name}.pattern: not a valid pattern: {exc}"
    unknown = sorted(set(schema.get("required", [])) - set(properties))
    if unknown:
        return f"required: not among the properties: {', '.join(unknown)}"
    return ""


def data_problems(schema: dict, data) -> list[tuple[str, str]]:
    """(field, message) for everything wrong with `data` under `schema`, each
    field named `data.<name>` (the API body's path), in field order."""
    problems = []
    for error in Draft202012Validator(schema).iter_errors(data):
        if error.validator == "required" and isinstance(error.instance, dict):
            for name in error.validator_value:
                if name not in error.instance:
                    problems.append((f"data.{name}", "this field is required"))
            continue
        where = ".".join(str(p) for p in error.absolute_path)
        problems.append((f"data.{where}" if where else "data", error.message))
    order = {f"data.{name}": i for i, name in enumerate(schema.get("properties", {}))}
    return sorted(set(problems), key=lambda p: (order.get(p[0], len(order)), p))
