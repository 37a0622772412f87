"""Plan files: a bounded parser and the plan-file JSON Schema, enforced on load.

The schema (``data/plan.schema.json``, JSON Schema 2020-12, shipped with the package) is the
format of design.md §3: what `plan --save` / `-o json` writes and `apply` reads. Every plan file
is checked against it before it becomes a `Plan`, so a wrong type (``"sequential": "maybe"``,
``"moves": {}``), a non-finite number (NaN, Infinity), a name no Kubernetes object can have or an
unknown goal is refused with the field's path — exit 2, never a silent default.

The parser is bounded, so a hostile file is a clear error rather than a RecursionError or a hang:
at most `MAX_PLAN_BYTES` of file; JSON is parsed by orjson (no NaN or Infinity, at most 1,024
levels, no recursion in Python); YAML is checked after parsing, without recursion, for
`MAX_DEPTH` levels, JSON types only and at most one value per byte of text (an alias bomb
expands to more). Validation uses
`jsonschema_rs` (a compiled validator: 200,000 moves in well under a second).
"""

import functools
import json
from importlib import resources
from typing import Any

import jsonschema_rs
import orjson

from vm_rebalance.errors import ConfigError
from vm_rebalance.render.text import plain

MAX_PLAN_BYTES = 256 * 2**20
"""A plan file larger than this is refused (200,000 moves take about 70 MiB)."""
MAX_DEPTH = 16
"""A plan document nests 4 levels deep; a YAML file nested deeper is not a plan."""
SCHEMA_RESOURCE = "data/plan.schema.json"
MAX_ERRORS = 5
"""How many schema violations one error message lists."""


@functools.cache
def plan_schema() -> dict[str, Any]:
    """The plan-file JSON Schema shipped with the package."""
    text = resources.files("vm_rebalance").joinpath(SCHEMA_RESOURCE).read_text(encoding="utf-8")
    schema: dict[str, Any] = json.loads(text)
    return schema


@functools.cache
def _validator() -> Any:
    return jsonschema_rs.validator_for(plan_schema())


def parse_plan_text(text: str, where: str) -> Any:
    """The document in a plan file's text (JSON or YAML), bounded in size, depth and number of values.

    Raises:
        ConfigError: too large, not JSON/YAML, nested too deeply, or not JSON data (e.g. a YAML date).
    """
    if len(text) > MAX_PLAN_BYTES:
        raise ConfigError(f"{where} is larger than {MAX_PLAN_BYTES // 2**20} MiB: not a plan file")
    if text.lstrip().startswith(("{", "[")):
        try:
            # orjson: no NaN / Infinity literals, nesting capped at 1024 levels, no recursion in Python.
            doc = orjson.loads(text)
        except orjson.JSONDecodeError as exc:
            raise ConfigError(f"{where} is not valid JSON/YAML: {plain(exc, limit=120)}") from None
        return doc
    else:
        import yaml

        try:
            doc = yaml.load(text, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
        except RecursionError:
            raise ConfigError(f"{where} is nested too deeply to be a plan") from None
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            at = f" at line {mark.line + 1} column {mark.column + 1}" if mark else ""
            problem = plain(getattr(exc, "problem", None) or type(exc).__name__, limit=120)
            raise ConfigError(f"{where} is not valid JSON/YAML{at}: {problem}") from None
    _check_shape(doc, where, budget=len(text) + 16)
    return doc


def _check_shape(doc: Any, where: str, *, budget: int) -> None:
    """Depth, size and JSON types of a parsed document, without recursion."""
    stack: list[tuple[Any, int]] = [(doc, 1)]
    seen = 0
    while stack:
        value, depth = stack.pop()
        seen += 1
        if seen > budget:
            raise ConfigError(f"{where} expands to more values than it has characters (YAML aliases?): not a plan")
        if isinstance(value, dict):
            children: Any = value.values()
            if not all(isinstance(k, str) for k in value):
                raise ConfigError(f"{where}: every key must be a string")
        elif isinstance(value, list):
            children = value
        elif value is None or isinstance(value, str | bool | int | float):
            continue
        else:
            raise ConfigError(f"{where}: {type(value).__name__} values are not JSON data (quote them)")
        if depth >= MAX_DEPTH:
            raise ConfigError(f"{where} is nested more than {MAX_DEPTH} levels deep: not a plan")
        stack.extend((child, depth + 1) for child in children)


def _path(parts: Any) -> str:
    out = ""
    for part in parts:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "the document"


def check_plan_document(doc: Any, where: str) -> None:
    """Refuse a document that does not follow the plan-file schema, naming the fields at fault.

    Raises:
        ConfigError: the first violations (at most `MAX_ERRORS`), each with its path.
    """
    validator = _validator()
    try:
        if validator.is_valid(doc):
            return
        errors = list(validator.iter_errors(doc))
    except (ValueError, TypeError, OverflowError) as exc:  # e.g. an integer beyond 64 bits
        raise ConfigError(f"{where}: {plain(exc, limit=160)}") from None
    errors.sort(key=lambda e: list(map(str, e.instance_path)))
    shown = [f"{_path(e.instance_path)}: {plain(e.message, limit=160)}" for e in errors[:MAX_ERRORS]]
    more = f" (and {len(errors) - MAX_ERRORS} more)" if len(errors) > MAX_ERRORS else ""
    raise ConfigError(
        f"{where} does not follow the plan-file schema: {'; '.join(shown)}{more}",
        hint="plan files are written by `vm-rebalance plan --save FILE`; the format is data/plan.schema.json",
    )
