"""Validate external input (YAML/JSON files) once, at the edge, with errors that name file and field."""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema
import yaml

from engine.errors import CharterError

SCHEMA_DIR = Path(__file__).resolve().parent / "schemas"


@cache
def load_schema(path: str | Path) -> dict[str, Any]:
    return json.loads(Path(path).read_text())


def field_path(parts: Any) -> str:
    """`['principles', 3, 'revision']` -> `principles[3].revision`."""
    out = ""
    for part in parts:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def schema_errors(data: Any, schema: dict[str, Any], source: str) -> list[str]:
    """Every schema violation as `SOURCE: field.path: problem`, sorted by path."""
    validator = jsonschema.Draft202012Validator(schema)
    def order(error: jsonschema.ValidationError) -> list[tuple[int, int, str]]:
        return [(0, p, "") if isinstance(p, int) else (1, 0, str(p)) for p in error.absolute_path]

    lines = []
    for error in sorted(validator.iter_errors(data), key=order):
        path = list(error.absolute_path)
        message = _plain_message(error)
        if error.validator == "required":  # point at the missing field itself
            missing = next(iter(set(error.validator_value) - set(error.instance or {})), None)
            path, message = path + [missing], "missing"
        where = field_path(path)
        lines.append(f"{source}: {where}: {message}" if where else f"{source}: {message}")
    return lines


def _plain_message(error: jsonschema.ValidationError) -> str:
    if error.validator == "additionalProperties":
        extra = sorted(set(error.instance) - set(error.schema.get("properties", {})))
        return f"unknown key(s) {', '.join(map(repr, extra))}; allowed: {', '.join(error.schema.get('properties', {}))}"
    if error.validator == "pattern":
        return f"{error.instance!r} does not have the expected format"
    if error.validator == "enum":
        return f"{error.instance!r} is not one of {', '.join(map(repr, error.validator_value))}"
    return error.message


def read_yaml(path: str | Path, what: str) -> Any:
    """Parse a YAML file; a missing file or syntax error becomes one CharterError naming the file (and line)."""
    path = Path(path)
    if not path.is_file():
        raise CharterError(f"{path}: {what} file not found")
    try:
        return yaml.safe_load(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError as exc:
        raise CharterError(f"{path}: not UTF-8 text (byte {exc.start}); save the {what} as UTF-8") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}: " if mark is not None else ""
        raise CharterError(f"{path}: {where}invalid YAML: {getattr(exc, 'problem', None) or exc}") from None


def format_number(value: Any, digits: int = 3) -> str:
    """How tables and text reports print a value: '-' for None, fixed decimals for floats."""
    if value is None:
        return "-"
    return f"{value:.{digits}f}" if isinstance(value, float) else str(value)
