"""Issue 14: thumbnails, imageMediaMetadata, shortcuts and ``title contains`` of the Drive emulator.

Checked with the real PyDrive2 and google-api-python-client; every JSON body is
validated against the Drive v2 discovery schemas by the ``fake_drive`` fixture.
"""

from __future__ import annotations

import io
import struct
import urllib.error
import urllib.request
import zlib
from pathlib import Path
from typing import Any

import pytest
from discovery_schema import validate_resource

from colabmodels.testing import FakeDrive
from colabmodels.testing.fakedrive.client import drive_service, service_account_credentials
from colabmodels.testing.fakedrive.images import make_thumbnail, probe_image

pytestmark = pytest.mark.emulator

SHORTCUT = "application/vnd.google-apps.shortcut"
PIL = pytest.importorskip("PIL.Image")


def png(width: int, height: int, color: tuple[int, int, int] = (200, 30, 30)) -> bytes:
    out = io.BytesIO()
    PIL.new("RGB", (width, height), color).save(out, "PNG")
    return out.getvalue()


def jpeg(width: int, height: int, orientation: int | None = None) -> bytes:
    image = PIL.new("RGB", (width, height), (10, 120, 200))
    out = io.BytesIO()
    if orientation is None:
        image.save(out, "JPEG")
    else:
        exif = PIL.Exif()
        exif[0x0112] = orientation
        image.save(out, "JPEG", exif=exif.tobytes())
    return out.getvalue()


def handmade_png(width: int, height: int) -> bytes:
    """A PNG written without Pillow (the header parser must not need it)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    raw = (b"\x00" + b"\x00\x00\x00" * width) * height
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))


def get(url: str, token: str | None = None) -> tuple[int, str, bytes]:
    req = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"} if token else {})
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            return resp.status, resp.headers.get("Content-Type", ""), resp.read()
    except urllib.error.HTTPError as e:
        return e.code, e.headers.get("Content-Type", ""), e.read()


@pytest.fixture
def service(fake_drive: FakeDrive, sa_key: Path) -> Any:
    return drive_service(fake_drive, service_account_credentials(sa_key))


def bearer(gauth: Any) -> str:
    return gauth.credentials.access_token


# ------------------------------------------------------------- image metadata


@pytest.mark.parametrize(
    "make, size, rotation",
    [
        (lambda: png(640, 480), (640, 480), 0),
        (lambda: handmade_png(33, 7), (33, 7), 0),
        (lambda: jpeg(300, 200), (300, 200), 0),
        (lambda: jpeg(300, 200, orientation=6), (300, 200), 1),
        (lambda: jpeg(300, 200, orientation=3), (300, 200), 2),
    ],
    ids=["png", "png-without-pillow", "jpeg", "jpeg-exif-rotated-90", "jpeg-exif-rotated-180"],
)
def test_uploaded_images_get_image_media_metadata(drive, tmp_path, make, size, rotation):
    local = tmp_path / "pic.png"
    local.write_bytes(make())
    f = drive.CreateFile({"title": "pic", "mimeType": "image/jpeg" if local.read_bytes()[:2] == b"\xff\xd8"
                          else "image/png"})
    f.SetContentFile(str(local))
    f.Upload()
    f.FetchMetadata(fields="imageMediaMetadata,hasThumbnail,thumbnailLink,thumbnailVersion")

    assert f["imageMediaMetadata"] == {"width": size[0], "height": size[1], "rotation": rotation}
    assert f["hasThumbnail"] is True
    assert f["thumbnailLink"].endswith("=s220")


def test_header_parser_reads_gif_bmp_and_rejects_garbage(tmp_path):
    for name, fmt in (("a.gif", "GIF"), ("a.bmp", "BMP"), ("a.webp", "WEBP")):
        out = io.BytesIO()
        PIL.new("RGB", (17, 9)).save(out, fmt)
        (tmp_path / name).write_bytes(out.getvalue())
        assert probe_image(tmp_path / name) == {"width": 17, "height": 9, "rotation": 0}, name
    (tmp_path / "junk.png").write_bytes(b"not an image at all")
    assert probe_image(tmp_path / "junk.png") is None
    assert make_thumbnail(tmp_path / "junk.png") is None


def test_non_images_have_no_thumbnail_or_image_metadata(fake_drive, drive):
    fid = fake_drive.put("MyDrive/weights.bin", b"\x00" * 100)
    junk = fake_drive.put("MyDrive/broken.png", b"this is not a png")
    for file_id in (fid, junk):
        meta = drive.CreateFile({"id": file_id})
        meta.FetchMetadata()
        assert "imageMediaMetadata" not in meta and "thumbnailLink" not in meta
        assert meta["hasThumbnail"] is False


# ------------------------------------------------------------------ thumbnails


def test_thumbnail_link_serves_a_scaled_image_with_the_bearer_token(fake_drive, drive, gauth):
    fid = fake_drive.put("MyDrive/data/cats/c1.png", png(640, 480))
    f = drive.CreateFile({"id": fid})
    f.FetchMetadata()
    link = f["thumbnailLink"]

    status, ctype, body = get(link, bearer(gauth))
    assert status == 200 and ctype.startswith("image/")
    with PIL.open(io.BytesIO(body)) as thumb:
        assert thumb.size == (220, 165)  # fits the 220-pixel box, keeps the aspect ratio
        assert thumb.convert("RGB").getpixel((100, 80))[0] > 150  # the picture's colour, not a placeholder

    # Clients change the size suffix, as with googleusercontent links.
    status, _, body = get(link.replace("=s220", "=s64"), bearer(gauth))
    assert status == 200
    with PIL.open(io.BytesIO(body)) as thumb:
        assert thumb.size == (64, 48)
    assert len(body) < len(fake_drive.get(fid))


def test_thumbnail_is_private_until_shared_by_link(fake_drive, drive, gauth):
    fid = fake_drive.put("MyDrive/p.png", png(50, 40))
    f = drive.CreateFile({"id": fid})
    f.FetchMetadata()
    link = f["thumbnailLink"]
    assert get(link)[0] == 404  # signed out, private file
    status, _, _ = get(link, bearer(gauth))
    assert status == 200

    perm = f.InsertPermission({"type": "anyone", "role": "reader", "withLink": True})
    assert perm["id"] == "anyoneWithLink"
    assert get(link)[0] == 200  # anyone with the link
    f.DeletePermission(perm["id"])
    assert get(link)[0] == 404


def test_thumbnail_follows_new_content(fake_drive, drive, gauth, tmp_path):
    fid = fake_drive.put("MyDrive/v.png", png(100, 100))
    f = drive.CreateFile({"id": fid})
    f.FetchMetadata()
    first = f["thumbnailLink"]
    (tmp_path / "v2.png").write_bytes(png(300, 100, (0, 0, 255)))
    f.SetContentFile(str(tmp_path / "v2.png"))
    f.Upload()
    f.FetchMetadata()
    assert f["thumbnailLink"] != first
    assert int(f["thumbnailVersion"]) > 1
    assert f["imageMediaMetadata"]["width"] == 300
    with PIL.open(io.BytesIO(get(f["thumbnailLink"], bearer(gauth))[2])) as thumb:
        assert thumb.size == (220, 73)
        assert thumb.convert("RGB").getpixel((10, 10))[2] > 200


def test_thumbnails_are_listed_in_one_request(fake_drive, service):
    folder = fake_drive.mkdir("MyDrive/grid")
    for i in range(5):
        fake_drive.put(f"MyDrive/grid/{i}.png", png(20 + i, 10))
    fake_drive.reset_requests()
    listing = service.files().list(
        q=f"'{folder}' in parents", fields="items(id,title,thumbnailLink,imageMediaMetadata(width,height))"
    ).execute()
    assert sorted((f["title"], f["imageMediaMetadata"]["width"]) for f in listing["items"]) == [
        (f"{i}.png", 20 + i) for i in range(5)
    ]
    assert all(f["thumbnailLink"] for f in listing["items"])
    assert len([r for r in fake_drive.requests if r.path == "/drive/v2/files"]) == 1


# ------------------------------------------------------------------ shortcuts


def test_shortcut_insert_get_query_and_download_error(fake_drive, service):
    target = fake_drive.put("MyDrive/models/a.pth", b"weights")
    shortcut = service.files().insert(
        body={"title": "a link", "mimeType": SHORTCUT, "shortcutDetails": {"targetId": target}}
    ).execute()
    validate_resource(shortcut, "File")
    assert shortcut["mimeType"] == SHORTCUT
    assert shortcut["shortcutDetails"] == {"targetId": target, "targetMimeType": "application/octet-stream"}
    for absent in ("downloadUrl", "fileSize", "md5Checksum", "headRevisionId"):
        assert absent not in shortcut

    found = service.files().list(q=f"shortcutDetails.targetId = '{target}'").execute()["items"]
    assert [f["id"] for f in found] == [shortcut["id"]]

    from googleapiclient.errors import HttpError

    with pytest.raises(HttpError) as info:
        service.files().get_media(fileId=shortcut["id"]).execute()
    assert info.value.resp.status == 403 and info.value.error_details[0]["reason"] == "fileNotDownloadable"

    with pytest.raises(HttpError) as info:
        service.files().insert(body={"title": "dangling", "mimeType": SHORTCUT,
                                     "shortcutDetails": {"targetId": "1" + "x" * 32}}).execute()
    assert info.value.resp.status == 404
    with pytest.raises(HttpError) as info:
        service.files().insert(body={"title": "no target", "mimeType": SHORTCUT}).execute()
    assert info.value.resp.status == 400


def test_put_shortcut_shows_in_pydrive2_listing(fake_drive, drive):
    folder_id = fake_drive.mkdir("MyDrive/datasets/cats")
    link = fake_drive.put_shortcut("MyDrive/shortcuts/cats", "MyDrive/datasets/cats")
    listing = drive.ListFile({"q": f"'{fake_drive.resolve('MyDrive/shortcuts')}' in parents"}).GetList()
    assert [(f["id"], f["shortcutDetails"]["targetId"], f["shortcutDetails"]["targetMimeType"])
            for f in listing] == [(link, folder_id, "application/vnd.google-apps.folder")]


# -------------------------------------------------------------- title contains


@pytest.mark.parametrize(
    "needle, expected",
    [
        ("Hello", {"HelloWorld.txt"}),
        ("World", set()),  # not a word prefix
        ("hello", {"HelloWorld.txt"}),  # case-insensitive
        ("v2", {"model_v2.pth"}),
        ("mod", {"model_v2.pth"}),
        ("odel", set()),
        ("weights fin", {"my-weights final.bin"}),  # every word must prefix some word
        ("weights zzz", set()),
        ("bin", {"my-weights final.bin"}),
    ],
)
def test_title_contains_matches_word_prefixes_like_drive(fake_drive, drive, needle, expected):
    for name in ("HelloWorld.txt", "model_v2.pth", "my-weights final.bin"):
        fake_drive.put(f"MyDrive/t/{name}", b"x")
    got = drive.ListFile({"q": f"title contains '{needle}' and trashed = false"}).GetList()
    assert {f["title"] for f in got} == expected
