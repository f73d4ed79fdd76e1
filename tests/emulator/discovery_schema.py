"""Validate Drive v2 JSON bodies against the real Drive v2 discovery document.

The discovery document bundled with google-api-python-client (the same one
PyDrive2 builds its client from) describes every resource Drive v2 returns.
This module converts its ``schemas`` into JSON Schema (draft 7) so tests can
check that the Drive emulator only emits fields and types the real API has::

    from discovery_schema import validate_resource, validate_by_kind
    validate_resource(body, "File")
    validate_by_kind(body)              # picks the schema from body["kind"]

Conversion rules:

* ``{"$ref": "File"}`` becomes ``{"$ref": "#/definitions/File"}``.
* ``type: any`` has no constraint; ``readOnly``, ``description``,
  ``deprecated``, ``annotations`` and ``default`` are dropped.
* Discovery schemas never list required fields, so to catch an emulator that
  invents or misspells field names every object with ``properties`` gets
  ``additionalProperties: false`` unless the discovery document gives an
  ``additionalProperties`` schema (``exportLinks``, ``openWithLinks``...).
* ``format`` is not enforced as a JSON Schema format, but two formats get a
  pattern because emulator mistakes there are easy to make: ``int64`` /
  ``uint64`` values are *strings of digits* (``"fileSize": "12"``, never
  ``12``), and ``date-time`` values are RFC 3339 strings.
* A ``kind`` property whose default is a fixed ``drive#...`` / ``api#...``
  string must equal it.
"""

from __future__ import annotations

import copy
import functools
import json
import re
from collections.abc import Iterable, Mapping
from typing import Any

import jsonschema
from googleapiclient.discovery_cache import get_static_doc
from jsonschema.exceptions import ValidationError, best_match, relevance

__all__ = [
    "ERROR_BODY_SCHEMA",
    "discovery_document",
    "schema_for",
    "schema_for_request",
    "schema_name_for_kind",
    "validate_body",
    "validate_by_kind",
    "validate_error_body",
    "validate_resource",
]

_INT64_PATTERN = r"^-?[0-9]+$"
_DATE_TIME_PATTERN = (
    r"^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]+)?(Z|[+-][0-9]{2}:[0-9]{2})$"
)
_DATE_PATTERN = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$"


@functools.lru_cache(maxsize=1)
def discovery_document() -> dict[str, Any]:
    """The Drive v2 discovery document bundled with google-api-python-client."""
    raw = get_static_doc("drive", "v2")
    if raw is None:  # pragma: no cover - depends on the installed client
        raise RuntimeError("google-api-python-client has no bundled drive v2 discovery document")
    doc: dict[str, Any] = json.loads(raw)
    return doc


def _convert(node: Mapping[str, Any], *, is_kind: bool = False) -> dict[str, Any]:
    """Convert one discovery schema node into a JSON Schema node."""
    if "$ref" in node:
        return {"$ref": f"#/definitions/{node['$ref']}"}
    out: dict[str, Any] = {}
    dtype = node.get("type")
    if dtype is None or dtype == "any":
        return out
    if dtype not in ("string", "boolean", "integer", "number", "object", "array", "null"):
        raise ValueError(f"unexpected discovery type {dtype!r}")
    out["type"] = dtype
    fmt = node.get("format")
    if dtype == "string":
        if fmt in ("int64", "uint64"):
            out["pattern"] = _INT64_PATTERN
        elif fmt == "date-time":
            out["pattern"] = _DATE_TIME_PATTERN
        elif fmt == "date":
            out["pattern"] = _DATE_PATTERN
        if "enum" in node:
            out["enum"] = list(node["enum"])
        default = node.get("default")
        if is_kind and isinstance(default, str) and "#" in default:
            out["const"] = default
    elif dtype == "array":
        if "items" in node:
            out["items"] = _convert(node["items"])
    elif dtype == "object":
        props = node.get("properties")
        if props is not None:
            out["properties"] = {
                name: _convert(sub, is_kind=(name == "kind")) for name, sub in props.items()
            }
        if "additionalProperties" in node:
            out["additionalProperties"] = _convert(node["additionalProperties"])
        elif props is not None:
            out["additionalProperties"] = False
    return out


@functools.lru_cache(maxsize=1)
def _definitions() -> dict[str, Any]:
    schemas = discovery_document()["schemas"]
    return {name: _convert(schema) for name, schema in schemas.items()}


def schema_for(name: str) -> dict[str, Any]:
    """A standalone JSON Schema (draft 7) for discovery schema ``name``, e.g. ``"File"``.

    The result carries every definition, so ``$ref`` to other schemas resolve.

    Raises:
        KeyError: if the discovery document has no schema ``name``.
    """
    defs = _definitions()
    if name not in defs:
        raise KeyError(
            f"no schema {name!r} in the Drive v2 discovery document; known: {sorted(defs)}"
        )
    return {
        "$schema": "http://json-schema.org/draft-07/schema#",
        "$ref": f"#/definitions/{name}",
        "definitions": copy.deepcopy(defs),
    }


@functools.cache
def _validator(name: str) -> jsonschema.Draft7Validator:
    schema = schema_for(name)
    jsonschema.Draft7Validator.check_schema(schema)
    return jsonschema.Draft7Validator(schema)


@functools.lru_cache(maxsize=1)
def _kinds() -> dict[str, str]:
    kinds: dict[str, str] = {}
    for name, schema in discovery_document()["schemas"].items():
        default = schema.get("properties", {}).get("kind", {}).get("default")
        if isinstance(default, str):
            kinds[default] = name
    return kinds


def schema_name_for_kind(kind: str) -> str:
    """The discovery schema name for a ``kind`` value: ``"drive#file"`` -> ``"File"``.

    Raises:
        KeyError: for a kind no Drive v2 schema declares.
    """
    kinds = _kinds()
    try:
        return kinds[kind]
    except KeyError:
        raise KeyError(f"unknown Drive v2 kind {kind!r}; known: {sorted(kinds)}") from None


@functools.lru_cache(maxsize=1)
def _method_table() -> list[tuple[str, re.Pattern[str], str]]:
    """``(HTTP method, path regex, response schema)`` of every Drive v2 method, literal paths first."""
    doc = discovery_document()
    base = "/" + doc.get("servicePath", "drive/v2/")
    rows: list[tuple[int, str, re.Pattern[str], str]] = []

    def walk(resources: Mapping[str, Any]) -> None:
        for resource in resources.values():
            for method in resource.get("methods", {}).values():
                ref = method.get("response", {}).get("$ref")
                if not ref:
                    continue
                template = method["path"]
                pattern = re.sub(r"\\\{[^}]+\\\}", "[^/]+", re.escape(template))
                rows.append((template.count("{"), method["httpMethod"], re.compile(f"^{re.escape(base)}{pattern}$"), ref))
            walk(resource.get("resources", {}))

    walk(doc["resources"])
    rows.sort(key=lambda r: r[0])
    return [(m, p, ref) for _, m, p, ref in rows]


def schema_for_request(method: str, path: str) -> str:
    """The response schema of the Drive v2 method answering ``method path`` (e.g. ``GET /drive/v2/files``).

    Raises:
        KeyError: for a path no Drive v2 method has.
    """
    for m, pattern, ref in _method_table():
        if m == method and pattern.match(path):
            return ref
    raise KeyError(f"no Drive v2 method answers {method} {path}")


def _json_path(path: Iterable[Any]) -> str:
    out = "$"
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else f".{part}"
    return out


def _raise_combined(errors: list[ValidationError], what: str) -> None:
    if not errors:
        return
    errors.sort(key=lambda e: (list(map(str, e.absolute_path)), e.message))
    lines = []
    for err in errors:
        msg = err.message
        if err.validator == "additionalProperties" and err.validator_value is False:
            msg += " (the Drive v2 discovery schema has no such field)"
        lines.append(f"  {_json_path(err.absolute_path)}: {msg}")
    best = best_match(errors, key=relevance)
    assert best is not None
    raise ValidationError(
        f"{what} does not match the Drive v2 discovery schema "
        f"({len(errors)} problem{'s' if len(errors) != 1 else ''}):\n" + "\n".join(lines),
        validator=best.validator,
        path=best.absolute_path,
        validator_value=best.validator_value,
        instance=best.instance,
        # ``schema`` is left unset on purpose: jsonschema then prints only the
        # message instead of dumping the whole (large) File schema.
        schema_path=best.absolute_schema_path,
        context=errors,
    )


def validate_resource(obj: Any, schema_name: str) -> None:
    """Validate ``obj`` against Drive v2 discovery schema ``schema_name``.

    Raises:
        jsonschema.ValidationError: listing every problem with its JSON path,
            e.g. ``$.items[0].fileSize: 5 is not of type 'string'``.
        KeyError: for an unknown ``schema_name``.
    """
    errors = list(_validator(schema_name).iter_errors(obj))
    _raise_combined(errors, f"{schema_name} body")


def validate_by_kind(obj: Mapping[str, Any]) -> str:
    """Validate a resource by its own ``kind`` field; return the schema name used.

    Raises:
        jsonschema.ValidationError: if ``obj`` has no string ``kind`` or does
            not match the schema that kind names.
        KeyError: for a kind Drive v2 does not have.
    """
    kind = obj.get("kind") if isinstance(obj, Mapping) else None
    if not isinstance(kind, str):
        raise ValidationError(f"body has no string 'kind' to pick a schema by: {obj!r:.200}")
    name = schema_name_for_kind(kind)
    validate_resource(obj, name)
    return name


ERROR_BODY_SCHEMA: dict[str, Any] = {
    "$schema": "http://json-schema.org/draft-07/schema#",
    "type": "object",
    "required": ["error"],
    "additionalProperties": False,
    "properties": {
        "error": {
            "type": "object",
            "required": ["code", "message", "errors"],
            "additionalProperties": False,
            "properties": {
                "code": {"type": "integer", "minimum": 400, "maximum": 599},
                "message": {"type": "string", "minLength": 1},
                "status": {"type": "string"},
                "details": {"type": "array"},
                "errors": {
                    "type": "array",
                    "minItems": 1,
                    "items": {
                        "type": "object",
                        "required": ["domain", "reason", "message"],
                        "additionalProperties": False,
                        "properties": {
                            "domain": {"type": "string", "minLength": 1},
                            "reason": {"type": "string", "minLength": 1},
                            "message": {"type": "string"},
                            "location": {"type": "string"},
                            "locationType": {"type": "string"},
                            "extendedHelp": {"type": "string"},
                            "sendReport": {"type": "string"},
                            "debugInfo": {"type": "string"},
                        },
                    },
                },
            },
        }
    },
}
"""Google API JSON error envelope, as Drive v2 returns it for 4xx/5xx responses."""

_ERROR_VALIDATOR = jsonschema.Draft7Validator(ERROR_BODY_SCHEMA)


def validate_error_body(obj: Any) -> None:
    """Validate a Google API error body.

    Shape: ``{"error": {"code": int, "message": str, "errors": [{"domain": str,
    "reason": str, "message": str, ...}]}}``; optional ``status`` / ``details``
    and per-error ``location`` / ``locationType`` / ``extendedHelp`` /
    ``sendReport`` / ``debugInfo``. The codes in ``error.code`` must be 4xx/5xx.

    Raises:
        jsonschema.ValidationError: listing every problem with its JSON path.
    """
    _raise_combined(list(_ERROR_VALIDATOR.iter_errors(obj)), "error body")


def validate_body(obj: Any) -> str:
    """Validate any Drive v2 JSON body: an error envelope or a resource with a ``kind``.

    Returns ``"error"`` or the schema name used.
    """
    if isinstance(obj, Mapping) and "error" in obj:
        validate_error_body(obj)
        return "error"
    return validate_by_kind(obj)
