"""colabmodels.presentation: the sizes, times, tables and messages every face shows."""

from __future__ import annotations

import datetime as dt
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from colabmodels import presentation as p
from colabmodels.errors import NotFoundError, OfflineError, UntrustedFormatError

pytestmark = [pytest.mark.unit, pytest.mark.colab]


# -- sizes ------------------------------------------------------------------------------------

@pytest.mark.parametrize("n, text", [
    (0, "0 B"), (10, "10 B"), (1023, "1023 B"), (1024, "1.0 KiB"), (1536, "1.5 KiB"),
    (3 * 1024**2 + 512 * 1024, "3.5 MiB"), (5 * 1024**3, "5.0 GiB"), (2 * 1024**5, "2048.0 TiB"),
    (None, ""),
])
def test_format_size(n, text):
    assert p.format_size(n) == text


@pytest.mark.parametrize("text, expected", [
    ("1000", 1000), ("1.5KB", 1500), ("2k", 2048), ("2KiB", 2048), ("500MB", 500_000_000),
    ("5GiB", 5 * 1024**3), ("5G", 5 * 1024**3), ("0", 0), (" 7 mb ", 7_000_000), (42, 42),
])
def test_parse_size(text, expected):
    assert p.parse_size(text) == expected


@pytest.mark.parametrize("bad", ["lots", "", "5 XB", "-3", "1e6", -1])
def test_parse_size_rejects_what_is_no_size(bad):
    with pytest.raises(ValueError, match="is not a size"):
        p.parse_size(bad)


def test_sizes_round_trip_through_the_binary_units():
    for n in (1024, 1536, 3 * 1024**2, 5 * 1024**3):
        number, unit = p.format_size(n).split()
        assert p.parse_size(f"{number}{unit}") == n


# -- times ------------------------------------------------------------------------------------

@pytest.mark.parametrize("seconds, text", [
    (-5, "just now"), (0, "just now"), (44, "just now"), (45, "1 min ago"), (180, "3 min ago"),
    (7200, "2 h ago"), (86400, "1 day ago"), (5 * 86400, "5 days ago"),
    (90 * 86400, "3 months ago"),
])
def test_format_age(seconds, text):
    assert p.format_age(seconds) == text


def test_format_time_of_each_kind_of_moment():
    moment = dt.datetime(2026, 11, 21, 10, 0, tzinfo=dt.timezone.utc)
    local = moment.astimezone().strftime("%Y-%m-%d %H:%M")
    assert p.format_time("2026-11-21T10:00:00.000Z") == local  # Drive's modifiedDate
    assert p.format_time("2026-11-21T10:00:00+00:00") == local  # a manifest's created
    assert p.format_time(moment.timestamp()) == local
    assert p.format_time(moment) == local
    assert p.format_time(None) == "" and p.format_time("") == ""
    assert p.format_time("not a time") == "not a time"
    now = moment.timestamp() + 3 * 3600
    assert p.format_time("2026-11-21T10:00:00Z", relative=True, now=now) == "3 h ago"


# -- tables -----------------------------------------------------------------------------------

@dataclass
class Info:
    version: int
    created: str = "2026-11-21T10:00:00+00:00"
    framework: str = "torch"
    format: str = "safetensors"
    metadata: dict = field(default_factory=dict)
    files: list = field(default_factory=list)
    ref: str = ""


@dataclass
class Entry:
    name: str
    size: int
    source: str
    kind: str = "file"
    created: float = 0.0
    last_used: float = 0.0
    extra: dict = field(default_factory=dict)


def test_versions_table_text_and_html():
    table = p.versions_table([Info(1, metadata={"acc": 0.9}),
                              Info(2, metadata={"acc": 0.93, "note": "a <b>"})], "MyDrive/m")
    lines = repr(table).splitlines()
    assert lines[0].split() == ["version", "created", "framework", "format", "metadata"]
    assert set(lines[1]) <= {"-", " "}
    assert lines[3].split() == ["v2", "2026-11-21T10:00:00+00:00", "torch", "safetensors",
                                "acc=0.93", "note=a", "<b>"]
    assert lines[2].index("torch") == lines[3].index("torch") == lines[0].index("framework")
    html = table._repr_html_()
    assert html == table.to_html() and html.count("<tr>") == 3
    assert "a &lt;b&gt;" in html and "<b>" not in html
    assert [i.version for i in table] == [1, 2]  # still the list of infos


def test_empty_tables_say_so():
    assert repr(p.versions_table([], "MyDrive/m")) == "no saved versions under MyDrive/m"
    assert repr(p.versions_table([])) == "no saved versions"
    assert repr(p.cache_table([], "/c")) == "the cache is empty (/c)"
    assert p.cache_table([], "/c")._repr_html_() == "<p><em>the cache is empty (/c)</em></p>"


def test_cache_table_columns_and_footer():
    now = 1_000_000.0
    table = p.cache_table([Entry("vgg.pth", 1536, "MyDrive/vgg.pth", last_used=now - 10),
                           Entry("saved", 2048, "gs://b/saved", kind="tree", created=now - 7200)],
                          "/c", now=now)
    assert table.rows == [["vgg.pth", "1.5 KiB", "just now", "MyDrive/vgg.pth"],
                          ["saved/", "2.0 KiB", "2 h ago", "gs://b/saved"]]
    assert repr(table).splitlines()[-1] == "2 entries, 3.5 KiB in /c"


# -- messages ---------------------------------------------------------------------------------

def test_verify_report():
    assert p.verify_report([], 3) == "all 3 entries verified"
    bad = Entry("bad.bin", 100, "https://x/bad.bin", extra={"problem": "md5 differs"})
    assert p.verify_report([bad], 2).splitlines() == [
        "1 of 2 entries were bad and have been removed (they are fetched again on next use):",
        "  bad.bin (100 B, https://x/bad.bin): md5 differs"]


@dataclass
class Report:
    action: str
    root: Path
    entries: list
    checked: int = 0
    left_bytes: int = 0


def test_cache_report_of_each_action():
    gone = [Entry("a", 1000, "s"), Entry("b", 1048, "s")]
    assert p.cache_report(Report("prune", Path("/c"), gone, left_bytes=10)) == \
        "removed 2 entries (2.0 KiB); 10 B left in /c"
    assert p.cache_report(Report("clear", Path("/c"), gone)) == "removed 2 entries (2.0 KiB) from /c"
    assert p.cache_report(Report("verify", Path("/c"), [], checked=4)) == "all 4 entries verified"
    assert p.cache_report(Report("ls", Path("/c"), [])) == "the cache is empty (/c)"
    with pytest.raises(ValueError):
        p.cache_report(Report("explode", Path("/c"), []))


def test_saved_line():
    info = Info(1, ref="MyDrive/m@v1", files=[{"size": 1024}, {"size": 512}, {"size": None}])
    assert p.saved_line("net", info) == "Saved net as MyDrive/m@v1 (torch · safetensors · 1.5 KiB)"


def test_error_line_speaks_each_faces_words():
    offline = OfflineError("x is not in the cache and offline mode is on. Run once online "
                           "(unset COLABMODELS_OFFLINE or pass offline=False) to download it.")
    assert p.error_line(offline) == f"OfflineError: {offline}"
    cli = p.error_line(offline, "cli")
    assert cli.startswith("OfflineError: x is not in the cache")
    assert "(unset COLABMODELS_OFFLINE or run without --offline)" in cli
    assert p.error_line(offline, "magic") == cli
    untrusted = UntrustedFormatError("loading m.pt runs code; pass trust=True if you trust it")
    assert p.error_line(untrusted, "magic").endswith("add --trust if you trust it")
    assert p.error_line(untrusted, "python").endswith("pass trust=True if you trust it")
    arch = UntrustedFormatError("pass arch='torchvision.models.vgg16' or pass checkpoint=x")
    assert p.error_line(arch, "cli") == ("UntrustedFormatError: add --arch torchvision.models.vgg16"
                                        " or pass checkpoint=x")  # no flag for checkpoint=
    missing = NotFoundError("nothing saved there; save a first version with cm.save_model")
    assert p.error_line(missing, "magic").endswith("with %save_model")
    assert p.error_line(missing, "cli").endswith("with cm.save_model")


# -- typed values -----------------------------------------------------------------------------

@pytest.mark.parametrize("items, expected", [
    (["acc=0.93"], {"acc": 0.93}),
    (["epochs=3", "ok=true", "none=null"], {"epochs": 3, "ok": True, "none": None}),
    (["note=fine tuned"], {"note": "fine tuned"}),
    (["tags=[1, 2]", "v=007", "eq=a=b"], {"tags": [1, 2], "v": "007", "eq": "a=b"}),
    (['cfg={"lr": 0.1}'], {"cfg": {"lr": 0.1}}),
    (["empty="], {"empty": ""}),
    ([], {}), (None, {}),
])
def test_parse_meta(items, expected):
    assert p.parse_meta(items) == expected


@pytest.mark.parametrize("bad", ["novalue", "=x"])
def test_parse_meta_rejects_items_without_key(bad):
    with pytest.raises(ValueError, match="key=value"):
        p.parse_meta([bad])


def test_presentation_is_a_leaf():
    """It imports nothing of colabmodels at run time, so every layer may use it."""
    code = ("import sys, colabmodels.presentation; "
            "print(sorted(m for m in sys.modules if m.startswith('colabmodels.')))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split("\n")[0] == "['colabmodels._version', 'colabmodels.errors', " \
        "'colabmodels.presentation']"
