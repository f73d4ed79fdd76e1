"""The Drive v2 ``q=`` compiler used by the Drive emulator."""

from __future__ import annotations

import datetime as dt
import re
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from colabmodels.testing.fakedrive.query import (
    QueryError,
    compile_drive_query,
    compile_query,
    parse_rfc3339,
    plan_query,
    words_match,
)

pytestmark = pytest.mark.unit

ROOT = "0AAroot"
ME = "me@example.com"
ALIASES = {"root": ROOT, "me": ME}


def make_file(**over: Any) -> dict[str, Any]:
    f: dict[str, Any] = {
        "kind": "drive#file",
        "id": "f1",
        "title": "Model Weights.h5",
        "mimeType": "application/x-hdf5",
        "parents": [{"id": ROOT}, {"id": "folderB"}],
        "owners": [{"emailAddress": "Me@Example.com"}],
        "labels": {"trashed": False, "starred": True, "hidden": False},
        "createdDate": "2026-11-20T08:00:00.000Z",
        "modifiedDate": "2026-11-22T10:00:00.000Z",
        "properties": [
            {"key": "colabmodels", "value": "1", "visibility": "PUBLIC"},
            {"key": "secret", "value": "s", "visibility": "PRIVATE"},
            {"key": "novis", "value": "n"},
        ],
        "shortcutDetails": {"targetId": "t1"},
    }
    f.update(over)
    return f


FILE = make_file()
FOLDER = make_file(
    id="d1",
    title="it's a \\ folder",
    mimeType="application/vnd.google-apps.folder",
    parents=[{"id": "folderB"}],
    owners=[],
    labels={"trashed": True},
    modifiedDate="2020-01-01T00:00:00Z",
    createdDate="2019-06-04T12:00:00.5+02:00",
    properties=[],
    sharedWithMe=True,
    lastViewedByMeDate="2021-01-01T00:00:00Z",
)
del FOLDER["shortcutDetails"]


def matches(q: str, f: dict[str, Any]) -> bool:
    return compile_query(q, aliases=ALIASES)(f)


# (query, matches FILE, matches FOLDER)
CASES: list[tuple[str, bool, bool]] = [
    # empty query
    ("", True, True),
    ("   ", True, True),
    # parents / owners
    ("'root' in parents", True, False),
    ("'folderB' in parents", True, True),
    ("'nope' in parents", False, False),
    (f"'{ROOT}' in parents", True, False),
    ("'me' in owners", True, False),
    ("'ME@example.COM' in owners", True, False),
    # booleans (default false when absent)
    ("trashed = false", True, False),
    ("trashed = true", False, True),
    ("trashed != true", True, False),
    ("trashed = FALSE", True, False),
    ("starred = true", True, False),
    ("starred != false", True, False),
    ("hidden = false", True, True),
    ("hidden = true", False, False),
    ("sharedWithMe = true", False, True),
    ("sharedWithMe = false", True, False),
    # title
    ("title = 'Model Weights.h5'", True, False),
    ("title = 'model weights.h5'", False, False),  # = is exact
    ("title != 'Model Weights.h5'", False, True),
    ("title contains 'weights'", True, False),  # case-insensitive substring
    ("title contains 'WEIGHTS.H'", True, False),
    ("title contains ''", True, True),
    ("title contains 'zzz'", False, False),
    # escapes
    ("title = 'it\\'s a \\\\ folder'", False, True),
    ("title contains '\\''", False, True),
    ("title contains '\\\\'", False, True),
    # mimeType
    ("mimeType = 'application/vnd.google-apps.folder'", False, True),
    ("mimeType != 'application/vnd.google-apps.folder'", True, False),
    ("mimeType contains 'hdf5'", True, False),
    ("mimeType contains 'GOOGLE-APPS'", False, True),
    # shortcut target
    ("shortcutDetails.targetId = 't1'", True, False),
    ("shortcutDetails.targetId != 't1'", False, True),
    # dates: every operator
    ("modifiedDate > '2026-11-22T09:59:59'", True, False),
    ("modifiedDate > '2026-11-22T10:00:00'", False, False),
    ("modifiedDate >= '2026-11-22T10:00:00'", True, False),
    ("modifiedDate < '2026-11-22T10:00:00'", False, True),
    ("modifiedDate <= '2026-11-22T10:00:00'", True, True),
    ("modifiedDate = '2026-11-22T10:00:00'", True, False),
    ("modifiedDate != '2026-11-22T10:00:00'", False, True),
    # fraction, Z, offsets, date-only
    ("modifiedDate = '2026-11-22T10:00:00.000Z'", True, False),
    ("modifiedDate = '2026-11-22T10:00:00.000000001Z'", True, False),  # beyond microseconds
    ("modifiedDate > '2026-11-22T10:00:00.001Z'", False, False),
    ("modifiedDate = '2026-11-22T11:00:00+01:00'", True, False),
    ("modifiedDate = '2026-11-22T02:00:00-08:00'", True, False),
    ("modifiedDate < '2026-11-22T10:00:00+01:00'", False, True),
    ("modifiedDate >= '2026-11-22'", True, False),
    ("modifiedDate = '2020-01-01'", False, True),
    # createdDate (FOLDER's has a fraction and an offset)
    ("createdDate = '2019-06-04T10:00:00.500Z'", False, True),
    ("createdDate < '2019-06-04T10:00:00.6Z'", False, True),
    ("createdDate > '2026-01-01T00:00:00'", True, False),
    # lastViewedByMeDate: missing is false for every operator
    ("lastViewedByMeDate > '2000-01-01T00:00:00'", False, True),
    ("lastViewedByMeDate != '2000-01-01T00:00:00'", False, True),
    ("not lastViewedByMeDate > '2000-01-01T00:00:00'", True, False),
    # properties has
    ("properties has { key='colabmodels' and value='1' }", True, False),
    ("properties has { key='colabmodels' and value='1' and visibility='PUBLIC' }", True, False),
    ("properties has { key='colabmodels' and value='1' and visibility='PRIVATE' }", False, False),
    ("properties has { value='s' and key='secret' and visibility='private' }", True, False),
    ("properties has { key='novis' and value='n' and visibility='PRIVATE' }", True, False),
    ("properties has {key='colabmodels' and value='2'}", False, False),
    ("properties has { key='secret' and value='1' }", False, False),  # same prop must match both
    ("not properties has { key='colabmodels' and value='1' }", False, True),
    # boolean logic
    ("title contains 'model' and trashed = false", True, False),
    ("title contains 'model' or trashed = true", True, True),
    ("not trashed = true", True, False),
    ("not not trashed = true", False, True),
    ("not (trashed = true or starred = true)", False, False),
    ("(trashed = true)", False, True),
    ("((trashed = true))", False, True),
    # precedence: not > and > or
    ("trashed = true or starred = true and hidden = true", False, True),  # T or (S and H)
    ("(trashed = true or starred = true) and hidden = true", False, False),
    ("starred = true and hidden = false or trashed = true", True, True),
    ("not trashed = true and starred = true", True, False),  # (not T) and S
    ("not trashed = false or starred = true", True, True),  # (not T) or S
    ("trashed = false and not starred = false or sharedWithMe = true", True, True),
    ("trashed = true or trashed = false and title = 'nope'", False, True),
    # keywords case-insensitive
    ("'root' IN parents AND trashed = False", True, False),
    ("NOT trashed = TRUE Or title Contains 'x'", True, False),
    ("title CONTAINS 'model'", True, False),
    ("properties HAS { key='colabmodels' AND value='1' }", True, False),
    # whitespace is optional around operators and brackets
    ("trashed=false and(title='Model Weights.h5')", True, False),
    ("\ttrashed\n=\nfalse ", True, False),
]


@pytest.mark.parametrize("q, want_file, want_folder", CASES, ids=[c[0] or "<empty>" for c in CASES])
def test_query(q: str, want_file: bool, want_folder: bool) -> None:
    pred = compile_query(q, aliases=ALIASES)
    assert pred(FILE) is want_file
    assert pred(FOLDER) is want_folder


def test_typical_pydrive_list_query() -> None:
    q = "'root' in parents and trashed=false and title = 'Model Weights.h5'"
    pred = compile_query(q, aliases={"root": ROOT})
    assert pred(FILE)
    assert not pred(make_file(labels={"trashed": True}))
    assert not pred(make_file(parents=[{"id": "other"}]))
    assert not pred(make_file(parents=[]))
    assert not pred({"title": "Model Weights.h5"})  # bare dict: no parents


def test_missing_keys_are_defaults() -> None:
    bare: dict[str, Any] = {}
    assert matches("trashed = false and starred = false and hidden = false", bare)
    assert matches("sharedWithMe = false", bare)
    assert not matches("'root' in parents", bare)
    assert matches("title contains ''", bare)  # a missing title counts as ''
    assert matches("title != 'x'", bare)
    assert not matches("modifiedDate > '2000-01-01T00:00:00'", bare)
    assert not matches("properties has { key='a' and value='b' }", bare)


def test_bad_stored_date_is_loud() -> None:
    pred = compile_query("modifiedDate > '2000-01-01T00:00:00'")
    with pytest.raises(ValueError):
        pred({"modifiedDate": "last tuesday"})


def test_long_chains_do_not_recurse() -> None:
    q = " or ".join(f"title = 't{i}'" for i in range(3000))
    assert compile_query(q)({"title": "t2999"})
    q = " and ".join("trashed = false" for _ in range(3000))
    assert compile_query(q)({})
    assert compile_query("not " * 3001 + "trashed = true")({})


@pytest.mark.parametrize(
    "text, expected",
    [
        ("2012-06-04T12:00:00", dt.datetime(2012, 6, 4, 12, tzinfo=dt.timezone.utc)),
        ("2012-06-04T12:00:00Z", dt.datetime(2012, 6, 4, 12, tzinfo=dt.timezone.utc)),
        ("2012-06-04T12:00:00.123Z", dt.datetime(2012, 6, 4, 12, 0, 0, 123000, dt.timezone.utc)),
        (
            "2012-06-04T12:00:00-08:00",
            dt.datetime(2012, 6, 4, 20, tzinfo=dt.timezone.utc),
        ),
        ("2012-06-04", dt.datetime(2012, 6, 4, tzinfo=dt.timezone.utc)),
    ],
)
def test_parse_rfc3339(text: str, expected: dt.datetime) -> None:
    assert parse_rfc3339(text) == expected


# (query, substring expected in the message, position)
ERRORS: list[tuple[str, str, int]] = [
    # unsupported / unknown terms
    ("fullText contains 'x'", "full-text search is not supported", 0),
    ("trashed = false and fullText contains 'x'", "full-text", 20),
    ("name = 'x'", "Drive v3 term", 0),
    ("modifiedTime > '2012-06-04T12:00:00'", "Drive v3 term", 0),
    ("appProperties has { key='a' and value='b' }", "Drive v3 term", 0),
    ("'a@b' in writers", "writers", 9),
    ("'a@b' in readers", "readers", 9),
    ("visibility = 'anyoneWithLink'", "visibility", 0),
    ("memberCount > 1", "shared-drive", 0),
    ("Title = 'x'", "did you mean 'title'", 0),
    ("mimetype = 'x'", "did you mean 'mimeType'", 0),
    ("colour = 'red'", "unknown search term 'colour'", 0),
    # operator not valid for the term
    ("title > 'x'", "operator '>' is not valid for 'title'", 6),
    ("title in 'x'", "expected an operator after 'title'", 6),
    ("trashed contains 'x'", "'contains' is not valid for 'trashed'", 8),
    ("trashed < true", "operator '<' is not valid for 'trashed'", 8),
    ("modifiedDate contains '2012'", "'contains' is not valid", 13),
    ("shortcutDetails.targetId contains 'x'", "'contains' is not valid", 25),
    ("parents = 'x'", "must be used as 'VALUE' in parents", 0),
    ("properties = 'x'", "expected 'has' after 'properties'", 11),
    ("title == 'x'", "unknown operator '=='", 6),
    ("title <> 'x'", "unknown operator '<>'", 6),
    ("title => 'x'", "unknown operator '=>'", 6),
    ("trashed = false && starred = true", "unknown operator '&&'", 16),
    ("title = 'x' = 'y'", "expected 'and', 'or' or end of query", 12),
    ("title ! 'x'", "unexpected character '!'", 6),
    # wrong value types
    ("trashed = 'true'", "must be compared with true or false", 10),
    ("trashed = yes", "must be compared with true or false", 10),
    ("trashed = 1", "must be compared with true or false", 10),
    ("title = true", "expected a string literal", 8),
    ("title = x", "expected a string literal", 8),
    ("modifiedDate > 'yesterday'", "not an RFC 3339 date-time", 15),
    ("modifiedDate > '2012-13-01T00:00:00'", "not a valid date-time", 15),
    ("modifiedDate > '2012-06-04T12:00'", "not an RFC 3339", 15),
    ("modifiedDate > '2012-06-04T12:00:00+25:00'", "bad UTC offset", 15),
    ("modifiedDate > 2012", "expected a string literal", 15),
    # membership
    ("'x' in title", "'in' needs 'parents' or 'owners'", 7),
    ("'x' in 'y'", "'in' needs 'parents' or 'owners'", 7),
    ("'x' = title", "expected 'in'", 4),
    ("'x'", "expected 'in'", 3),
    # properties has
    ("properties has { key='a' }", "needs value=", 25),
    ("properties has { value='a' }", "needs key=", 27),
    ("properties has { key='a' and key='b' and value='c' }", "'key' given twice", 29),
    ("properties has { key='a' and value='b' and visibility='SECRET' }", "PUBLIC' or 'PRIVATE", 54),
    ("properties has { key='a' or value='b' }", "expected 'and' or '}'", 25),
    ("properties has { key='a' and value='b'", "expected 'and' or '}'", 38),
    ("properties has key='a'", "expected '{'", 15),
    ("properties has { name='a' and value='b' }", "expected key=, value= or visibility=", 17),
    ("properties has { key!='a' and value='b' }", "expected '='", 20),
    ("properties has { key=a and value='b' }", "expected a string literal", 21),
    ("properties has { }", "expected key=", 17),
    # strings
    ("title = 'x", "unterminated string literal", 8),
    ("title = 'x\\'", "unterminated string literal", 8),
    ("title = 'x\\", "unterminated string literal", 8),
    ("title = 'a\\nb'", "unsupported escape sequence \\n", 10),
    ('title = "x"', "single quotes, not double quotes", 8),
    # structure
    ("and", "expected a search term", 0),
    ("trashed = false and", "expected a search term, found end of query", 19),
    ("trashed = false or or trashed = true", "expected a search term, found 'or'", 19),
    ("not", "expected a search term, found end of query", 3),
    ("trashed = false trashed = true", "expected 'and', 'or' or end of query", 16),
    ("trashed = false not starred = true", "expected 'and', 'or' or end of query", 16),
    ("(trashed = false", "expected ')' to close '(' at position 0", 16),
    ("trashed = false)", "unbalanced ')'", 15),
    ("()", "expected a search term, found ')'", 1),
    ("{ trashed = false }", "expected a search term, found '{'", 0),
    ("trashed = false;", "unexpected character ';'", 15),
    ("title = 'x' # comment", "unexpected character '#'", 12),
    ("title", "expected an operator after 'title', found end of query", 5),
    ("title contains", "expected a string literal", 14),
    ("(" * 60 + "trashed = true" + ")" * 60, "nested deeper than", 50),
]


@pytest.mark.parametrize("q, needle, position", ERRORS, ids=[e[0] for e in ERRORS])
def test_query_errors(q: str, needle: str, position: int) -> None:
    with pytest.raises(QueryError) as info:
        compile_query(q, aliases=ALIASES)
    err = info.value
    assert isinstance(err, ValueError)
    assert needle in str(err)
    assert err.position == position, str(err)
    assert f"position {position}" in str(err)
    assert err.query == q


@pytest.mark.parametrize("q", ["'root' in parents", "'me' in owners"])
def test_special_values_need_aliases(q: str) -> None:
    with pytest.raises(QueryError, match="needs an alias"):
        compile_query(q)
    with pytest.raises(QueryError, match="needs an alias"):
        compile_query(q, aliases={"other": "x"})


def test_alias_only_applies_to_its_collection() -> None:
    # 'me' is only special in owners, 'root' only in parents
    pred = compile_query("'me' in parents", aliases=ALIASES)
    assert pred({"parents": [{"id": "me"}]})
    assert not pred({"parents": [{"id": ME}]})


def test_non_string_query() -> None:
    with pytest.raises(TypeError):
        compile_query(None)  # type: ignore[arg-type]


# ---------------------------------------------------------------- property tests

SAMPLE_FILES = [FILE, FOLDER, {}, make_file(parents=None, labels=None, properties=None)]

_ALPHABET = st.sampled_from(
    [*"()'{}\\\"=!<> \t\n,;#", "a", "b", "Z", "0", "9", ".", "_", "-", ":", "é"]
)
_WORDS = st.sampled_from(
    [
        "and", "or", "not", "in", "has", "contains", "true", "false", "title", "mimeType",
        "trashed", "starred", "hidden", "sharedWithMe", "parents", "owners", "properties",
        "modifiedDate", "createdDate", "fullText", "key", "value", "visibility", "'root'",
        "'x'", "'2012-06-04T12:00:00'", "'a\\'b'", "=", "!=", "<", "<=", ">", ">=", "(", ")",
        "{", "}", "'", "\\",
    ]
)  # fmt: skip


@settings(max_examples=400, suppress_health_check=[HealthCheck.too_slow])
@given(st.one_of(st.text(), st.text(_ALPHABET), st.lists(_WORDS).map(" ".join)))
def test_random_strings_compile_or_raise_query_error(q: str) -> None:
    try:
        pred = compile_query(q, aliases=ALIASES)
    except QueryError as err:
        assert 0 <= err.position <= len(q)
        return
    for f in SAMPLE_FILES:
        assert isinstance(pred(f), bool)


# Generate well-formed queries together with their expected meaning and check
# the compiled predicate against a direct evaluation.

_ATOMS: list[tuple[str, Any]] = [
    ("trashed = true", lambda f: bool((f.get("labels") or {}).get("trashed"))),
    ("trashed = false", lambda f: not (f.get("labels") or {}).get("trashed")),
    ("starred = true", lambda f: bool((f.get("labels") or {}).get("starred"))),
    ("sharedWithMe = true", lambda f: bool(f.get("sharedWithMe"))),
    ("'root' in parents", lambda f: any(p["id"] == ROOT for p in f.get("parents") or [])),
    ("'folderB' in parents", lambda f: any(p["id"] == "folderB" for p in f.get("parents") or [])),
    (
        "title contains 'model'",
        lambda f: any(w.startswith("model") for w in re.split(r"[^0-9a-z]+", (f.get("title") or "").lower())),
    ),
    ("mimeType = 'application/x-hdf5'", lambda f: f.get("mimeType") == "application/x-hdf5"),
    (
        "modifiedDate > '2025-01-01T00:00:00'",
        lambda f: "modifiedDate" in f and f["modifiedDate"] > "2025-01-01T00:00:00",
    ),
]


@st.composite
def _expressions(draw: st.DrawFn, depth: int = 0) -> tuple[str, Any]:
    choices = ["atom", "atom", "not", "and", "or", "paren"] if depth < 4 else ["atom"]
    kind = draw(st.sampled_from(choices))
    if kind == "atom":
        atom: tuple[str, Any] = draw(st.sampled_from(_ATOMS))
        return atom
    if kind == "not":
        text, fn = draw(_expressions(depth + 1))
        return f"not ({text})", lambda f, fn=fn: not fn(f)
    if kind == "paren":
        text, fn = draw(_expressions(depth + 1))
        return f"({text})", fn
    (lt, lf), (rt, rf) = draw(_expressions(depth + 1)), draw(_expressions(depth + 1))
    # Parenthesise both sides so the string's meaning is the tree's meaning.
    if kind == "and":
        return f"({lt}) and ({rt})", lambda f, lf=lf, rf=rf: lf(f) and rf(f)
    return f"({lt}) or ({rt})", lambda f, lf=lf, rf=rf: lf(f) or rf(f)


@settings(max_examples=200)
@given(_expressions())
def test_generated_queries_match_direct_evaluation(expr: tuple[str, Any]) -> None:
    text, fn = expr
    pred = compile_query(text, aliases=ALIASES)
    for f in (FILE, FOLDER, {}):
        assert pred(f) == bool(fn(f)), text


@settings(max_examples=200)
@given(st.lists(st.sampled_from(_ATOMS), min_size=1, max_size=6), st.data())
def test_unparenthesised_precedence(atoms: list[tuple[str, Any]], data: st.DataObject) -> None:
    """Joining atoms with random and/or/not must follow not > and > or."""
    ops = [data.draw(st.sampled_from(["and", "or"])) for _ in atoms[1:]]
    negs = [data.draw(st.booleans()) for _ in atoms]
    parts = [("not " if n else "") + a[0] for a, n in zip(atoms, negs, strict=True)]
    text = parts[0] + "".join(f" {op} {p}" for op, p in zip(ops, parts[1:], strict=True))

    def evaluate(f: dict[str, Any]) -> bool:
        values = [bool(a[1](f)) != n for a, n in zip(atoms, negs, strict=True)]
        # split on 'or' into and-groups
        groups: list[list[bool]] = [[values[0]]]
        for op, v in zip(ops, values[1:], strict=True):
            if op == "or":
                groups.append([v])
            else:
                groups[-1].append(v)
        return any(all(g) for g in groups)

    pred = compile_query(text, aliases=ALIASES)
    for f in (FILE, FOLDER, {}):
        assert pred(f) == evaluate(f), text


# -- title contains: word prefixes, as Drive matches them ------------------------------------


@pytest.mark.parametrize(
    "needle, title, expected",
    [
        ("Hello", "HelloWorld", True),
        ("World", "HelloWorld", False),
        ("world", "Hello World", True),
        ("v2", "resnet_v2.pth", True),
        ("net", "resnet_v2.pth", False),
        ("res pth", "resnet_v2.pth", True),
        ("res zzz", "resnet_v2.pth", False),
        ("2024", "run-2024-05.ckpt", True),
        (".", "a.b", True),  # no words in the needle: a substring test
        ("", "anything", True),
    ],
)
def test_words_match(needle: str, title: str, expected: bool) -> None:
    assert words_match(needle, title) is expected
    assert compile_query(f"title contains '{needle}'")({"title": title}) is expected


@settings(max_examples=300)
@given(st.text(alphabet="abAB1 _-.", max_size=12), st.text(alphabet="abAB1 _-.", max_size=12))
def test_words_match_never_matches_more_than_substring_search(needle: str, title: str) -> None:
    """Every word of the needle starts a word of the title, so each is a substring of it."""
    if words_match(needle, title) and re.search(r"[0-9a-z]", needle.lower()):
        for word in re.split(r"[^0-9a-z]+", needle.lower()):
            assert word in title.lower()


def test_drive_query_terms() -> None:
    view = {"name": "Team Models", "hidden": False, "createdTime": "2026-01-01T00:00:00.000Z",
            "memberCount": 3, "organizerCount": 1}
    assert compile_drive_query("name = 'Team Models'")(view)
    assert compile_drive_query("name contains 'mod' and hidden = false")(view)
    assert not compile_drive_query("name contains 'odels'")(view)
    assert compile_drive_query("memberCount >= 2 and organizerCount = 1")(view)
    assert compile_drive_query("createdTime > '2025-06-01T00:00:00'")(view)
    with pytest.raises(QueryError, match="'name', not 'title'"):
        compile_drive_query("title = 'x'")
    with pytest.raises(QueryError):
        compile_drive_query("'x' in parents")


# -- plan_query: the folders a query's matches must be in (the emulator lists only their children)


@pytest.mark.parametrize(
    "q, parents",
    [
        ("'F' in parents", {"F"}),
        ("'F' in parents and trashed = false", {"F"}),
        ("trashed = false and ('F' in parents)", {"F"}),
        ("'root' in parents and title contains 'x'", {ROOT}),
        ("'A' in parents or 'B' in parents", {"A", "B"}),
        ("('A' in parents and starred = true) or ('B' in parents and trashed = false)", {"A", "B"}),
        ("'A' in parents and 'B' in parents", {"A"}),
        ("('A' in parents or 'B' in parents) and 'C' in parents", {"C"}),
        ("not not 'F' in parents", {"F"}),
        ("", None),
        ("trashed = false", None),
        ("'A' in parents or starred = true", None),
        ("not 'F' in parents", None),
        ("not ('F' in parents and trashed = false)", None),
        ("'me' in owners", None),
    ],
)
def test_plan_query_parent_scope(q: str, parents: set[str] | None) -> None:
    plan = plan_query(q, aliases=ALIASES)
    assert plan.parents == (None if parents is None else frozenset(parents))
    for f in SAMPLE_FILES:  # the plan's predicate is the compiled query
        assert plan.predicate(f) == compile_query(q, aliases=ALIASES)(f)


def test_plan_query_errors_like_compile_query() -> None:
    with pytest.raises(QueryError):
        plan_query("'F' in parents and")
    with pytest.raises(TypeError):
        plan_query(None)  # type: ignore[arg-type]


@settings(max_examples=300)
@given(_expressions())
def test_plan_scope_never_excludes_a_match(expr: tuple[str, Any]) -> None:
    """Whenever a plan names folders, every file the query accepts has one of them as a parent."""
    text, fn = expr
    plan = plan_query(text, aliases=ALIASES)
    if plan.parents is None:
        return
    for f in (*SAMPLE_FILES, FILE, FOLDER, {}):
        if fn(f):
            assert any(p["id"] in plan.parents for p in f.get("parents") or []), text
