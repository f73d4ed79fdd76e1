"""``fields=`` partial responses, checked the way Drive checks them.

``select_fields`` keeps only the selected parts of a JSON answer
(``id,title``, ``labels/starred``, ``items(id,title)``, ``items/parents/id``,
``nextPageToken``, ``*``, ``items(*)``). As on Drive:

* a selector that does not parse is 400 ``invalidParameter`` ("Invalid field
  selection"), ``location: fields``;
* a name the resource type does not have (by the Drive v2 discovery document,
  when google-api-python-client is installed) is the same 400, naming it;
* a selected field the answer lacks (e.g. ``nextPageToken`` on the last page,
  ``description`` of a file without one) is simply absent; everything a full
  answer carries is available to a selection.
"""

from __future__ import annotations

import functools
import json
from typing import Any

from .errors import ApiError
from .resources import _FieldsSyntaxError, _parse_list, apply_fields

__all__ = ["invalid_fields", "select_fields"]


def invalid_fields(detail: str) -> ApiError:
    """400 ``invalidParameter`` for a bad ``fields`` selector."""
    return ApiError(400, "invalidParameter", f"Invalid field selection {detail}".rstrip(), location="fields",
                    location_type="parameter")


def parse_strict(spec: str) -> dict[str, Any] | None:
    """The selection tree of ``spec`` (None: everything), or 400 when it does not parse."""
    text = spec.replace(" ", "")
    if not text or text == "*":
        return None
    try:
        tree, pos = _parse_list(text, 0)
    except (_FieldsSyntaxError, IndexError):
        raise invalid_fields(spec) from None
    if pos != len(text):
        raise invalid_fields(spec)
    return tree


@functools.lru_cache(maxsize=1)
def _schemas() -> tuple[dict[str, Any], dict[str, str]] | None:
    try:
        from googleapiclient.discovery_cache import get_static_doc
    except ImportError:
        return None
    raw = get_static_doc("drive", "v2")
    if raw is None:
        return None
    schemas: dict[str, Any] = json.loads(raw)["schemas"]
    kinds = {}
    for name, schema in schemas.items():
        default = schema.get("properties", {}).get("kind", {}).get("default")
        if isinstance(default, str):
            kinds[default] = name
    return schemas, kinds


def _check(tree: dict[str, Any], node: dict[str, Any], schemas: dict[str, Any], path: str) -> None:
    while True:
        if "$ref" in node:
            node = schemas[node["$ref"]]
        elif node.get("type") == "array" and "items" in node:
            node = node["items"]
        else:
            break
    props = node.get("properties")
    if props is None:
        return  # a map (additionalProperties) or an untyped value: anything goes below
    for name, sub in tree.items():
        if name == "*":
            continue
        if name not in props:
            raise invalid_fields(path + name)
        if sub is not None:
            _check(sub, props[name], schemas, f"{path}{name}/")


def select_fields(obj: Any, spec: str | None) -> Any:
    """``obj`` reduced to the ``fields`` selection ``spec`` (400 ``ApiError`` if invalid)."""
    if spec is None:
        return obj
    tree = parse_strict(spec)
    if tree is None:
        return obj
    known = _schemas()
    if known is not None and isinstance(obj, dict) and isinstance(obj.get("kind"), str):
        schemas, kinds = known
        name = kinds.get(obj["kind"])
        if name is not None:
            _check(tree, schemas[name], schemas, "")
    return apply_fields(obj, tree)
