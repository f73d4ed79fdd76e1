"""Property tests: damaged model files never escape as anything but colabmodels errors.

Real files of every format (written by their own frameworks in the session corpora) are
truncated, bit-flipped, spliced or replaced by random bytes, then given to ``sniff_format`` and
to ``load_path`` (without ``trust``). Each call must return or raise one of the documented
:mod:`colabmodels.errors` types: never another exception, never a hang (pytest-timeout), and
never code execution: the corpus holds pickles that would create a marker file when really
unpickled, and no marker may ever appear.

Examples are derandomized and few (a few hundred in all) so the tier stays fast.
"""

from __future__ import annotations

import pathlib
import pickle
import shutil
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from colabmodels.errors import (
    ArchitectureMismatchError,
    ColabModelsError,
    MissingDependencyError,
    NotFoundError,
    UnknownFormatError,
    UnsafeArchiveError,
    UntrustedFormatError,
)
from colabmodels.formats import load_path, sniff_format

pytestmark = [pytest.mark.frameworks, pytest.mark.timeout(300)]

SNIFF_ERRORS = (UnknownFormatError, UnsafeArchiveError, NotFoundError, MissingDependencyError)
LOAD_ERRORS = (
    *SNIFF_ERRORS,
    UntrustedFormatError,
    ArchitectureMismatchError,
)
FUZZ = settings(
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


class Toucher:
    """Unpickling this creates ``marker`` (``pathlib.Path.touch``): proof that code ran."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (pathlib.Path.touch, (pathlib.Path(self.marker),))


@pytest.fixture(scope="session")
def fuzz_corpus(
    tmp_path_factory, keras_corpus, tf_corpus, torch_corpus, gensim_corpus, onnx_corpus
):
    """``(bytes by format name, marker folder)``: one real file per format."""
    torch = pytest.importorskip("torch")
    gensim_utils = pytest.importorskip("gensim.utils")
    d = tmp_path_factory.mktemp("fuzz-corpus")
    markers = tmp_path_factory.mktemp("fuzz-markers")
    files = {
        "keras-zip": keras_corpus["keras"].path,
        "keras-zip-lambda": keras_corpus["keras-lambda"].path,
        "keras-h5": keras_corpus["keras-h5"].path,
        "keras-weights-h5": keras_corpus["keras-weights"].path,
        "torch-zip": torch_corpus["state-dict"].path,
        "torch-legacy": torch_corpus["state-dict-legacy"].path,
        "torch-full-zip": torch_corpus["full"].path,
        "torchscript": torch_corpus["torchscript"].path,
        "safetensors": torch_corpus["safetensors"].path,
        "gensim": gensim_corpus["gensim-file"].path,
        "word2vec-text": gensim_corpus["word2vec-text"].path,
        "word2vec-binary": gensim_corpus["word2vec-binary"].path,
        "onnx": onnx_corpus["onnx"].path,
        "tf-index": Path(str(tf_corpus["tf-checkpoint-prefix"].path) + ".index"),
    }
    corpus = {name: path.read_bytes() for name, path in files.items()}
    # pickles that would create a marker if anything really unpickled them
    torch.save({"w": torch.ones(2), "p": Toucher(markers / "torch-zip")}, d / "tz")
    torch.save(
        {"w": torch.ones(2), "p": Toucher(markers / "torch-legacy")},
        d / "tl",
        _use_new_zipfile_serialization=False,
    )
    corpus["marker-torch-zip"] = (d / "tz").read_bytes()
    corpus["marker-torch-legacy"] = (d / "tl").read_bytes()
    corpus["marker-gensim"] = pickle.dumps(
        [gensim_utils.SaveLoad, {"__numpys": ["vectors"]}, Toucher(markers / "gensim")],
        protocol=4,
    )
    for name in ("marker-torch-zip", "marker-torch-legacy", "marker-gensim"):
        expected = "gensim" if "gensim" in name else "torch-pickle"
        (d / name).write_bytes(corpus[name])
        assert sniff_format(d / name).name == expected
    assert not list(markers.iterdir())
    return corpus, markers


@st.composite
def damage(draw, corpus: dict[str, bytes]) -> tuple:
    """A recipe (small, so a failing example prints readably): which file, and how to
    damage it (see :func:`_apply`)."""
    name = draw(st.sampled_from(sorted(corpus)))
    size = len(corpus[name])
    how = draw(st.sampled_from(["truncate", "flip", "splice", "random"]))
    if how == "truncate":
        return name, how, draw(st.integers(0, size - 1))
    if how == "flip":
        # most structure sits in the first and last few KiB (headers, zip directories)
        at = st.one_of(
            st.integers(0, min(size, 4096) - 1),
            st.integers(max(size - 4096, 0), size - 1),
            st.integers(0, size - 1),
        )
        return name, how, draw(st.lists(st.tuples(at, st.integers(0, 7)), min_size=1, max_size=16))
    if how == "splice":
        return name, how, (draw(st.integers(0, size)), draw(st.binary(min_size=1, max_size=64)))
    return name, how, (draw(st.integers(0, 16)), draw(st.binary(max_size=1024)))


def _apply(corpus: dict[str, bytes], recipe: tuple) -> bytes:
    name, how, arg = recipe
    data = corpus[name]
    if how == "truncate":
        return data[:arg]
    if how == "flip":
        out = bytearray(data)
        for at, bit in arg:
            out[at] ^= 1 << bit
        return bytes(out)
    if how == "splice":
        at, junk = arg
        return data[:at] + junk + data[at + len(junk) :]
    keep, junk = arg  # a real signature, then noise
    return data[:keep] + junk


def _write(folder: Path, data: bytes) -> Path:
    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir()
    path = folder / "model.bin"
    path.write_bytes(data)
    return path


def _no_marker(markers: Path) -> None:
    assert not list(markers.iterdir()), "a pickle in the corpus ran code"


def test_sniffing_damaged_files_raises_only_documented_errors(fuzz_corpus, tmp_path_factory):
    corpus, markers = fuzz_corpus
    work = tmp_path_factory.mktemp("fuzz-sniff") / "case"
    seen: dict[str, int] = {}

    @settings(FUZZ, max_examples=300)
    @given(recipe=damage(corpus))
    def check(recipe):
        path = _write(work, _apply(corpus, recipe))
        try:
            info = sniff_format(path)
        except SNIFF_ERRORS as e:
            assert str(e)
            seen["error"] = seen.get("error", 0) + 1
        else:
            seen[info.name] = seen.get(info.name, 0) + 1
        _no_marker(markers)

    check()
    assert seen.get("error") and len(seen) > 3, seen  # both outcomes were exercised


def test_loading_damaged_files_raises_only_documented_errors(fuzz_corpus, tmp_path_factory):
    corpus, markers = fuzz_corpus
    work = tmp_path_factory.mktemp("fuzz-load") / "case"
    outcomes: dict[str, int] = {}

    @settings(FUZZ, max_examples=150)
    @given(recipe=damage(corpus))
    def check(recipe):
        path = _write(work, _apply(corpus, recipe))
        try:
            load_path(path)
        except LOAD_ERRORS as e:
            assert isinstance(e, ColabModelsError) and str(e)
            outcomes[type(e).__name__] = outcomes.get(type(e).__name__, 0) + 1
        else:
            outcomes["loaded"] = outcomes.get("loaded", 0) + 1
        _no_marker(markers)

    check()
    assert outcomes.get("UnknownFormatError") and outcomes.get("UntrustedFormatError"), outcomes


def test_random_bytes_are_unknown_or_documented(tmp_path_factory):
    work = tmp_path_factory.mktemp("fuzz-random") / "case"

    @settings(FUZZ, max_examples=100)
    @given(data=st.binary(max_size=4096))
    def check(data):
        path = _write(work, data)
        try:
            sniff_format(path)
        except SNIFF_ERRORS:
            pass
        try:
            load_path(path)
        except LOAD_ERRORS:
            pass

    check()


def test_marker_pickles_never_run_without_trust(fuzz_corpus, tmp_path):
    """The undamaged marker pickles: refused, and refusing them runs nothing."""
    corpus, markers = fuzz_corpus
    for name in ("marker-torch-zip", "marker-torch-legacy", "marker-gensim"):
        path = _write(tmp_path / name, corpus[name])
        with pytest.raises(UntrustedFormatError) as err:
            load_path(path)
        assert any(g.startswith("pathlib.") for g in err.value.would_run), err.value.would_run
        _no_marker(markers)
