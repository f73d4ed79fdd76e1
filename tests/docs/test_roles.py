"""Docstrings are Markdown on the site (mkdocstrings), so a Sphinx role such as ``:meth:`x```
shows as raw text there. The package's docstrings use code spans instead; these tests fail when
a role is back, in the source or on a built page.

``docs/hooks/rewrite_roles.py`` rewrites roles into code spans. ``TOLERATED`` may list files
that keep their roles for a while (none do now).
"""

from __future__ import annotations

import html
import importlib.util
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SITE = ROOT / "build" / "site"
TOLERATED: list[str] = []  # every file is rewritten; add a pattern here only while one is being edited
# a role as a built page shows it: the name in a code span after the role's prefix
RAW_ON_PAGE = re.compile(
    r":(?:py:)?(?:meth|func|class|data|mod|attr|exc|obj|const):(?:<code>(?P<code>.*?)</code>"
    r"|`(?P<tick>[^`<]*)`)", re.S)


@pytest.fixture(scope="module")
def rewrite_roles():
    spec = importlib.util.spec_from_file_location("rewrite_roles",
                                                  ROOT / "docs" / "hooks" / "rewrite_roles.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _tolerated(path: Path) -> bool:
    rel = path.relative_to(ROOT)
    return any(rel.match(pattern) for pattern in TOLERATED)


def _sources() -> list[Path]:
    return sorted((ROOT / "colabmodels").rglob("*.py"))


def test_the_rewrite_keeps_what_a_reader_sees(rewrite_roles):
    text = ("See :func:`load_model`, :meth:`~colabmodels.cachestore.Cache.clear`, "
            ":class:`DriveSession\n    <colabmodels.drive.session.DriveSession>` and "
            ":mod:`colabmodels.errors`.")
    assert rewrite_roles.rewrite(text) == (
        "See ``load_model``, ``clear``, ``DriveSession`` and ``colabmodels.errors``.")
    assert rewrite_roles.rewrite("plain ``code`` and `md`") == "plain ``code`` and `md`"


def test_no_sphinx_roles_in_the_package_docstrings(rewrite_roles):
    found = {str(p.relative_to(ROOT)): len(rewrite_roles.ROLE.findall(p.read_text(encoding="utf-8")))
             for p in _sources() if not _tolerated(p)}
    found = {name: n for name, n in found.items() if n}
    assert not found, (f"Sphinx roles show as raw text on the site: run "
                       f"python docs/hooks/rewrite_roles.py {' '.join(found)}")


def test_built_pages_show_no_raw_roles(rewrite_roles):
    """Every page of the last build (`make docs`): a raw role is allowed only when one of the
    tolerated files holds it."""
    pages = sorted(SITE.rglob("*.html")) if SITE.is_dir() else []
    if not pages:
        pytest.skip(f"no built site in {SITE}: `make docs` builds it")
    tolerated_bodies = set()
    for path in _sources():
        if _tolerated(path):
            for match in rewrite_roles.ROLE.finditer(path.read_text(encoding="utf-8")):
                tolerated_bodies.add(" ".join(match.group("body").split()))
    shown: dict[str, list[str]] = {}
    for page in pages:
        for match in RAW_ON_PAGE.finditer(page.read_text(encoding="utf-8")):
            body = " ".join(html.unescape(match.group("code") or match.group("tick") or "").split())
            if body not in tolerated_bodies:
                shown.setdefault(str(page.relative_to(SITE)), []).append(match.group(0)[:80])
    assert not shown, shown


def test_the_page_check_sees_a_rendered_role():
    page = "<p>Call :meth:<code>Cache.clear &lt;colabmodels.cachestore.Cache.clear&gt;</code>.</p>"
    match = RAW_ON_PAGE.search(page)
    assert match and html.unescape(match.group("code")).startswith("Cache.clear <")
    assert not RAW_ON_PAGE.search("<p>Call <code>Cache.clear</code>: see the note.</p>")
