"""Issue 12, format side: errors name what the user typed, pickle refusals list what matters,
a gensim main file says which sidecars it needs, and TF checkpoint prefixes load."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np
import pytest

from colabmodels.errors import (
    ArchitectureMismatchError,
    NotFoundError,
    UnknownFormatError,
    UntrustedFormatError,
)
from colabmodels.formats import gensim_io, load_path, sniff_format, tf_io
from colabmodels.formats.paths import linked_files

pytestmark = pytest.mark.frameworks

LINK = "https://drive.google.com/file/d/1AbCdEf/view"


def _cache_blob(tmp_path: Path, source: Path) -> Path:
    """A copy of ``source`` where the cache keeps files: a name that says nothing."""
    blob = tmp_path / "entries" / "3f2a" / "data" / "file"
    blob.parent.mkdir(parents=True)
    shutil.copy(source, blob)
    return blob


# --------------------------------------------------------------------------- display names


def test_unknown_format_names_the_link_before_the_cache_path(tmp_path):
    blob = tmp_path / "entries" / "3f2a" / "data" / "file"
    blob.parent.mkdir(parents=True)
    blob.write_bytes(bytes(range(256)) * 4)
    for call in (sniff_format, load_path):
        with pytest.raises(UnknownFormatError) as err:
            call(blob, source=LINK)
        message = str(err.value)
        assert message.startswith(LINK), message
        assert str(blob) in message  # the local copy may follow


def test_untrusted_format_names_the_path_the_user_typed(torch_corpus, tmp_path):
    blob = _cache_blob(tmp_path, torch_corpus["full"].path)
    with pytest.raises(UntrustedFormatError) as err:
        load_path(blob, source="MyDrive/models/full.pt")
    message = str(err.value)
    assert message.startswith("Loading MyDrive/models/full.pt"), message
    assert "nets.TinyNet" in message


def test_missing_path_names_the_source(tmp_path):
    with pytest.raises(NotFoundError) as err:
        sniff_format(tmp_path / "gone", source="gs://bucket/ckpt/model-1")
    assert str(err.value).startswith("gs://bucket/ckpt/model-1")


# --------------------------------------------------------------------------- gensim


def test_pickle_refusal_lists_only_classes_that_matter(gensim_corpus):
    sample = gensim_corpus["gensim-file"]
    info = sniff_format(sample.path)
    assert any(g.startswith("numpy.") for g in info.details["globals"])  # they are there
    with pytest.raises(UntrustedFormatError) as err:
        load_path(sample.path)
    message = str(err.value)
    assert "gensim.models.doc2vec.Doc2Vec" in message
    assert "numpy" not in message and "_reconstruct" not in message, message
    assert not [g for g in err.value.would_run if g.startswith("numpy.")]
    assert "gensim.models.doc2vec.Doc2Vec" in err.value.would_run


def test_gensim_missing_sidecar_names_the_source_and_its_sidecars(gensim_corpus, tmp_path):
    blob = _cache_blob(tmp_path, gensim_corpus["gensim-file"].path)
    with pytest.raises(NotFoundError) as err:
        load_path(blob, trust=True, source="MyDrive/m/d2v.bin")
    message = str(err.value)
    assert message.startswith("the gensim model MyDrive/m/d2v.bin"), message
    assert "d2v.bin.dv.vectors.npy" in message
    assert "file.dv.vectors.npy" not in message


def test_required_sidecars_are_read_from_the_pickle(gensim_corpus, tmp_path):
    src = gensim_corpus["gensim-file"].path
    written = sorted(p.name for p in src.parent.iterdir() if p.name.startswith("d2v.bin."))
    assert written  # gensim wrote sidecars (sep_limit=100)
    assert gensim_io.required_sidecars(src) == written
    blob = _cache_blob(tmp_path, src)  # alone, under another name
    assert gensim_io.required_sidecars(blob, name="d2v.bin") == written
    assert gensim_io.required_sidecars(blob, name="d2v.model") == [
        "d2v.model" + n[len("d2v.bin") :] for n in written
    ]
    # what api does: every file fetched to its own place, linked under the Drive names
    spread = {}
    for n in written:
        spread[n] = tmp_path / "entries" / n / "data" / "file"
        spread[n].parent.mkdir(parents=True)
        shutil.copy(src.parent / n, spread[n])
    with linked_files({"d2v.bin": blob, **spread}) as folder:
        model = load_path(folder / "d2v.bin", trust=True, source="MyDrive/m/d2v.bin")
    original = gensim_corpus["gensim-file"].original
    np.testing.assert_array_equal(model.dv.vectors, original.dv.vectors)


def test_required_sidecars_of_other_files(gensim_corpus, torch_corpus):
    with pytest.raises(UnknownFormatError):
        gensim_io.required_sidecars(torch_corpus["state-dict"].path)
    with pytest.raises(UnknownFormatError):
        gensim_io.required_sidecars(gensim_corpus["word2vec-text"].path)


# --------------------------------------------------------------------------- TF checkpoints


@pytest.fixture
def saved_checkpoints(keras_corpus, tmp_path):
    """``ckpt.save()`` twice: ``model-1`` holds the original weights, ``model-2`` others."""
    tf = pytest.importorskip("tensorflow")
    keras = pytest.importorskip("keras")
    original = keras_corpus["keras"].original
    model = keras.models.clone_model(original)
    model.set_weights(original.get_weights())
    ckpt = tf.train.Checkpoint(model=model)
    folder = tmp_path / "ckpt"
    first = ckpt.save(str(folder / "model"))
    model.set_weights([w + 1.0 for w in original.get_weights()])
    ckpt.save(str(folder / "model"))
    assert Path(first).name == "model-1" and not Path(first).exists()
    return Path(first), original, keras


def _same_weights(model, original):
    for a, b in zip(model.get_weights(), original.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)


def test_prefix_that_save_returned_loads_that_prefix(saved_checkpoints):
    prefix, original, keras = saved_checkpoints
    fresh = keras.models.clone_model(original)
    assert load_path(prefix, model=fresh) is fresh
    _same_weights(fresh, original)  # model-1, although 'checkpoint' names model-2


def test_checkpoint_object_is_used_as_is(saved_checkpoints):
    import tensorflow as tf

    prefix, original, keras = saved_checkpoints
    fresh = keras.models.clone_model(original)
    ckpt = tf.train.Checkpoint(model=fresh)
    assert load_path(prefix, model=ckpt) is ckpt  # not wrapped in another Checkpoint
    _same_weights(fresh, original)
    other = keras.models.clone_model(original)
    ckpt2 = tf.train.Checkpoint(model=other)
    assert load_path(prefix, checkpoint=ckpt2) is ckpt2
    _same_weights(other, original)


def test_checkpoint_hint_names_checkpoint_keyword(saved_checkpoints):
    prefix, _original, _keras = saved_checkpoints
    with pytest.raises(ArchitectureMismatchError, match="checkpoint="):
        load_path(prefix)


def test_checkpoint_files_for_a_prefix(saved_checkpoints, tmp_path):
    prefix, original, keras = saved_checkpoints
    names = os.listdir(prefix.parent)
    needed = tf_io.checkpoint_files("model-1", names)
    assert needed == ["model-1.data-00000-of-00001", "model-1.index"]
    with pytest.raises(NotFoundError, match=r"model-1\.data-00000-of-00001"):
        tf_io.checkpoint_files("model-1", ["model-1.index", "checkpoint"])
    with pytest.raises(NotFoundError, match=r"model-3\.index"):
        tf_io.checkpoint_files("model-3", names)
    # what api does: the files fetched to other places, linked under their names
    blobs = {}
    for n in needed:
        blobs[n] = tmp_path / "entries" / n / "file"
        blobs[n].parent.mkdir(parents=True)
        shutil.copy(prefix.parent / n, blobs[n])
    fresh = keras.models.clone_model(original)
    with linked_files(blobs) as folder:
        assert load_path(folder / "model-1", model=fresh, source="gs://b/ckpt/model-1") is fresh
    _same_weights(fresh, original)
