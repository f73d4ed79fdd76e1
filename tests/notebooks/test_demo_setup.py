"""The shared first cell (colabmodels.demo.setup) and the demo servers' lifecycle: what Colab,
Binder, `make demo` and plain Jupyter rely on."""

from __future__ import annotations

import json
import os
import re

import pytest

import colabmodels.drive.session
from colabmodels import demo
from colabmodels.errors import ColabModelsError, RefError

pytest.importorskip("torch")
pytest.importorskip("keras")
pytestmark = pytest.mark.timeout(900)

MINE = {"KERAS_LINK": "https://drive.google.com/file/d/YOUR_KERAS_FILE_ID/view",
        "TORCH_LINK": "https://drive.google.com/file/d/YOUR_TORCH_FILE_ID/view"}
FILLED = {"KERAS_LINK": "https://drive.google.com/file/d/1AbCdEfGhIjKlMnOpQrStUvWxYz012345/view",
          "TORCH_LINK": "MyDrive/models/encoder.pth"}


@pytest.fixture
def clean_environ():
    """setup() points os.environ at the servers, as a notebook kernel wants: undo it after."""
    saved = dict(os.environ)
    for var in list(os.environ):
        if var.startswith(("COLABMODELS_", "GOOGLE_APPLICATION_CREDENTIALS", "AWS_",
                           "STORAGE_EMULATOR_HOST", "COLAB_RELEASE_TAG")):
            del os.environ[var]
    colabmodels.drive.session.reset()
    yield os.environ
    os.environ.clear()
    os.environ.update(saved)
    colabmodels.drive.session.reset()


@pytest.fixture
def servers(tmp_path, clean_environ, demo_content):
    running = demo.start_emulator(tmp_path / "demo", content=demo_content)
    os.environ[demo.STATE_VAR] = running.env[demo.STATE_VAR]
    yield running
    running.stop()


def test_every_numbered_notebook_is_found_and_starts_with_the_shared_setup_cell():
    found = demo.notebooks()
    names = [p.name for p in found]
    assert names == sorted(names)
    assert {"01_quickstart.ipynb", "04_cloud_storage_and_versions.ipynb",
            "05_gensim_to_drive.ipynb"} <= set(names)
    for path in found:
        cells = json.loads(path.read_text(encoding="utf-8"))["cells"]
        first_code = "".join(next(c for c in cells if c["cell_type"] == "code")["source"])
        assert "USE_EMULATOR = None" in first_code, path.name
        assert "from colabmodels.demo import setup" in first_code, path.name
        assert "FILES = setup(MY_FILES, use_emulator=USE_EMULATOR)" in first_code, path.name


def test_notebooks_are_chosen_by_number_stem_or_path():
    assert [p.name for p in demo.notebooks(["04"])] == ["04_cloud_storage_and_versions.ipynb"]
    assert [p.name for p in demo.notebooks(["05_gensim_to_drive", "01"])] == [
        "05_gensim_to_drive.ipynb", "01_quickstart.ipynb"]
    assert demo.notebooks([str(demo.NOTEBOOK)]) == [demo.NOTEBOOK]
    with pytest.raises(RefError, match="no single notebook matches '99'"):
        demo.notebooks(["99"])


def test_own_files_with_placeholders_left_are_refused_with_what_to_do(clean_environ):
    with pytest.raises(RefError, match=r"placeholders: KERAS_LINK, TORCH_LINK.*USE_EMULATOR = True"):
        demo.setup(MINE, use_emulator=False)
    assert "COLABMODELS_DRIVE_ENDPOINT" not in os.environ


def test_own_files_filled_in_are_used_as_they_are(clean_environ):
    files = demo.setup(FILLED, use_emulator=False)
    assert dict(files) == FILLED and files.emulator is None
    assert "your own files" in repr(files)
    assert "COLABMODELS_DRIVE_ENDPOINT" not in os.environ


def test_outside_colab_the_default_is_the_emulator_with_demo_content(servers):
    files = demo.setup(MINE)
    assert set(files) == set(MINE)
    assert files["KERAS_LINK"] == servers.files["KERAS_LINK"]
    assert files.emulator is not None and files.emulator.pid == servers.pid  # found, not restarted
    assert os.environ["COLABMODELS_DRIVE_ENDPOINT"] == servers.services["drive"]
    assert re.search(r"the bundled emulator with demo content; nothing leaves", repr(files))


def test_in_colab_unfilled_placeholders_mean_the_emulator_signed_in_without_colab_auth(servers):
    os.environ["COLAB_RELEASE_TAG"] = "test"
    files = demo.setup(MINE)
    assert files["TORCH_LINK"] == servers.files["TORCH_LINK"]
    assert "(MY_FILES is not filled in)" in repr(files)
    # Colab's own sign-in would reach for google.colab: the emulator session is already there
    session = colabmodels.drive.session.current_session()
    assert session is not None and session.endpoint == servers.services["drive"]
    assert colabmodels.mount() is session


def test_in_colab_filled_in_files_are_yours_and_partly_filled_is_an_error(clean_environ):
    os.environ["COLAB_RELEASE_TAG"] = "test"
    assert dict(demo.setup(FILLED)) == FILLED
    half = {**FILLED, "TORCH_LINK": MINE["TORCH_LINK"]}
    with pytest.raises(RefError, match=r"only partly: .*TORCH_LINK"):
        demo.setup(half)
    assert "COLABMODELS_DRIVE_ENDPOINT" not in os.environ


def test_keys_without_placeholders_pass_through_and_unknown_placeholders_fail(servers):
    files = demo.setup({"DOC2VEC_DEST": "MyDrive/models/doc2vec-demo"}, use_emulator=True)
    assert dict(files) == {"DOC2VEC_DEST": "MyDrive/models/doc2vec-demo"}
    with pytest.raises(ColabModelsError, match="the demo servers have no OTHER"):
        demo.setup({"OTHER": "gs://YOUR_BUCKET/x"}, use_emulator=True)


def test_servers_are_found_again_and_stop_completely(tmp_path, clean_environ, demo_content):
    first = demo.start_emulator(tmp_path / "demo", content=demo_content)
    try:
        assert first.started_here
        assert set(first.services) == {"drive", "s3", "gcs"}
        again = demo.start_emulator(tmp_path / "demo", content=demo_content)
        assert again.pid == first.pid and not again.started_here
        assert demo.running(tmp_path / "demo" / "state.json").pid == first.pid
    finally:
        assert demo.stop_emulator(tmp_path / "demo")
    assert demo.running(tmp_path / "demo" / "state.json") is None
    assert not demo._alive(first.pid)
    assert not (tmp_path / "demo" / "state.json").exists()
    assert demo.stop_emulator(tmp_path / "demo") is False


def test_demo_content_is_generated_once(demo_content):
    before = {p: p.stat().st_mtime_ns for p in demo_content.rglob("*") if p.is_file()}
    made = demo.make_content(demo_content)
    assert {"classifier.h5", "encoder.pth", "small_vgg.pth", "standardizer",
            "regressor-ckpt"} <= {p.name for p in made.values()}
    assert {p.name for p in demo_content.iterdir()} == {p.name for p in made.values()}
    assert {p: p.stat().st_mtime_ns for p in demo_content.rglob("*") if p.is_file()} == before


def test_make_demo_runs_a_chosen_notebook_and_leaves_no_server_behind(tmp_path, clean_environ,
                                                                      demo_content):
    """What `make demo NB=05` runs: servers started by the runner, the notebook executed (with
    its fresh-kernel section), a summary of what each cell showed, servers stopped."""
    import subprocess
    import sys

    work = tmp_path / "demo"
    done = subprocess.run([sys.executable, "-m", "colabmodels.demo", "05", "--workdir", str(work),
                           "--content", str(demo_content)],
                          capture_output=True, text=True, timeout=900, env=dict(os.environ))
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "1 of 1 notebooks ran top to bottom" in done.stdout
    assert "Out « same vectors as when saved: True" in done.stdout
    assert (work / "05_gensim_to_drive.executed.ipynb").is_file()
    drive = re.search(r"servers: drive (http://\S+),", done.stdout).group(1)
    assert not demo._answers(drive)  # stopped with the run
    assert not (work / "state.json").exists()
