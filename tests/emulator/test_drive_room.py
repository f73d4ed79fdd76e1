"""The Drive room (colabmodels/drive/): the one thumbnail fetch and its host rule, the typed
request functions, and the session's account key, against the emulator."""

from __future__ import annotations

import functools
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

import colabmodels as cm
from colabmodels.drive import files as drive_files
from colabmodels.drive.thumbnails import fetch_thumbnail, may_send_token


@functools.cache
def _png() -> bytes:
    """A small PNG (built on first use: the Colab-pinned env collects this module without PIL)."""
    import io

    from PIL import Image

    out = io.BytesIO()
    Image.new("RGB", (32, 24), (200, 30, 30)).save(out, "PNG")
    return out.getvalue()


class _Recorder(ThreadingHTTPServer):
    """A loopback server that is not the Drive endpoint: it records the headers it gets and
    answers a PNG (or a redirect to ``redirect_to``)."""

    def __init__(self) -> None:
        self.seen: list[dict[str, str]] = []
        self.redirect_to: str | None = None
        recorder = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                recorder.seen.append({k.lower(): v for k, v in self.headers.items()})
                if recorder.redirect_to:
                    self.send_response(302)
                    self.send_header("Location", recorder.redirect_to)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                self.send_response(200)
                self.send_header("Content-Type", "image/png")
                self.send_header("Content-Length", str(len(_png())))
                self.end_headers()
                self.wfile.write(_png())

            def log_message(self, *args: object) -> None:
                pass

        super().__init__(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server_address[1]}/"
        self._thread = threading.Thread(target=self.serve_forever, daemon=True)
        self._thread.start()

    def close(self) -> None:
        self.shutdown()
        self.server_close()


@pytest.fixture
def recorder():
    server = _Recorder()
    yield server
    server.close()


def test_the_token_goes_to_the_endpoint_and_never_to_another_host(drive_env, recorder):
    fd = drive_env
    session = cm.mount(interactive=False)
    fid = fd.put("MyDrive/pics/dot.png", _png())
    link = drive_files.get(session, fid, fields="thumbnailLink", what="test")["thumbnailLink"]
    assert link.startswith(fd.url)
    own = fetch_thumbnail(session, link, size=64)  # the emulator wants the token: it got it
    assert own.data and own.problem is None, own.problem
    thumb_requests = [r for r in fd.requests if r.path.startswith("/thumbnail/")]
    assert thumb_requests and thumb_requests[-1].status == 200

    other = fetch_thumbnail(session, recorder.url + "thumb=s220")  # loopback, but not Drive
    assert other.data == _png() and other.format == "png"
    assert recorder.seen and "authorization" not in recorder.seen[-1]

    # a link on another host that redirects to the endpoint: the token joins only at the
    # endpoint's hop, and never reaches the other host
    recorder.seen.clear()
    recorder.redirect_to = link
    redirected = fetch_thumbnail(session, recorder.url + "moved")
    assert redirected.data and "authorization" not in recorder.seen[-1]


@pytest.mark.parametrize(("link", "endpoint", "allowed"), [
    ("https://lh3.googleusercontent.com/abc=s220", "https://www.googleapis.com/", True),
    ("https://drive.google.com/thumbnail?id=x", "https://www.googleapis.com/", True),
    ("http://lh3.googleusercontent.com/abc=s220", "https://www.googleapis.com/", False),
    ("https://googleusercontent.com.evil.example/x", "https://www.googleapis.com/", False),
    ("https://evil.example/x", "https://www.googleapis.com/", False),
    ("http://127.0.0.1:9/x", "http://127.0.0.1:8/", False),
    ("http://127.0.0.1:8/thumbnail/x", "http://127.0.0.1:8/", True),
    ("http://10.0.0.5:8/thumbnail/x", "http://10.0.0.5:8/", False),
    ("https://drive.example.org/t/x", "https://drive.example.org/", True),
    ("ftp://lh3.googleusercontent.com/x", "https://www.googleapis.com/", False),
])
def test_host_rule(link, endpoint, allowed):
    assert may_send_token(link, endpoint) is allowed


def test_typed_requests_and_the_account_key(drive_env):
    fd = drive_env
    session = cm.mount(interactive=False)
    a = fd.put("MyDrive/room/a.bin", b"a")
    fd.put("MyDrive/room/sub/b.bin", b"b")
    folder = session.resolve("MyDrive/room")
    assert drive_files.parent_ids(session, a, what="test") == [folder]
    names = sorted(i["title"] for page in drive_files.children_pages(session, folder, what="t")
                   for i in page)
    assert names == ["a.bin", "sub"]
    assert [f["title"] for f in drive_files.folders_named(session, folder, "sub", what="t")] == ["sub"]
    assert drive_files.owned_md5s(session, folder, what="t") is not None
    assert session.account().endswith(".iam.gserviceaccount.com") or "@" in session.account()


# -- Drive's download quota: a temporary copy in the user's Drive ---------------------------------

def _copies(fd) -> list[dict]:
    return [f for f in fd.files_of() if "temporary copy by colabmodels" in f.get("title", "")]


def test_download_quota_is_beaten_by_a_temporary_copy(drive_env, caplog):
    fd = drive_env
    data = bytes(range(256)) * 40
    fid = fd.put("MyDrive/popular/model.bin", data)
    fd.fail_next("quota", path_contains=fid)
    fd.reset_requests()
    with caplog.at_level("WARNING", logger="colabmodels"):
        path = cm.fetch(fid, progress=False)
    assert path.read_bytes() == data
    assert any("download quota" in r.getMessage() and "temporary copy" in r.getMessage()
               for r in caplog.records)
    assert [r for r in fd.requests if r.method == "POST" and r.path.endswith(f"/{fid}/copy")]
    assert [r for r in fd.requests if r.method == "DELETE"]
    assert _copies(fd) == []  # deleted for good, not left in the trash
    fd.reset_requests()
    assert cm.fetch(fid, progress=False) == path  # cached under the original's identity


def test_the_temporary_copy_is_deleted_when_its_download_fails(drive_env):
    fd = drive_env
    fid = fd.put("MyDrive/popular/other.bin", b"x" * 5000)
    fd.fail_next("quota", path_contains="alt=media", count=2)  # the original, then the copy
    with pytest.raises(cm.errors.QuotaError, match="download quota"):
        cm.fetch(fid, progress=False)
    assert _copies(fd) == []
    assert not [e for e in cm.cache.entries() if e.name == "other.bin"]


def test_download_quota_without_sign_in_says_what_to_do(isolated, fake_drive, monkeypatch):
    fd = fake_drive
    monkeypatch.setenv("COLABMODELS_DRIVE_ENDPOINT", fd.url)
    fid = fd.put("MyDrive/popular/public.bin", b"p" * 3000, public=True)
    fd.fail_next("quota", path_contains=fid)
    with pytest.raises(cm.errors.QuotaError) as info:
        cm.fetch(fid, progress=False)
    assert "Sign in (cm.mount() or %drive_mount) and load it again" in str(info.value)


# -- a sign-in that expires mid-session -----------------------------------------------------------

def test_an_expired_sign_in_says_how_to_sign_in_again_and_a_save_can_be_retried(
        drive_env, isolated, monkeypatch):
    torch = pytest.importorskip("torch")
    fd = drive_env
    cm.mount(interactive=False)
    src = {"w": torch.arange(6, dtype=torch.float32)}
    cm.save_model(src, "MyDrive/models/net", progress=False)
    fd.revoke_sign_ins()  # the grant expired or was revoked while the notebook ran
    with pytest.raises(cm.errors.AuthError) as info:
        cm.save_model(src, "MyDrive/models/net", progress=False)
    message = str(info.value)
    assert "invalid_grant" in message and "%drive_mount --force" in message
    assert "Traceback" not in message and "ya29." not in message
    # sign in again in the same process (here: a new key; in Colab: the OAuth prompt)
    fd.write_service_account(isolated / "key-again.json")
    monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(fd.key_path))
    cm.mount(interactive=False, force_remount=True)
    info2 = cm.save_model(src, "MyDrive/models/net", progress=False)
    assert [v.ref for v in cm.versions("MyDrive/models/net")][-1] == info2.ref
