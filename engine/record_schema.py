"""The published record of a preference pair: engine/schemas/pair.schema.json, and the same schema as Polars.

`record_columns` builds each exported field from the judged table; `validate_records` checks records with
jsonschema at export; `record_schema_checks` compiles the schema into Polars expressions so the
`schema_invalid` filter can check millions of rows (NaN is rejected there too: jsonschema's
minimum/maximum let it through).
"""

from __future__ import annotations

from functools import cache

import polars as pl

from engine.errors import CharterError
from engine.validation import SCHEMA_DIR, field_path, load_schema

RECORD_SCHEMA = SCHEMA_DIR / "pair.schema.json"


def _turn(role: str, column: str) -> pl.Expr:
    return pl.concat_list(pl.struct(pl.lit(role).alias("role"), pl.col(column).alias("content")))


def record_columns() -> dict[str, pl.Expr]:
    """Each exported field as an expression over the judged table, in the schema's order."""
    vote = pl.element().struct
    return {
        "prompt": _turn("user", "prompt"),
        "chosen": _turn("assistant", "chosen"),
        "rejected": _turn("assistant", "rejected"),
        "pair_id": pl.col("pair_id"),
        "prompt_id": pl.col("prompt_id"),
        "p_chosen": pl.col("p_chosen"),
        "margin": pl.col("margin"),
        "swap_consistent": pl.col("swap_consistent"),
        "principle_agreement": pl.col("principle_agreement"),
        # the principles with a scored vote; field-then-filter is 3x faster than filtering structs first
        "principle_ids": pl.col("votes").list.eval(vote.field("principle_id").filter(vote.field("error").is_null()).drop_nulls())
        .list.unique(maintain_order=True),
        "constitution_version": pl.col("constitution_version"),
        "constitution_sha256": pl.col("constitution_sha256"),
        "model": pl.col("model"),
        "judge_model": pl.col("judge_model"),
    }


def pair_records(kept: pl.DataFrame) -> pl.DataFrame:
    return kept.lazy().select(**record_columns()).collect()


@cache
def _record_validator():
    import jsonschema

    return jsonschema.Draft202012Validator(load_schema(RECORD_SCHEMA))


def validate_records(records: pl.DataFrame) -> None:
    """jsonschema over every record; raises naming the pair and field of the first few failures."""
    validator, problems = _record_validator(), []
    for record in records.iter_rows(named=True):
        if not validator.is_valid(record):
            error = next(validator.iter_errors(record))
            problems.append(f"pair {record.get('pair_id')}: {field_path(error.absolute_path) or '(record)'}: {error.message}")
            if len(problems) == 5:
                break
    if problems:
        raise CharterError(f"exported records fail {RECORD_SCHEMA.name} (the schema_invalid filter should have dropped them):\n"
                           + "\n".join(problems))


_TYPES = {"string": "String", "number": "numeric", "integer": "integer", "boolean": "Boolean", "array": "List",
          "object": "Struct"}
_KNOWN = {"type", "minLength", "minimum", "maximum", "pattern", "const", "enum", "minItems", "maxItems",
          "uniqueItems", "items", "required", "properties", "additionalProperties", "description", "title", "$ref"}


def record_schema_checks(record_dtypes: pl.Schema, columns: dict[str, pl.Expr] | None = None) -> list[tuple[pl.Expr, str]]:
    """(valid, "field: problem") for every constraint of pair.schema.json, over the judged table's columns.

    `columns` replaces some fields' expressions, e.g. with a column already computed once: Polars does not
    share a costly list expression between the many checks that read it.
    """
    root = load_schema(RECORD_SCHEMA)
    checks: list[tuple[pl.Expr, str]] = []
    for name, expr in {**record_columns(), **(columns or {})}.items():
        spec = root["properties"][name]
        _check_dtype(record_dtypes[name], _resolve(spec, root), name)
        checks += _schema_checks(expr, spec, root, name)
    return checks


def _resolve(spec: dict, root: dict) -> dict:
    while "$ref" in spec:
        spec = root["$defs"][spec["$ref"].rsplit("/", 1)[-1]]
    return spec


def _schema_checks(expr: pl.Expr, spec: dict, root: dict, path: str) -> list[tuple[pl.Expr, str]]:
    """(valid, message) for each constraint of a (sub)schema on the values of `expr`."""
    spec = _resolve(spec, root)
    unknown = set(spec) - _KNOWN
    if unknown:
        raise CharterError(f"{RECORD_SCHEMA}: {path}: {sorted(unknown)} not supported by the Polars check (engine/filters.py)")
    types = spec.get("type") if isinstance(spec.get("type"), list) else [spec.get("type")]
    nullable = "null" in types
    checks = [] if nullable else [(expr.is_not_null(), f"{path}: missing")]
    if {"number", "integer"} & set(types):
        checks.append((~expr.cast(pl.Float64).is_nan(), f"{path}: NaN"))
    bounds = {
        "minLength": (lambda x: expr.str.len_chars() >= x, "shorter than {}"),
        "minimum": (lambda x: expr >= x, "below minimum {}"),
        "maximum": (lambda x: expr <= x, "above maximum {}"),
        "pattern": (lambda x: expr.str.contains(x), "does not match {}"),
        "const": (lambda x: expr == x, "is not {!r}"),
        "enum": (lambda x: expr.is_in(x), "is not one of {}"),
        "minItems": (lambda x: expr.list.len() >= x, "fewer than {} items"),
        "maxItems": (lambda x: expr.list.len() <= x, "more than {} items"),
        "uniqueItems": (lambda x: (expr.list.n_unique() == expr.list.len()) | (not x), "items not unique"),
    }
    checks += [(make(spec[key]), f"{path}: {message.format(spec[key])}") for key, (make, message) in bounds.items() if key in spec]
    if nullable:  # null passes every other constraint of a field that may be null
        checks = [(ok | expr.is_null(), message) for ok, message in checks]
    if "items" in spec:
        inner = _schema_checks(pl.element(), spec["items"], root, f"{path}[]")
        checks += [(expr.list.eval(ok).list.all(), message) for ok, message in inner]
    for name, sub in spec.get("properties", {}).items():
        checks += _schema_checks(expr.struct.field(name), sub, root, f"{path}.{name}")
    return checks


def _check_dtype(dtype: pl.DataType, spec: dict, path: str) -> None:
    """Types are per column in Polars: a mismatch is a wrong table, not a bad row."""
    types = [t for t in (spec["type"] if isinstance(spec.get("type"), list) else [spec.get("type", "")]) if t != "null"]
    want = _TYPES.get(types[0], None) if len(types) == 1 else None
    ok = (
        want is None
        or (want == "numeric" and dtype.is_numeric())
        or (want == "integer" and dtype.is_integer())
        or type(dtype).__name__ == want
    )
    if not ok:
        raise CharterError(f"exported field {path} would be {dtype}; {RECORD_SCHEMA.name} wants {spec['type']}")
