"""parse_ref: every shape users paste, the error cases, the ambiguity rules, and properties."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from hypothesis import HealthCheck, assume, example, given, settings
from hypothesis import strategies as st

from colabmodels.errors import ColabModelsError, RefError
from colabmodels.refs import ACCEPTED_SHAPES, Ref, is_drive_id, parse_ref

pytestmark = pytest.mark.unit

ID = "1AbCdEfGhIjKlMnOpQrStUvWxYz012345"  # 33 chars, today's shape
OLD = "0B7EVK8r0v71pZjFTYXZWM3FlRnM"  # 28 chars, pre-2015 shape
DOC = "1BxiMVs0XRA5nFMdKvBdBZjgmUUqptlbs74OgvE2upms"  # 44 chars, Docs shape
FOLDER = "1Zy_XwVu-TsRqPoNmLkJiHgFeDcBa98765"
RK = "0-AbCdEf_gh-IJ12kl"

# A directory that does not exist, so nothing relative to it exists (no ambiguity).
CWD = "/nonexistent-colabmodels-cwd"
D = "drive"

# (input, (source, path, id, version, resource_key, folder))
CASES: list[tuple[str, tuple[str, str | None, str | None, str | None, str | None, bool]]] = [
    # --- Drive file links
    (f"https://drive.google.com/file/d/{ID}/view?usp=sharing", (D, None, ID, None, None, False)),
    (f"https://drive.google.com/file/d/{ID}/view", (D, None, ID, None, None, False)),
    (f"https://drive.google.com/file/d/{ID}/edit", (D, None, ID, None, None, False)),
    (f"https://drive.google.com/file/d/{ID}/preview", (D, None, ID, None, None, False)),
    (f"https://drive.google.com/file/d/{ID}", (D, None, ID, None, None, False)),
    (f"https://drive.google.com/file/d/{ID}/", (D, None, ID, None, None, False)),
    (f"https://drive.google.com/file/u/1/d/{ID}/view?usp=drive_link", (D, None, ID, None, None, False)),
    (f"https://drive.google.com/file/d/{OLD}/view?usp=sharing&resourcekey={RK}",
     (D, None, OLD, None, RK, False)),
    (f"https://drive.google.com/open?id={ID}", (D, None, ID, None, None, False)),
    (f"https://drive.google.com/open?id={OLD}&authuser=0&resourcekey={RK}",
     (D, None, OLD, None, RK, False)),
    (f"https://drive.google.com/uc?id={ID}&export=download", (D, None, ID, None, None, False)),
    (f"https://drive.google.com/uc?export=download&id={ID}&confirm=t", (D, None, ID, None, None, False)),
    (f"https://drive.google.com/u/0/uc?id={ID}&export=download", (D, None, ID, None, None, False)),
    (f"https://drive.usercontent.google.com/download?id={ID}&export=download&authuser=0",
     (D, None, ID, None, None, False)),
    (f"https://drive.usercontent.google.com/download?id={ID}&export=download&confirm=t&uuid=abc",
     (D, None, ID, None, None, False)),
    (f"https://docs.google.com/uc?id={ID}", (D, None, ID, None, None, False)),
    (f"https://docs.google.com/uc?export=download&id={ID}", (D, None, ID, None, None, False)),
    (f"https://docs.google.com/document/d/{DOC}/edit?usp=sharing", (D, None, DOC, None, None, False)),
    (f"https://drive.google.com/a/example.com/file/d/{ID}/view", (D, None, ID, None, None, False)),
    (f"https://www.googleapis.com/drive/v3/files/{ID}?alt=media", (D, None, ID, None, None, False)),
    (f"http://drive.google.com/file/d/{ID}/view", (D, None, ID, None, None, False)),
    (f"HTTPS://DRIVE.GOOGLE.COM/file/d/{ID}/view", (D, None, ID, None, None, False)),
    (f"drive.google.com/file/d/{ID}/view", (D, None, ID, None, None, False)),
    (f"drive.google.com/uc?id={ID}", (D, None, ID, None, None, False)),
    (f"drive.usercontent.google.com/download?id={ID}", (D, None, ID, None, None, False)),
    # --- Drive folder links
    (f"https://drive.google.com/drive/folders/{FOLDER}?usp=sharing", (D, None, FOLDER, None, None, True)),
    (f"https://drive.google.com/drive/folders/{FOLDER}", (D, None, FOLDER, None, None, True)),
    (f"https://drive.google.com/drive/u/2/folders/{FOLDER}", (D, None, FOLDER, None, None, True)),
    (f"https://drive.google.com/drive/mobile/folders/{FOLDER}", (D, None, FOLDER, None, None, True)),
    (f"https://drive.google.com/drive/u/0/mobile/folders/{FOLDER}?usp=sharing",
     (D, None, FOLDER, None, None, True)),
    (f"https://drive.google.com/drive/folders/{OLD}?resourcekey={RK}&usp=sharing",
     (D, None, OLD, None, RK, True)),
    (f"https://drive.google.com/embeddedfolderview?id={FOLDER}#grid", (D, None, FOLDER, None, None, True)),
    (f"https://drive.google.com/drive/#folders/{OLD}", (D, None, OLD, None, None, True)),
    (f"http://drive.google.com/drive/folders/{FOLDER}", (D, None, FOLDER, None, None, True)),
    (f"drive.google.com/drive/folders/{FOLDER}", (D, None, FOLDER, None, None, True)),
    ("https://drive.google.com/drive/my-drive", (D, "MyDrive", None, None, None, True)),
    # --- bare ids and drive-id:
    (ID, (D, None, ID, None, None, False)),
    (OLD, (D, None, OLD, None, None, False)),
    (DOC, (D, None, DOC, None, None, False)),
    (f"drive-id:{ID}", (D, None, ID, None, None, False)),
    ("drive-id:abcdef123456", (D, None, "abcdef123456", None, None, False)),
    # --- Drive paths
    ("MyDrive", (D, "MyDrive", None, None, None, False)),
    ("MyDrive/", (D, "MyDrive", None, None, None, False)),
    ("MyDrive/models/x.pth", (D, "MyDrive/models/x.pth", None, None, None, False)),
    ("MyDrive//models///x.pth", (D, "MyDrive/models/x.pth", None, None, None, False)),
    ("MyDrive/models/./x.pth", (D, "MyDrive/models/x.pth", None, None, None, False)),
    ("MyDrive/datasets/flowers/", (D, "MyDrive/datasets/flowers", None, None, None, False)),
    ("My Drive/models/x.pth", (D, "MyDrive/models/x.pth", None, None, None, False)),
    ("MyDrive/Colab Notebooks/my model.h5", (D, "MyDrive/Colab Notebooks/my model.h5", None, None, None, False)),
    ("/content/drive/MyDrive/models/x.pth", (D, "MyDrive/models/x.pth", None, None, None, False)),
    ("/content/drive/MyDrive", (D, "MyDrive", None, None, None, False)),
    ("/content/drive/My Drive/models/x.pth", (D, "MyDrive/models/x.pth", None, None, None, False)),
    ("//content//drive/MyDrive/x.pth", (D, "MyDrive/x.pth", None, None, None, False)),
    ("Shareddrives/Team ML/models/x.pth", (D, "Shareddrives/Team ML/models/x.pth", None, None, None, False)),
    ("/content/drive/Shareddrives/Team/x.pth", (D, "Shareddrives/Team/x.pth", None, None, None, False)),
    ("Shared drives/Team/x.pth", (D, "Shareddrives/Team/x.pth", None, None, None, False)),
    ("/content/drive/Shared drives/Team/x.pth", (D, "Shareddrives/Team/x.pth", None, None, None, False)),
    ("SharedWithMe/team-models/x.pth", (D, "SharedWithMe/team-models/x.pth", None, None, None, False)),
    ("Shared with me/team-models", (D, "SharedWithMe/team-models", None, None, None, False)),
    ("Othercomputers/My Laptop/models/x.pth", (D, "Othercomputers/My Laptop/models/x.pth", None, None, None, False)),
    ("/content/drive/Othercomputers/My Laptop/x.pth", (D, "Othercomputers/My Laptop/x.pth", None, None, None, False)),
    (f"/content/drive/.shortcut-targets-by-id/{FOLDER}/shared/x.pth",
     (D, f".shortcut-targets-by-id/{FOLDER}/shared/x.pth", None, None, None, False)),
    ("file:///content/drive/MyDrive/x.pth", (D, "MyDrive/x.pth", None, None, None, False)),
    # --- object stores
    ("gs://bucket/path/to/model.keras", ("gcs", "bucket/path/to/model.keras", None, None, None, False)),
    ("gs://bucket", ("gcs", "bucket", None, None, None, False)),
    ("gs://bucket/dir/", ("gcs", "bucket/dir", None, None, None, False)),
    ("gcs://my-bucket/x.pt", ("gcs", "my-bucket/x.pt", None, None, None, False)),
    ("s3://bucket/key/model.onnx", ("s3", "bucket/key/model.onnx", None, None, None, False)),
    ("S3://bucket/a//b?c#d", ("s3", "bucket/a//b?c#d", None, None, None, False)),
    ("s3://bucket/models/snap@2024-01-01", ("s3", "bucket/models/snap@2024-01-01", None, None, None, False)),
    ("s3://bucket/models/x@v", ("s3", "bucket/models/x@v", None, None, None, False)),
    # --- http
    ("https://example.com/models/x.pth?token=abc&dl=1",
     ("http", "https://example.com/models/x.pth?token=abc&dl=1", None, None, None, False)),
    ("http://127.0.0.1:8000/x.bin", ("http", "http://127.0.0.1:8000/x.bin", None, None, None, False)),
    ("HTTPS://Example.com/X", ("http", "https://Example.com/X", None, None, None, False)),
    ("https://user:pw@host.example/x.pt", ("http", "https://user:pw@host.example/x.pt", None, None, None, False)),
    ("https://user@latest", ("http", "https://user@latest", None, None, None, False)),
    ("https://www.dropbox.com/s/abc/model.h5?dl=0",
     ("http", "https://www.dropbox.com/s/abc/model.h5?dl=0", None, None, None, False)),
    ("https://storage.googleapis.com/bucket/x.pth",
     ("http", "https://storage.googleapis.com/bucket/x.pth", None, None, None, False)),
    # --- local
    ("file:///abs/path/model.pth", ("local", "/abs/path/model.pth", None, None, None, False)),
    ("file://localhost/abs/my%20model.pth", ("local", "/abs/my model.pth", None, None, None, False)),
    ("file:/abs/x.pth", ("local", "/abs/x.pth", None, None, None, False)),
    ("/abs/path/model.pth", ("local", "/abs/path/model.pth", None, None, None, False)),
    ("model.pth", ("local", f"{CWD}/model.pth", None, None, None, False)),
    ("./models/../x.pth", ("local", f"{CWD}/x.pth", None, None, None, False)),
    ("../x.pth", ("local", "/x.pth", None, None, None, False)),
    ("./MyDrive/x.pth", ("local", f"{CWD}/MyDrive/x.pth", None, None, None, False)),
    ("~/models/x.pth", ("local", os.path.expanduser("~/models/x.pth"), None, None, None, False)),
    ("resnet50_finetuned_on_imagenet_epoch10",
     ("local", f"{CWD}/resnet50_finetuned_on_imagenet_epoch10", None, None, None, False)),
    ("d41d8cd98f00b204e9800998ecf8427e", ("local", f"{CWD}/d41d8cd98f00b204e9800998ecf8427e", None, None, None, False)),
    ("example.com/x.bin", ("local", f"{CWD}/example.com/x.bin", None, None, None, False)),
    ("weights:v2.pth", ("local", f"{CWD}/weights:v2.pth", None, None, None, False)),
    # --- versions
    ("MyDrive/models/vgg16@v1", (D, "MyDrive/models/vgg16", None, "v1", None, False)),
    ("MyDrive/models/vgg16@latest", (D, "MyDrive/models/vgg16", None, "latest", None, False)),
    ("MyDrive/models/vgg16@V3", (D, "MyDrive/models/vgg16", None, "v3", None, False)),
    ("MyDrive/models/vgg16@LATEST", (D, "MyDrive/models/vgg16", None, "latest", None, False)),
    ("MyDrive/models/vgg16@v007", (D, "MyDrive/models/vgg16", None, "v7", None, False)),
    ("/content/drive/MyDrive/models/vgg16@v12", (D, "MyDrive/models/vgg16", None, "v12", None, False)),
    ("gs://b/models/vgg@v2", ("gcs", "b/models/vgg", None, "v2", None, False)),
    ("s3://b/models/vgg@latest", ("s3", "b/models/vgg", None, "latest", None, False)),
    ("s3://bucket@v2", ("s3", "bucket", None, "v2", None, False)),
    (f"https://drive.google.com/drive/folders/{FOLDER}@v1", (D, None, FOLDER, "v1", None, True)),
    (f"https://drive.google.com/drive/folders/{FOLDER}?usp=sharing@latest",
     (D, None, FOLDER, "latest", None, True)),
    (f"{ID}@v4", (D, None, ID, "v4", None, False)),
    ("https://example.com/m@v2", ("http", "https://example.com/m", None, "v2", None, False)),
    ("/abs/models/vgg@v2", ("local", "/abs/models/vgg", None, "v2", None, False)),
    ("file:///abs/models/vgg@latest", ("local", "/abs/models/vgg", None, "latest", None, False)),
    ("MyDrive/models/vgg16@v", (D, "MyDrive/models/vgg16@v", None, None, None, False)),
    ("MyDrive/models/me@home", (D, "MyDrive/models/me@home", None, None, None, False)),
    ("MyDrive/models/@v2", (D, "MyDrive/models/@v2", None, None, None, False)),
    ("MyDrive/models/vgg16@v2/", (D, "MyDrive/models/vgg16", None, "v2", None, False)),
    ("gs://b/vgg@latest//", ("gcs", "b/vgg", None, "latest", None, False)),
    ("https://example.com/a@v2/", ("http", "https://example.com/a@v2/", None, None, None, False)),
    ("gs://b/models/@latest", ("gcs", "b/models/@latest", None, None, None, False)),
    # --- pasted with whitespace and quotes
    (f'  "https://drive.google.com/file/d/{ID}/view?usp=sharing"  ', (D, None, ID, None, None, False)),
    (f"'{ID}'", (D, None, ID, None, None, False)),
    (f"<https://drive.google.com/file/d/{ID}/view>", (D, None, ID, None, None, False)),
    ("`MyDrive/models/x.pth`", (D, "MyDrive/models/x.pth", None, None, None, False)),
    ("\u201cgs://bucket/x\u201d", ("gcs", "bucket/x", None, None, None, False)),
    ("'\"MyDrive/x.pth\"'\n", (D, "MyDrive/x.pth", None, None, None, False)),
    ("\tMyDrive/x.pth\n", (D, "MyDrive/x.pth", None, None, None, False)),
]


def fields(ref: Ref) -> tuple[str, str | None, str | None, str | None, str | None, bool]:
    return (ref.source, ref.path, ref.id, ref.version, ref.resource_key, ref.folder)


def test_table_is_big_enough() -> None:
    assert len(CASES) >= 40
    assert len({text for text, _ in CASES}) == len(CASES)


@pytest.mark.parametrize(("text", "expected"), CASES, ids=[repr(t)[:70] for t, _ in CASES])
def test_parse_ref_table(text: str, expected: tuple) -> None:
    ref = parse_ref(text, cwd=CWD)
    assert fields(ref) == expected
    assert ref.raw == text


ERRORS: list[tuple[str, str]] = [
    ("", "empty"),
    ("   \t\n ", "empty"),
    ('""', "empty"),
    ("<>", "empty"),
    ("drive.google.com/file/d/", "without a file or folder id"),
    ("https://drive.google.com/file/d/", "without a file or folder id"),
    ("https://drive.google.com/file/d//view", "not a Drive id ('view')"),
    ("https://drive.google.com/open", "without a file or folder id"),
    ("https://drive.google.com/uc?export=download", "without a file or folder id"),
    ("https://drive.google.com/drive/folders/", "without a file or folder id"),
    ("https://drive.google.com/file/d/short/view", "not a Drive id"),
    ("https://drive.google.com/open?id=has%20space%20in%20it", "not a Drive id"),
    ("https://drive.google.com/", "names no file or folder"),
    ("https://drive.google.com/drive/shared-with-me", "names no file or folder"),
    ("https://www.googleapis.com/drive/v3/about", "not a Drive files URL"),
    (f"https://drive.google.com/file/d/{ID}/view?resourcekey=bad%20key", "resourcekey"),
    ("gs://", "needs a bucket"),
    ("gs:///path", "needs a bucket"),
    ("s3://", "needs a bucket"),
    ("s3://-bad-/x", "bucket name"),
    ("gs://b/a/../x", "'..'"),
    ("gs:bucket/x", "must be followed by //"),
    ("http:/example.com", "must be followed by //"),
    ("https://", "without a host"),
    ("http:///path", "without a host"),
    ("http://[::1/x", "malformed URL"),
    ("http://host:99999/x", "malformed URL"),
    ("ftp://example.com/model.pth", "unsupported URL scheme"),
    ("hf://org/model", "unsupported URL scheme"),
    ("sftp://host/x", "unsupported URL scheme"),
    ("file://otherhost/x", "local path"),
    ("file:relative/x", "absolute path"),
    ("file:///a%00b", "control character"),
    ("model\x00.pth", "control character"),
    ("MyDrive/a\nb", "control character"),
    ("a\rb", "control character"),
    ("x\udc00y", "surrogate"),
    ("MyDrive/models/x@v0", "start at v1"),
    ("gs://b/x@V00", "start at v1"),
    ("@v3", "nothing before"),
    ("@latest", "nothing before"),
    ("MyDrive/../secrets", "'..'"),
    ("/content/drive/MyDrive/a/../../b", "'..'"),
    ("Shareddrives/Team/../x", "'..'"),
    ("/content/drive", "mount point"),
    ("/content/drive/", "mount point"),
    ("/content/drive/NotARoot/x", "not a Drive root"),
    (".shortcut-targets-by-id/x/y", "followed by a Drive id"),
    ("drive-id:", "without a file or folder id"),
    ("drive-id:bad id!", "not a Drive id"),
]


@pytest.mark.parametrize(("text", "message"), ERRORS, ids=[repr(t)[:60] for t, _ in ERRORS])
def test_parse_ref_errors(text: str, message: str) -> None:
    with pytest.raises(RefError) as info:
        parse_ref(text, cwd=CWD)
    assert message in str(info.value)
    assert "Accepted references" in str(info.value)


def test_ref_error_is_value_error_and_lists_shapes() -> None:
    with pytest.raises(ValueError, match="gs://bucket/path"):
        parse_ref("ftp://x/y")
    assert issubclass(RefError, ColabModelsError)
    for shape in ("drive.google.com/file/d/ID", "MyDrive/", "s3://", "file:///", "@latest"):
        assert shape in ACCEPTED_SHAPES


@pytest.mark.parametrize("value", [None, 3, b"MyDrive/x", ["MyDrive"]])
def test_non_strings_raise_ref_error(value: object) -> None:
    with pytest.raises(RefError, match="must be a string"):
        parse_ref(value)  # type: ignore[arg-type]


def test_path_objects_are_accepted(tmp_path: Path) -> None:
    ref = parse_ref(tmp_path / "m.pth")
    assert fields(ref) == ("local", str(tmp_path / "m.pth"), None, None, None, False)


def test_long_reference_is_truncated_in_message() -> None:
    with pytest.raises(RefError) as info:
        parse_ref("ftp://" + "x" * 10_000)
    assert len(str(info.value)) < 2_000


# --- is_drive_id


@pytest.mark.parametrize("text", [ID, OLD, DOC, FOLDER, "1" + "aB" * 12, "0B-_x9" * 5])
def test_is_drive_id_accepts_real_shapes(text: str) -> None:
    assert is_drive_id(text)


@pytest.mark.parametrize("text", [
    "model.pth",
    "MyDrive",
    "a" * 33,
    "A" * 33,
    "1" * 33,
    "ABCDEFGHIJKLMNOPQRSTUVWXYZ12345",  # no lower case
    "abcdefghijklmnopqrstuvwxyz12345",  # no upper case
    "AbcdefghijklmnopqrstuvwxyzAbcdef",  # no digit
    "d41d8cd98f00b204e9800998ecf8427e",  # md5 hex
    "resnet50_finetuned_on_imagenet_epoch10",
    ID[:24],  # too short
    (ID * 2)[:61],  # too long
    ID[:-1] + ".",
    ID[:-1] + "/",
    "1AbCdEfGhIjKlMnOpQrStUvWxYz01234\u00e9",  # non-ASCII
    "1AbCdEfGhIjKlMnOpQrStUvWxYz01234\u0663",  # Arabic-Indic digit
])
def test_is_drive_id_rejects_names(text: str) -> None:
    assert not is_drive_id(text)


# --- ambiguity rules


def test_existing_local_file_shaped_like_an_id_is_local(tmp_path: Path) -> None:
    (tmp_path / ID).write_bytes(b"weights")
    ref = parse_ref(ID, cwd=tmp_path)
    assert fields(ref) == ("local", str(tmp_path / ID), None, None, None, False)
    # the same string elsewhere is a Drive id
    assert fields(parse_ref(ID, cwd=tmp_path / "elsewhere")) == (D, None, ID, None, None, False)


def test_ambiguity_uses_process_cwd_by_default(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert parse_ref(ID).source == "drive"
    (tmp_path / ID).mkdir()
    ref = parse_ref(ID)
    assert (ref.source, ref.path) == ("local", str(tmp_path / ID))
    assert fields(parse_ref("model.pth")) == ("local", str(tmp_path / "model.pth"), None, None, None, False)


def test_id_shaped_local_file_with_version(tmp_path: Path) -> None:
    (tmp_path / ID).mkdir()
    assert fields(parse_ref(f"{ID}@v2", cwd=tmp_path)) == ("local", str(tmp_path / ID), None, "v2", None, False)


def test_existing_local_name_ending_in_version_is_the_file(tmp_path: Path) -> None:
    (tmp_path / "snapshot@v2").write_bytes(b"x")
    ref = parse_ref("snapshot@v2", cwd=tmp_path)
    assert fields(ref) == ("local", str(tmp_path / "snapshot@v2"), None, None, None, False)
    ref = parse_ref(str(tmp_path / "snapshot@v2"))
    assert fields(ref) == ("local", str(tmp_path / "snapshot@v2"), None, None, None, False)
    ref = parse_ref((tmp_path / "snapshot@v2").as_uri())
    assert fields(ref) == ("local", str(tmp_path / "snapshot@v2"), None, None, None, False)
    # no such file: the suffix is a version
    ref = parse_ref("other@v2", cwd=tmp_path)
    assert fields(ref) == ("local", str(tmp_path / "other"), None, "v2", None, False)


def test_wget_mirror_folder_named_like_drive_host_is_local(tmp_path: Path) -> None:
    target = tmp_path / "drive.google.com" / "file" / "d" / ID
    target.mkdir(parents=True)
    ref = parse_ref(f"drive.google.com/file/d/{ID}", cwd=tmp_path)
    assert (ref.source, ref.path) == ("local", str(target))


def test_local_folder_called_mydrive_needs_dot_slash(tmp_path: Path) -> None:
    (tmp_path / "MyDrive").mkdir()
    (tmp_path / "MyDrive" / "x.pth").write_bytes(b"x")
    assert parse_ref("MyDrive/x.pth", cwd=tmp_path).source == "drive"
    ref = parse_ref("./MyDrive/x.pth", cwd=tmp_path)
    assert (ref.source, ref.path) == ("local", str(tmp_path / "MyDrive" / "x.pth"))




def test_relative_path_that_lands_in_the_colab_mount_is_drive() -> None:
    ref = parse_ref("drive/MyDrive/models/x.pth", cwd="/content")
    assert fields(ref) == (D, "MyDrive/models/x.pth", None, None, None, False)
    ref = parse_ref("../drive/My Drive/x.pth", cwd="/content/sample_data")
    assert fields(ref) == (D, "MyDrive/x.pth", None, None, None, False)
    with pytest.raises(RefError, match="not a Drive root"):
        parse_ref("drive/Other/x.pth", cwd="/content")
    with pytest.raises(RefError, match="mount point"):
        parse_ref("file:///content/drive")


def test_relative_cwd_and_tilde_cwd(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert parse_ref("x.pth", cwd="sub").path == str(tmp_path / "sub" / "x.pth")
    assert parse_ref("x.pth", cwd="~").path == os.path.join(os.path.expanduser("~"), "x.pth")


def test_missing_process_cwd_still_parses_ids(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    gone = tmp_path / "gone"
    gone.mkdir()
    monkeypatch.chdir(gone)
    gone.rmdir()
    assert parse_ref(ID).source == "drive"
    assert parse_ref("/abs/x").path == "/abs/x"
    with pytest.raises(RefError, match="relative path"):
        parse_ref("x.pth")


# --- Ref helpers


def test_mount_path() -> None:
    assert parse_ref("MyDrive/models/x.pth").mount_path() == "/content/drive/MyDrive/models/x.pth"
    assert parse_ref("MyDrive").mount_path() == "/content/drive/MyDrive"
    assert parse_ref("Shared drives/T/x").mount_path("/mnt/gdrive/") == "/mnt/gdrive/Shareddrives/T/x"
    assert parse_ref("MyDrive/m/vgg@latest").mount_path() == "/content/drive/MyDrive/m/vgg"
    assert parse_ref("Othercomputers/Laptop/x").mount_path() == "/content/drive/Othercomputers/Laptop/x"
    assert parse_ref("SharedWithMe/x").mount_path() is None
    assert parse_ref(ID).mount_path() is None
    assert parse_ref("gs://b/x").mount_path() is None
    assert parse_ref("/abs/x").mount_path() is None


def test_str_of_refs() -> None:
    assert str(parse_ref("/content/drive/My Drive/m/vgg@v2")) == "MyDrive/m/vgg@v2"
    assert str(parse_ref("gs://b/k/")) == "gs://b/k"
    assert str(parse_ref(f"https://drive.google.com/file/d/{ID}/view")) == f"drive-id:{ID}"
    assert parse_ref(str(parse_ref(f"https://drive.google.com/file/d/{ID}/view@v3"))) == Ref(
        "drive", id=ID, version="v3", raw=f"drive-id:{ID}@v3")


def test_child_and_unversioned_still_work() -> None:
    ref = parse_ref("MyDrive/models@latest")
    assert ref.unversioned().version is None
    assert ref.child("x.pth").path == "MyDrive/models/x.pth"


# --- properties

FRAGMENTS = [
    "https://", "http://", "drive.google.com/", "docs.google.com/", "drive.usercontent.google.com/",
    "file/d/", "file/u/0/d/", "drive/folders/", "drive/u/1/", "open?id=", "uc?id=", "download?id=",
    "&export=download", "?usp=sharing", "&resourcekey=", "0-Ab_c", "#folders/", ID, OLD, "/view",
    "@v", "@V", "@v0", "@v1", "@latest", "@", "gs://", "gcs://", "s3://", "file://", "file:",
    "drive-id:", "/content/drive/", "MyDrive", "My Drive", "Shareddrives/", "Shared drives/",
    "Othercomputers/", "SharedWithMe/", ".shortcut-targets-by-id/", "/", "//", ".", "..", "~",
    "model.pth", " ", "\t", "\n", "\x00", '"', "'", "<", ">", "`", "?", "#", "%", "%20", "%0A",
    ":", "localhost", "user@", "[", "]", ":99999", "ftp://", "bucket", "\udcff", "\ud800", "\u2028",
]
fragment_text = st.lists(
    st.one_of(st.sampled_from(FRAGMENTS), st.text(max_size=4)), max_size=10,
).map("".join)
any_text = st.one_of(st.text(), fragment_text)


def parse_or_error(text: str) -> Ref | None:
    try:
        ref = parse_ref(text, cwd=CWD)
    except RefError:
        return None
    assert isinstance(ref, Ref)
    return ref


@settings(max_examples=600, suppress_health_check=[HealthCheck.too_slow])
@given(any_text)
@example("https://drive.google.com/file/d/@v1")
@example("gs://@latest")
@example("~\udcff/x")
@example("http://[::1]:0/@v1")
def test_any_string_parses_or_raises_ref_error(text: str) -> None:
    ref = parse_or_error(text)
    if ref is None:
        return
    assert ref.source in ("drive", "gcs", "s3", "http", "local")
    assert ref.path is not None or ref.id is not None
    assert ref.version is None or ref.version == "latest" or (
        ref.version[0] == "v" and ref.version[1:].isdigit() and ref.version[1] != "0")
    if ref.source == "local":
        assert ref.path is not None and os.path.isabs(ref.path)
    if ref.source == "drive" and ref.path is not None:
        assert ".." not in ref.path.split("/") and "//" not in ref.path
        assert not ref.path.endswith("/")


@settings(max_examples=600, suppress_health_check=[HealthCheck.too_slow])
@given(any_text)
@example("MyDrive/x @v1")
@example("gs://b/k/ @latest")
@example("https://a@b@v1")
@example("0@V1/")
@example("dir/@v2")
@example("/.@V1")
@example("MyDrive/..@latest")
def test_str_round_trips_for_path_refs(text: str) -> None:
    ref = parse_or_error(text)
    assume(ref is not None and ref.path is not None)
    assert ref is not None
    # a name ending in whitespace cannot survive the stripping of pasted whitespace
    assume(str(ref) == str(ref).strip())
    again = parse_ref(str(ref), cwd=CWD)
    assert (again.source, again.path, again.version) == (ref.source, ref.path, ref.version)


# --- OS limits (issue 11)


def test_a_paragraph_of_punctuation_is_no_local_path() -> None:
    import string

    text = (string.punctuation * 200)[:5000]
    with pytest.raises(RefError, match="not a usable local path"):
        parse_ref(text, cwd=CWD)


@given(st.text(alphabet=st.sampled_from(sorted(set("!#$%&()*+,-.;=@[]^_{}~'"))), min_size=256,
               max_size=6000))
@settings(max_examples=60, suppress_health_check=[HealthCheck.too_slow])
def test_long_punctuation_without_separators_is_a_ref_error(text: str) -> None:
    with pytest.raises(RefError):
        parse_ref(text, cwd=CWD)


@pytest.mark.parametrize("name_bytes", [256, 300, 1000])
def test_component_over_name_max_is_a_ref_error(name_bytes: int) -> None:
    with pytest.raises(RefError, match="255"):
        parse_ref("/data/" + "m" * name_bytes + "/model.pth")
    # multi-byte characters count in bytes, not characters: 128 x 'é' is 256 bytes
    with pytest.raises(RefError, match="255"):
        parse_ref("models/" + "\u00e9" * 128, cwd=CWD)


def test_names_at_the_limits_still_parse() -> None:
    ref = parse_ref("/data/" + "m" * 255)
    assert (ref.source, ref.path) == ("local", "/data/" + "m" * 255)
    with pytest.raises(RefError, match="4095"):
        parse_ref("/" + "/".join(["d" * 200] * 21))


# --- signed URLs (issue 11)


@pytest.mark.parametrize(("url", "expected"), [
    ("https://b.s3.amazonaws.com/k/m.pt?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=AKIA%2F1"
     "&X-Amz-Date=20240101T000000Z&X-Amz-Expires=3600&X-Amz-SignedHeaders=host"
     "&X-Amz-Security-Token=FwoG&X-Amz-Signature=deadbeef", "https://b.s3.amazonaws.com/k/m.pt"),
    ("https://storage.googleapis.com/b/o.pt?X-Goog-Algorithm=GOOG4-RSA-SHA256"
     "&X-Goog-Credential=sa%40p.iam&X-Goog-Signature=abc&versionId=3",
     "https://storage.googleapis.com/b/o.pt?versionId=3"),
    ("https://storage.googleapis.com/b/o?GoogleAccessId=sa@p.iam&Expires=1700000000&Signature=a%2Bb",
     "https://storage.googleapis.com/b/o"),
    ("https://user:pw@example.com/x.bin?dl=1&token=t0k", "https://example.com/x.bin?dl=1"),
    ("https://example.com/x.bin?dl=1", "https://example.com/x.bin?dl=1"),
    ("s3://bucket/key", "s3://bucket/key"),
])
def test_strip_signing(url: str, expected: str) -> None:
    from colabmodels.refs import strip_signing, strip_signing_in

    assert strip_signing(url) == expected
    assert strip_signing_in(f"http:{url}:\"etag\"").startswith(f"http:{expected}")
