"""Signing in: the credential chain against the emulator's real OAuth endpoints."""

from __future__ import annotations

import logging
import stat
import sys

import pytest

import colabmodels as cm
from colabmodels import auth
from colabmodels.drive import session
from colabmodels.errors import AuthError, NotFoundError


def test_service_account_login_uses_the_jwt_flow(drive_env):
    s = cm.mount()
    assert s.method == "service_account"
    assert s.user_email == drive_env.default_user
    token_calls = [r for r in drive_env.requests if r.path == "/token"]
    assert token_calls and token_calls[0].status == 200
    assert "Signed in as" in s.describe() and "API session" in s.describe()
    assert cm.mount() is s  # one session per runtime


def test_unknown_key_is_rejected(isolated, fake_drive, tmp_path, monkeypatch):
    from colabmodels.testing import FakeDrive

    with FakeDrive() as other:
        other.write_service_account(tmp_path / "foreign.json")  # registered with another emulator
    monkeypatch.setenv("COLABMODELS_DRIVE_ENDPOINT", fake_drive.url)
    with pytest.raises(AuthError, match="refused"):
        cm.mount(service_account=str(tmp_path / "foreign.json"))


def test_saved_login_is_refreshed_after_tokens_expire(isolated, fake_drive, monkeypatch, caplog):
    from google.oauth2.credentials import Credentials

    monkeypatch.setenv("COLABMODELS_DRIVE_ENDPOINT", fake_drive.url)
    client_id, client_secret, refresh = fake_drive.issue_refresh_token()
    path = auth.save_login(Credentials(None, refresh_token=refresh, token_uri=fake_drive.url + "token",
                                       client_id=client_id, client_secret=client_secret))
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    caplog.set_level(logging.DEBUG)
    s = cm.mount(interactive=False)
    assert s.method == "saved_login"
    fid = fake_drive.put("MyDrive/a.bin", b"abc")
    assert cm.fetch(fid, progress=False).read_bytes() == b"abc"
    first_token = s.credentials.token
    fake_drive.expire_tokens()
    fid2 = fake_drive.put("MyDrive/b.bin", b"defg")
    assert cm.fetch(fid2, progress=False).read_bytes() == b"defg"  # 401, refresh, retried
    assert s.credentials.token != first_token
    refreshes = [r for r in fake_drive.requests if r.path == "/token"]
    assert len(refreshes) >= 2
    unauthorized = [r for r in fake_drive.requests if r.status == 401]
    assert unauthorized, "the expired token was really refused once"
    for secret in (refresh, first_token, s.credentials.token, client_secret):
        assert secret not in caplog.text


def test_world_readable_saved_login_is_refused(isolated, fake_drive, monkeypatch):
    from google.oauth2.credentials import Credentials

    path = auth.save_login(Credentials(None, refresh_token="r", token_uri="x", client_id="c",
                                       client_secret="s"))
    path.chmod(0o644)
    with pytest.raises(AuthError, match="chmod 600"):
        auth.load_saved_login()


def test_no_credentials_and_not_interactive_lists_the_ways(isolated, fake_drive, monkeypatch):
    monkeypatch.setenv("COLABMODELS_DRIVE_ENDPOINT", fake_drive.url)
    with pytest.raises(AuthError) as info:
        cm.mount(interactive=False)
    text = str(info.value)
    assert "service-account key" in text and "Colab" in text and "anyone with the link" in text
    with pytest.raises(AuthError):
        cm.fetch("MyDrive/models/x.pth", progress=False)  # a path needs a session


def test_errors_carry_no_token(drive_env):
    s = cm.mount()
    s.access_token()
    token = s.credentials.token
    with pytest.raises(NotFoundError) as info:
        cm.fetch("MyDrive/nothing/here.bin", progress=False)
    assert token not in str(info.value) and token not in repr(info.value)
    assert token not in repr(s.gauth.credentials)


def test_other_users_private_file_is_refused(drive_env):
    drive_env.add_user("bob@example.com")
    fid = drive_env.put("MyDrive/private.bin", b"secret", owner="bob@example.com")
    with pytest.raises((NotFoundError, AuthError)):
        cm.fetch(fid, progress=False)
    public = drive_env.put("MyDrive/public.bin", b"shared", owner="bob@example.com", public=True)
    assert cm.fetch(public, progress=False).read_bytes() == b"shared"


def test_two_files_with_one_name_list_their_ids(drive_env):
    a = drive_env.put("MyDrive/dup/model.bin", b"a")
    folder = drive_env.resolve("MyDrive/dup")
    b = drive_env.put("MyDrive/dup/model.bin", b"b", allow_duplicate=True) \
        if "allow_duplicate" in drive_env.put.__code__.co_varnames else None
    if b is None:  # make a twin through the real API, as Drive allows
        f = cm.mount().drive.CreateFile({"title": "model.bin", "parents": [{"id": folder}]})
        f.SetContentString("b")
        f.Upload()
        b = f["id"]
    from colabmodels.errors import AmbiguousPathError

    with pytest.raises(AmbiguousPathError) as info:
        cm.fetch("MyDrive/dup/model.bin", progress=False)
    assert a in str(info.value) and b in str(info.value)


@pytest.fixture
def fake_colab(tmp_path, monkeypatch, drive_env):
    """A stand-in google.colab package (Colab itself cannot run here) that records its calls."""
    calls = {}
    pkg = tmp_path / "fakecolab" / "google" / "colab"
    pkg.mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "auth.py").write_text(
        "CALLS = []\ndef authenticate_user(*a, **k):\n    CALLS.append(('authenticate_user', a, k))\n")
    (pkg / "drive.py").write_text(
        "CALLS = []\ndef mount(mountpoint, force_remount=False, timeout_ms=120000, readonly=False):\n"
        "    import os\n    os.makedirs(os.path.join(mountpoint, 'MyDrive'), exist_ok=True)\n"
        "    CALLS.append(('mount', mountpoint, force_remount, timeout_ms))\n")
    import google

    monkeypatch.setattr(google, "__path__", [*google.__path__, str(tmp_path / "fakecolab" / "google")])
    for name in ("google.colab", "google.colab.auth", "google.colab.drive"):
        sys.modules.pop(name, None)
    import google.colab

    key_file = drive_env.key_path
    import google.auth

    def fake_default(scopes=None, **_):
        calls["scopes"] = scopes
        return auth.load_service_account(key_file), "colab-project"

    monkeypatch.setattr(google.auth, "default", fake_default)
    monkeypatch.delenv("GOOGLE_APPLICATION_CREDENTIALS")
    yield calls
    for name in ("google.colab", "google.colab.auth", "google.colab.drive"):
        sys.modules.pop(name, None)


def test_colab_branch_authenticates_mounts_and_feeds_pydrive2(fake_colab, tmp_path, drive_env):
    import google.colab.auth as colab_auth
    import google.colab.drive as colab_drive

    mountpoint = str(tmp_path / "content" / "drive")
    s = cm.mount(mountpoint, force_remount=True, timeout_ms=5000)
    assert s.method == "colab"
    assert colab_auth.CALLS == [("authenticate_user", (), {})]
    assert [("mount", mountpoint, True, 5000)] == colab_drive.CALLS
    assert fake_colab["scopes"] == ["https://www.googleapis.com/auth/drive"]
    assert s.mountpoint == mountpoint and "Drive mounted at" in s.describe()
    # the Colab credentials reach PyDrive2: list MyDrive through GoogleDrive
    drive_env.put("MyDrive/colab/x.txt", b"hi")
    titles = [f["title"] for f in s.drive.ListFile({"q": "'root' in parents and trashed=false"}).GetList()]
    assert "colab" in titles
    session.reset()


def test_shared_with_me_paths_resolve(drive_env):
    drive_env.add_user("bob@example.com")
    drive_env.put("MyDrive/team-models/resnet.bin", b"weights", owner="bob@example.com")
    drive_env.share("MyDrive/team-models", readers=[drive_env.default_user], owner="bob@example.com")
    assert cm.fetch("SharedWithMe/team-models/resnet.bin", progress=False).read_bytes() == b"weights"
    with pytest.raises(NotFoundError, match="SharedWithMe/nothing"):
        cm.fetch("SharedWithMe/nothing/x.bin", progress=False)
