"""Local names for remote ones: safe names kept, unsafe ones made safe, every child distinct."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from colabmodels.cachestore import MAX_NAME_BYTES, safe_relpath, sanitize_name, unique_names

pytestmark = pytest.mark.colab


@pytest.mark.parametrize("name", ["a.jpg", ".ipynb_checkpoints", ".a.jpg", "b_c.jpg", "naïve café.png",
                                  "x" * MAX_NAME_BYTES, "CONSOLE.txt", "a b (1).jpeg", "~", "-rf"])
def test_safe_names_stay(name):
    assert sanitize_name(name) == name


@pytest.mark.parametrize(("name", "expected"), [
    ("..", "_._"), (".", "__"), ("/", "_"), ("a/b", "a_b"), ("b:c.jpg", "b_c.jpg"), ("x\x00y", "x_y"),
    ("CON", "_CON"), ("nul.txt", "_nul.txt"), ("com1.jpg", "_com1.jpg"), ("trailing. ", "trailing._"),
    ("", "file"), ("a\\b", "a_b"),
])
def test_unsafe_names_change(name, expected):
    assert sanitize_name(name) == expected


def test_long_names_keep_their_extension():
    name = "é" * 300 + ".jpeg"
    out = sanitize_name(name)
    assert len(out.encode()) <= MAX_NAME_BYTES and out.endswith(".jpeg")
    out.encode().decode()  # cut at a character boundary


@settings(max_examples=300)
@given(st.text(max_size=400))
def test_any_name_is_one_safe_component(name):
    out = sanitize_name(name)
    assert out and out not in (".", "..")
    assert "/" not in out and "\\" not in out and "\x00" not in out
    assert len(out.encode()) <= MAX_NAME_BYTES
    assert Path(out).name == out


@settings(max_examples=200)
@given(st.lists(st.text(max_size=40), max_size=6))
def test_relpaths_never_escape(parts):
    rel = "/".join(parts)
    try:
        path = safe_relpath(rel)
    except Exception:  # only a path with no name at all ("", "/", "\\"): both are separators
        assert not [p for p in rel.replace("\\", "/").split("/") if p]
        return
    assert not path.is_absolute()
    assert ".." not in path.parts and "." not in path.parts
    root = Path("/root/tree")
    assert str((root / path).resolve(strict=False)).startswith(str(root) + "/")


@settings(max_examples=300)
@given(st.lists(st.tuples(st.text("abcdefXYZ0123456789-_", min_size=1, max_size=12),
                          st.sampled_from(["a.jpg", ".a.jpg", "b:c.jpg", "b_c.jpg", "x", "X", "..",
                                           "b_c~abc.jpg", "nul", "_nul", "t" * 250 + ".png"])),
                unique_by=lambda c: c[0], max_size=10))
def test_unique_names_are_distinct_and_stable(children):
    out = unique_names(children)
    assert set(out) == {cid for cid, _ in children}
    assert len(set(out.values())) == len(children)
    assert all(len(n.encode()) <= MAX_NAME_BYTES + 40 and "/" not in n for n in out.values())
    assert unique_names(list(reversed(children))) == out  # independent of listing order
    for cid, name in children:  # a safe name nobody else claims is kept
        if sanitize_name(name) == name and [c for c, n in children if sanitize_name(n) == name] == [cid]:
            assert out[cid] == name


def test_exact_names_win_over_sanitised_ones():
    out = unique_names([("id1", "b:c.jpg"), ("id2", "b_c.jpg"), ("id3", "t.txt"), ("id0", "t.txt")])
    assert out["id2"] == "b_c.jpg" and out["id1"] == "b_c~id1.jpg"
    assert out["id0"] == "t.txt" and out["id3"] == "t~id3.txt"
