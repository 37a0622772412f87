"""Structural-schema handling of custom resources, as apiextensions-apiserver does it on every write:
defaulting, pruning of unknown fields, and validation with kube-apiserver's error wording.

Covered: ``type`` (object, array, string, integer, number, boolean), ``nullable``, ``required``,
``enum``, ``minimum`` / ``maximum`` (and their ``exclusive…`` forms), ``minLength`` / ``maxLength``,
``minItems`` / ``maxItems``, ``minProperties`` / ``maxProperties``, ``pattern``, ``properties``,
``additionalProperties`` (maps), ``items``, ``default``, ``x-kubernetes-preserve-unknown-fields``,
``x-kubernetes-int-or-string`` and ``x-kubernetes-embedded-resource``. Not covered (accepted without
checking): ``anyOf`` / ``oneOf`` / ``allOf`` / ``not``, ``format``, CEL ``x-kubernetes-validations``
and list-type uniqueness.

Causes follow ``apiextensions-apiserver/pkg/apiserver/validation`` and ``k8s.io/apimachinery``'s
``field.Error``: ``{"reason": "FieldValueTypeInvalid", "field": "spec.replicas", "message": "Invalid
value: \\"x\\": spec.replicas in body must be of type integer: \\"string\\""}`` and so on.
"""

import json
import re
from functools import lru_cache
from typing import Any

Obj = dict[str, Any]
Cause = dict[str, str]

_ROOT_FIELDS = ("apiVersion", "kind", "metadata")


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object"


def _show(value: Any) -> str:
    """A value as field.Error prints it (strings quoted, numbers bare, composites by type)."""
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "null"
    if isinstance(value, int | float):
        return json.dumps(value)
    return json.dumps(_json_type(value))


def _num(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else str(value)


@lru_cache(maxsize=512)
def _regex(pattern: str) -> re.Pattern[str] | None:
    try:
        return re.compile(pattern)
    except re.error:
        return None


def _type_ok(value: Any, schema: Obj) -> bool:
    wanted = schema.get("type")
    if schema.get("x-kubernetes-int-or-string"):
        return isinstance(value, str) or (isinstance(value, int) and not isinstance(value, bool))
    if not wanted:
        return True
    actual = _json_type(value)
    if wanted == "number":
        return actual in ("number", "integer")
    if wanted == "integer" and actual == "number":
        return float(value).is_integer()
    return bool(actual == wanted)


class Validator:
    """Collects the causes of one object's validation."""

    def __init__(self) -> None:
        self.causes: list[Cause] = []

    def _add(self, reason: str, path: str, message: str) -> None:
        self.causes.append({"reason": reason, "message": message, "field": path})

    def invalid(self, path: str, value: Any, detail: str) -> None:
        self._add("FieldValueInvalid", path, f"Invalid value: {_show(value)}: {detail}")

    def validate(self, value: Any, schema: Obj, path: str) -> None:
        if not isinstance(schema, dict):
            return
        if value is None:
            if schema.get("nullable") or (not schema.get("type") and not schema.get("x-kubernetes-int-or-string")):
                return
            wanted = schema.get("type") or "string"
            self._add(
                "FieldValueTypeInvalid",
                path,
                f'Invalid value: "null": {path} in body must be of type {wanted}: "null"',
            )
            return
        if not _type_ok(value, schema):
            wanted = schema.get("type") or "integer or string"
            actual = _json_type(value)
            self._add(
                "FieldValueTypeInvalid",
                path,
                f'Invalid value: "{actual}": {path} in body must be of type {wanted}: "{actual}"',
            )
            return
        enum = schema.get("enum")
        if isinstance(enum, list) and enum and value not in enum:
            supported = ", ".join(_show(e) for e in enum)
            self._add(
                "FieldValueNotSupported", path, f"Unsupported value: {_show(value)}: supported values: {supported}"
            )
        if isinstance(value, int | float) and not isinstance(value, bool):
            self._numbers(value, schema, path)
        elif isinstance(value, str):
            self._string(value, schema, path)
        elif isinstance(value, list):
            self._array(value, schema, path)
        elif isinstance(value, dict):
            self._object(value, schema, path)

    def _numbers(self, value: float, schema: Obj, path: str) -> None:
        minimum = schema.get("minimum")
        if isinstance(minimum, int | float):
            if schema.get("exclusiveMinimum") and value <= minimum:
                self.invalid(path, value, f"{path} in body should be greater than {_num(minimum)}")
            elif value < minimum:
                self.invalid(path, value, f"{path} in body should be greater than or equal to {_num(minimum)}")
        maximum = schema.get("maximum")
        if isinstance(maximum, int | float):
            if schema.get("exclusiveMaximum") and value >= maximum:
                self.invalid(path, value, f"{path} in body should be less than {_num(maximum)}")
            elif value > maximum:
                self.invalid(path, value, f"{path} in body should be less than or equal to {_num(maximum)}")
        multiple = schema.get("multipleOf")
        if isinstance(multiple, int | float) and multiple and (value / multiple) % 1:
            self.invalid(path, value, f"{path} in body should be a multiple of {_num(multiple)}")

    def _string(self, value: str, schema: Obj, path: str) -> None:
        min_length = schema.get("minLength")
        if isinstance(min_length, int) and len(value) < min_length:
            self.invalid(path, value, f"{path} in body should be at least {min_length} chars long")
        max_length = schema.get("maxLength")
        if isinstance(max_length, int) and len(value) > max_length:
            self._add("FieldValueTooLong", path, f"Too long: may not be more than {max_length} bytes")
        pattern = schema.get("pattern")
        if isinstance(pattern, str):
            regex = _regex(pattern)
            if regex is not None and regex.search(value) is None:
                self.invalid(path, value, f"{path} in body should match '{pattern}'")

    def _array(self, value: list[Any], schema: Obj, path: str) -> None:
        min_items = schema.get("minItems")
        if isinstance(min_items, int) and len(value) < min_items:
            self.invalid(path, value, f"{path} in body should have at least {min_items} items")
        max_items = schema.get("maxItems")
        if isinstance(max_items, int) and len(value) > max_items:
            self._add("FieldValueTooMany", path, f"Too many: {len(value)}: must have at most {max_items} items")
        items = schema.get("items")
        if isinstance(items, dict):
            for i, item in enumerate(value):
                self.validate(item, items, f"{path}[{i}]")

    def _object(self, value: Obj, schema: Obj, path: str) -> None:
        prefix = f"{path}." if path else ""
        for name in schema.get("required") or []:
            if name not in value:
                self._add("FieldValueRequired", f"{prefix}{name}", "Required value")
        min_props = schema.get("minProperties")
        if isinstance(min_props, int) and len(value) < min_props:
            self.invalid(path, value, f"{path} in body should have at least {min_props} properties")
        max_props = schema.get("maxProperties")
        if isinstance(max_props, int) and len(value) > max_props:
            self._add("FieldValueTooMany", path, f"Too many: {len(value)}: must have at most {max_props} items")
        properties = schema.get("properties") or {}
        additional = schema.get("additionalProperties")
        for name, item in value.items():
            if not path and name in _ROOT_FIELDS:
                continue
            sub = properties.get(name)
            if sub is None and isinstance(additional, dict):
                sub = additional
            if isinstance(sub, dict):
                self.validate(item, sub, f"{prefix}{name}")


def validate(obj: Obj, schema: Obj) -> list[Cause]:
    """The causes of ``obj`` failing ``schema`` (empty when it passes)."""
    validator = Validator()
    validator.validate(obj, schema, "")
    root_meta = obj.get("metadata")
    if not isinstance(root_meta, dict):
        validator._add("FieldValueRequired", "metadata", "Required value")
    return sorted(validator.causes, key=lambda c: c["field"])


def prune(value: Any, schema: Obj, path: str = "") -> list[str]:
    """Drop fields the schema does not declare (in place); returns their paths, e.g. ``spec.foo``."""
    if not isinstance(schema, dict) or schema.get("x-kubernetes-preserve-unknown-fields"):
        return _prune_declared_only(value, schema, path)
    dropped: list[str] = []
    if isinstance(value, dict):
        properties = schema.get("properties")
        additional = schema.get("additionalProperties")
        embedded = schema.get("x-kubernetes-embedded-resource")
        prefix = f"{path}." if path else ""
        for name in list(value):
            if (not path or embedded) and name in _ROOT_FIELDS:
                continue
            sub = (properties or {}).get(name)
            if sub is None:
                if isinstance(additional, dict):
                    sub = additional
                elif additional is True:
                    continue
                else:
                    del value[name]
                    dropped.append(f"{prefix}{name}")
                    continue
            dropped.extend(prune(value[name], sub, f"{prefix}{name}"))
    elif isinstance(value, list):
        items = schema.get("items")
        if isinstance(items, dict):
            for i, item in enumerate(value):
                dropped.extend(prune(item, items, f"{path}[{i}]"))
    return dropped


def _prune_declared_only(value: Any, schema: Any, path: str) -> list[str]:
    """Under x-kubernetes-preserve-unknown-fields unknown fields stay, but declared ones are still pruned."""
    dropped: list[str] = []
    if isinstance(value, dict) and isinstance(schema, dict):
        prefix = f"{path}." if path else ""
        for name, sub in (schema.get("properties") or {}).items():
            if name in value and isinstance(sub, dict):
                dropped.extend(prune(value[name], sub, f"{prefix}{name}"))
    return dropped


def apply_defaults(value: Any, schema: Obj) -> None:
    """Fill ``default`` values of absent properties (in place), as the apiserver does on writes."""
    if not isinstance(schema, dict):
        return
    if isinstance(value, dict):
        for name, sub in (schema.get("properties") or {}).items():
            if not isinstance(sub, dict):
                continue
            if name not in value and "default" in sub:
                value[name] = json.loads(json.dumps(sub["default"]))
            if name in value:
                apply_defaults(value[name], sub)
        additional = schema.get("additionalProperties")
        if isinstance(additional, dict):
            for name, item in value.items():
                if name not in (schema.get("properties") or {}):
                    apply_defaults(item, additional)
    elif isinstance(value, list):
        items = schema.get("items")
        if isinstance(items, dict):
            for item in value:
                apply_defaults(item, items)


def structural_problems(schema: Any, path: str) -> list[Cause]:
    """Why a CRD version's schema is not structural (the checks kube-apiserver makes most often)."""
    problems: list[Cause] = []

    def walk(node: Any, where: str, root: bool) -> None:
        if not isinstance(node, dict):
            problems.append(
                {"reason": "FieldValueInvalid", "field": where, "message": "Invalid value: must be an object"}
            )
            return
        has_type = bool(node.get("type"))
        if not has_type and not (
            node.get("x-kubernetes-int-or-string") or node.get("x-kubernetes-preserve-unknown-fields")
        ):
            problems.append(
                {
                    "reason": "FieldValueRequired",
                    "field": f"{where}.type",
                    "message": "Required value: must not be empty for specified object fields",
                }
            )
        if root and node.get("type") not in (None, "object"):
            problems.append(
                {
                    "reason": "FieldValueInvalid",
                    "field": f"{where}.type",
                    "message": f'Invalid value: "{node.get("type")}": must be object at the root',
                }
            )
        for name, sub in (node.get("properties") or {}).items():
            if root and name == "metadata" and isinstance(sub, dict):
                extra = set(sub.get("properties") or {}) - {"name", "generateName"}
                if extra:
                    problems.append(
                        {
                            "reason": "FieldValueForbidden",
                            "field": f"{where}.properties[metadata]",
                            "message": "Forbidden: must not specify anything other than name and generateName, "
                            "but metadata is implicitly specified",
                        }
                    )
                continue
            walk(sub, f"{where}.properties[{name}]", False)
        items = node.get("items")
        if isinstance(items, dict):
            walk(items, f"{where}.items", False)
        additional = node.get("additionalProperties")
        if isinstance(additional, dict):
            walk(additional, f"{where}.additionalProperties", False)

    walk(schema, path, True)
    return problems
