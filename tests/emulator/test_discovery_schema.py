"""The discovery-schema validator the emulator tests use (needs no server)."""

from __future__ import annotations

import copy
from typing import Any

import jsonschema
import pytest
from discovery_schema import (
    schema_for,
    schema_for_request,
    schema_name_for_kind,
    validate_body,
    validate_by_kind,
    validate_error_body,
    validate_resource,
)

pytestmark = pytest.mark.unit

FILE: dict[str, Any] = {
    "kind": "drive#file",
    "id": "1AbCdEf",
    "etag": '"abc"',
    "title": "model.h5",
    "mimeType": "application/x-hdf5",
    "fileSize": "1234",
    "md5Checksum": "d41d8cd98f00b204e9800998ecf8427e",
    "createdDate": "2026-11-22T10:00:00.000Z",
    "modifiedDate": "2026-11-22T10:00:00.000Z",
    "labels": {"trashed": False, "starred": False, "hidden": False, "viewed": True},
    "parents": [
        {"kind": "drive#parentReference", "id": "0AAroot", "isRoot": True},
    ],
    "properties": [
        {"kind": "drive#property", "key": "k", "value": "v", "visibility": "PUBLIC"},
    ],
    "owners": [{"kind": "drive#user", "displayName": "Me", "emailAddress": "me@example.com"}],
    "lastModifyingUser": {"kind": "drive#user", "displayName": "Me"},
    "exportLinks": {"application/pdf": "http://localhost/x.pdf"},
    "userPermission": {"kind": "drive#permission", "role": "owner", "type": "user"},
    "downloadUrl": "http://localhost/download/1AbCdEf",
    "quotaBytesUsed": "1234",
    "version": "3",
    "editable": True,
    "copyable": True,
    "capabilities": {"canEdit": True, "canDownload": True},
}


def test_valid_file_passes() -> None:
    validate_resource(FILE, "File")
    assert validate_by_kind(FILE) == "File"
    assert validate_body(FILE) == "File"


def test_empty_file_passes_because_discovery_has_no_required_fields() -> None:
    validate_resource({}, "File")


@pytest.mark.parametrize(
    "mutate, needle",
    [
        (lambda f: f.update(titel="x"), "titel"),
        (lambda f: f.update(name="x"), "name"),  # a Drive v3 field name
        (lambda f: f["labels"].update(trash=True), "trash"),
        (lambda f: f["parents"][0].update(parentId="x"), "parentId"),
        (lambda f: f["properties"][0].update(vis="PUBLIC"), "vis"),
    ],
    ids=["toplevel", "v3-name", "nested-object", "array-item", "property-item"],
)
def test_invented_field_fails(mutate: Any, needle: str) -> None:
    body = copy.deepcopy(FILE)
    mutate(body)
    with pytest.raises(jsonschema.ValidationError) as info:
        validate_resource(body, "File")
    assert needle in str(info.value)
    assert "no such field" in str(info.value)


@pytest.mark.parametrize(
    "field, value",
    [
        ("fileSize", 1234),  # int64 is a string in JSON
        ("fileSize", "12.5"),
        ("quotaBytesUsed", 1234),
        ("version", 3),
        ("title", 5),
        ("editable", "true"),
        ("labels", []),
        ("parents", {"id": "x"}),
        ("modifiedDate", "yesterday"),
        ("modifiedDate", 1700000000),
        ("kind", "drive#fileList"),
        ("exportLinks", {"application/pdf": 5}),
    ],
)
def test_wrong_type_fails(field: str, value: Any) -> None:
    body = copy.deepcopy(FILE)
    body[field] = value
    with pytest.raises(jsonschema.ValidationError) as info:
        validate_resource(body, "File")
    assert f"$.{field}" in str(info.value)


def test_error_message_names_every_problem_with_path() -> None:
    body: dict[str, Any] = {
        "kind": "drive#fileList",
        "items": [copy.deepcopy(FILE), copy.deepcopy(FILE)],
    }
    body["items"][1]["fileSize"] = 5
    body["items"][1]["bogus"] = 1
    with pytest.raises(jsonschema.ValidationError) as info:
        validate_by_kind(body)
    text = str(info.value)
    assert "$.items[1].fileSize" in text
    assert "$.items[1]" in text and "bogus" in text
    assert "2 problems" in text
    assert list(info.value.path)[:2] == ["items", 1]


def test_file_list_with_items_passes() -> None:
    body = {
        "kind": "drive#fileList",
        "etag": '"e"',
        "selfLink": "http://localhost/drive/v2/files",
        "nextPageToken": "tok",
        "incompleteSearch": False,
        "items": [copy.deepcopy(FILE), {"kind": "drive#file", "id": "2", "title": "b"}],
    }
    validate_resource(body, "FileList")
    assert validate_by_kind(body) == "FileList"


def test_other_resources() -> None:
    validate_by_kind({"kind": "drive#property", "key": "k", "value": "v", "visibility": "PRIVATE"})
    validate_by_kind(
        {"kind": "drive#propertyList", "items": [{"kind": "drive#property", "key": "k"}]}
    )
    validate_by_kind({"kind": "drive#parentReference", "id": "x", "isRoot": False})
    validate_by_kind(
        {
            "kind": "drive#about",
            "rootFolderId": "0AAroot",
            "quotaBytesTotal": "100",
            "quotaBytesUsed": "0",
            "user": {"kind": "drive#user", "displayName": "Me", "emailAddress": "m@x"},
        }
    )
    with pytest.raises(jsonschema.ValidationError):
        validate_by_kind({"kind": "drive#about", "quotaBytesTotal": 100})


@pytest.mark.parametrize(
    "kind, name",
    [
        ("drive#file", "File"),
        ("drive#fileList", "FileList"),
        ("drive#about", "About"),
        ("drive#property", "Property"),
        ("drive#propertyList", "PropertyList"),
        ("drive#parentReference", "ParentReference"),
        ("drive#parentList", "ParentList"),
        ("drive#permission", "Permission"),
        ("drive#permissionList", "PermissionList"),
        ("drive#childList", "ChildList"),
        ("drive#changeList", "ChangeList"),
        ("drive#user", "User"),
    ],
)
def test_schema_name_for_kind(kind: str, name: str) -> None:
    assert schema_name_for_kind(kind) == name


def test_unknown_kind_and_schema() -> None:
    with pytest.raises(KeyError, match="drive#files"):
        schema_name_for_kind("drive#files")
    with pytest.raises(KeyError, match="Files"):
        schema_for("Files")
    with pytest.raises(jsonschema.ValidationError, match="kind"):
        validate_by_kind({"id": "x"})


def test_schema_for_is_a_valid_draft7_schema_with_refs_resolved() -> None:
    schema = schema_for("FileList")
    jsonschema.Draft7Validator.check_schema(schema)
    assert schema["definitions"]["FileList"]["properties"]["items"]["items"] == {
        "$ref": "#/definitions/File"
    }
    file_schema = schema["definitions"]["File"]
    assert file_schema["additionalProperties"] is False
    assert file_schema["properties"]["fileSize"]["type"] == "string"
    # discovery additionalProperties maps survive
    assert file_schema["properties"]["exportLinks"]["additionalProperties"] == {"type": "string"}
    # mutating the returned schema does not affect later validation
    schema["definitions"]["File"]["properties"].clear()
    validate_resource(FILE, "File")


def test_error_body() -> None:
    good: dict[str, Any] = {
        "error": {
            "code": 404,
            "message": "File not found: x",
            "errors": [{"domain": "global", "reason": "notFound", "message": "File not found: x"}],
        }
    }
    validate_error_body(good)
    assert validate_body(good) == "error"
    with_extras = copy.deepcopy(good)
    with_extras["error"]["errors"][0].update(location="fileId", locationType="parameter")
    validate_error_body(with_extras)

    bad_cases: list[Any] = [
        {"error": {"code": "404", "message": "x", "errors": good["error"]["errors"]}},
        {"error": {"code": 404, "message": "x"}},
        {
            "error": {
                "code": 404,
                "message": "x",
                "errors": [{"reason": "notFound", "message": "x"}],
            }
        },
        {"error": {"code": 200, "message": "x", "errors": good["error"]["errors"]}},
        {"error": {**good["error"], "detail": "x"}},
        {"message": "x"},
        "not json object",
    ]
    for bad in bad_cases:
        with pytest.raises(jsonschema.ValidationError):
            validate_error_body(bad)


@pytest.mark.parametrize(
    "method, path, name",
    [
        ("GET", "/drive/v2/files", "FileList"),
        ("GET", "/drive/v2/files/1abc", "File"),
        ("GET", "/drive/v2/files/generateIds", "GeneratedIds"),
        ("GET", "/drive/v2/files/1abc/permissions/anyoneWithLink", "Permission"),
        ("GET", "/drive/v2/files/1abc/revisions", "RevisionList"),
        ("GET", "/drive/v2/changes/startPageToken", "StartPageToken"),
        ("GET", "/drive/v2/changes", "ChangeList"),
        ("POST", "/drive/v2/drives", "Drive"),
        ("GET", "/drive/v2/teamdrives", "TeamDriveList"),
        ("GET", "/drive/v2/permissionIds/a@b.c", "PermissionId"),
    ],
)
def test_schema_for_request(method: str, path: str, name: str) -> None:
    assert schema_for_request(method, path) == name


def test_schema_for_request_unknown_path() -> None:
    with pytest.raises(KeyError):
        schema_for_request("GET", "/drive/v2/nothing/here")
