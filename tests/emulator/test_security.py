"""Issue 11: what a downloaded file names is data; credentials go only where they were issued;
secrets stay out of the cache, logs and messages; the cache is private to the user."""

from __future__ import annotations

import json
import logging
import os
import stat
import struct
import sys

import pytest

import colabmodels as cm
from colabmodels import auth
from colabmodels.errors import AuthError, UntrustedFormatError

MARKER = '''
CALLS = []


def build(*args, **kwargs):
    """Stands in for an attacker's callable (``os:system``-like): records that it ran."""
    CALLS.append((args, kwargs))
    import torch

    class Net(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.w = torch.nn.Parameter(torch.zeros(1))

    return Net()
'''


def _safetensors(value: float = 2.5) -> bytes:
    header = json.dumps({"w": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}}).encode()
    header += b" " * (-len(header) % 8)
    return struct.pack("<Q", len(header)) + header + struct.pack("<f", value)


def _manifest(arch: str) -> bytes:
    return json.dumps({
        "colabmodels": "0", "manifest_schema": 1, "version": 1, "framework": "torch",
        "format": "safetensors", "model_path": "model.safetensors",
        "files": [{"path": "model.safetensors", "size": 0, "sha256": ""}],
        "created": "2026-01-01T00:00:00+00:00", "metadata": {}, "arch": arch,
    }).encode()


@pytest.fixture
def marker(tmp_path, monkeypatch):
    """An importable module whose ``build`` records every call (the test's 'os:system')."""
    (tmp_path / "cm_marker_arch.py").write_text(MARKER)
    monkeypatch.syspath_prepend(str(tmp_path))
    sys.modules.pop("cm_marker_arch", None)
    yield "cm_marker_arch:build"
    sys.modules.pop("cm_marker_arch", None)


# -- the manifest's arch is never imported on its own ----------------------------------------

def test_another_users_manifest_arch_is_not_imported(drive_env, marker):
    drive_env.add_user("mallory@example.com")
    for name, data in (("model.safetensors", _safetensors()), ("manifest.json", _manifest(marker))):
        drive_env.put(f"MyDrive/trap/v1/{name}", data, owner="mallory@example.com")
    drive_env.share("MyDrive/trap", readers=[drive_env.default_user], owner="mallory@example.com")

    with pytest.raises(UntrustedFormatError) as info:
        cm.load_model("SharedWithMe/trap@v1", progress=False)
    message = str(info.value)
    assert marker in message and f"arch={marker!r}" in message and "trust=True" in message
    assert "SharedWithMe/trap@v1" in message  # names what the user typed
    assert info.value.would_run == [marker]
    assert "cm_marker_arch" not in sys.modules, "the module named by the manifest was imported"

    # the caller's own arch= (the same one, once they decided to trust it) is used
    model = cm.load_model("SharedWithMe/trap@v1", arch=marker, progress=False)
    import cm_marker_arch

    assert len(cm_marker_arch.CALLS) == 1
    assert float(model.w.detach()) == 2.5


def test_local_version_manifest_arch_needs_arch_or_trust(isolated, tmp_path, marker):
    folder = tmp_path / "models" / "net" / "v1"
    folder.mkdir(parents=True)
    (folder / "model.safetensors").write_bytes(_safetensors(1.5))
    (folder / "manifest.json").write_bytes(_manifest(marker))
    with pytest.raises(UntrustedFormatError, match="never imports"):
        cm.load_model(f"{tmp_path}/models/net@v1", progress=False)
    assert "cm_marker_arch" not in sys.modules
    model = cm.load_model(f"{tmp_path}/models/net@latest", trust=True, progress=False)
    assert float(model.w.detach()) == 1.5


def test_own_save_uses_its_manifest_arch(drive_env, marker):
    for name, data in (("model.safetensors", _safetensors(4.0)), ("manifest.json", _manifest(marker))):
        drive_env.put(f"MyDrive/mine/v1/{name}", data)  # owned and last modified by the user
    model = cm.load_model("MyDrive/mine@v1", progress=False)
    import cm_marker_arch

    assert len(cm_marker_arch.CALLS) == 1 and float(model.w.detach()) == 4.0


def test_own_folder_with_a_file_last_changed_by_someone_else_is_not_own(drive_env, marker):
    drive_env.put("MyDrive/mixed/v1/model.safetensors", _safetensors())
    drive_env.put("MyDrive/mixed/v1/manifest.json", _manifest(marker))
    mallory = drive_env.add_user("mallory@example.com")
    drive_env.share("MyDrive/mixed", writers=[mallory])
    # mallory, a writer of the shared folder, was the last to change the manifest
    with drive_env.store.lock:
        drive_env.store.get(drive_env.resolve("MyDrive/mixed/v1/manifest.json")).last_modifying_user = mallory
    with pytest.raises(UntrustedFormatError):
        cm.load_model("MyDrive/mixed@v1", progress=False)
    assert "cm_marker_arch" not in sys.modules


# -- credentials go only where they were issued ------------------------------------------------

def _key_with_token_uri(fd, path, token_uri):
    info = fd.service_account_info()
    info["token_uri"] = token_uri
    path.write_text(json.dumps(info))
    path.chmod(0o600)
    return path


def test_google_service_account_is_not_sent_to_a_custom_endpoint(isolated, fake_drive, monkeypatch):
    key = _key_with_token_uri(fake_drive, isolated / "google-key.json", auth.GOOGLE_TOKEN_URI)
    monkeypatch.setenv("COLABMODELS_DRIVE_ENDPOINT", fake_drive.url)
    fake_drive.reset_requests()
    with pytest.raises(AuthError) as info:
        cm.mount(service_account=str(key))
    text = str(info.value)
    assert "refused" in text and "Google-issued" in text and "token_uri" in text
    assert fake_drive.requests == [], "a request reached the custom endpoint"
    with pytest.raises(AuthError):  # the implicit sign-in of a fetch refuses it too
        monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(key))
        cm.fetch("MyDrive/x.bin", progress=False)
    assert fake_drive.requests == []


def test_google_saved_login_is_not_sent_to_a_custom_endpoint(isolated, fake_drive, monkeypatch):
    from google.oauth2.credentials import Credentials

    client_id, client_secret, refresh = fake_drive.issue_refresh_token()
    auth.save_login(Credentials(None, refresh_token=refresh, token_uri=auth.GOOGLE_TOKEN_URI,
                                client_id=client_id, client_secret=client_secret))
    monkeypatch.setenv("COLABMODELS_DRIVE_ENDPOINT", fake_drive.url)
    fake_drive.reset_requests()
    with pytest.raises(AuthError, match="refused") as info:
        cm.mount(interactive=False)
    assert refresh not in str(info.value) and client_secret not in str(info.value)
    assert fake_drive.requests == []


def test_emulator_key_over_plain_http_to_another_host_is_refused(isolated, fake_drive, monkeypatch):
    key = isolated / "key.json"
    fake_drive.write_service_account(key)
    monkeypatch.setenv("COLABMODELS_DRIVE_ENDPOINT", "http://192.0.2.10:8080/")  # TEST-NET, not us
    with pytest.raises(AuthError, match="plain HTTP"):
        cm.mount(service_account=str(key))
    # the same key may not go to Google either: it was issued by the emulator
    monkeypatch.delenv("COLABMODELS_DRIVE_ENDPOINT")
    with pytest.raises(AuthError, match="not by Google"):
        cm.mount(service_account=str(key))


def test_key_of_another_emulator_is_refused_before_any_request(isolated, fake_drive, tmp_path,
                                                              monkeypatch):
    from colabmodels.testing import FakeDrive

    with FakeDrive() as other:
        other.write_service_account(tmp_path / "other.json")
    monkeypatch.setenv("COLABMODELS_DRIVE_ENDPOINT", fake_drive.url)
    fake_drive.reset_requests()
    with pytest.raises(AuthError, match="token_uri names it"):
        cm.mount(service_account=str(tmp_path / "other.json"))
    assert fake_drive.requests == []


def test_emulator_key_and_emulator_work(drive_env):
    fid = drive_env.put("MyDrive/ok.bin", b"fine")
    assert cm.fetch(fid, progress=False).read_bytes() == b"fine"
    assert [r for r in drive_env.requests if r.path == "/token"]


@pytest.mark.parametrize(("issuer", "endpoint", "allowed"), [
    (None, "https://www.googleapis.com/", True),  # Colab's own credentials
    ("https://oauth2.googleapis.com/token", "https://www.googleapis.com/", True),
    ("https://accounts.google.com/o/oauth2/token", "https://www.googleapis.com/", True),
    ("https://oauth2.googleapis.com/token", "https://drive.example.com/", False),
    ("https://oauth2.googleapis.com/token", "http://www.googleapis.com/", False),
    ("http://127.0.0.1:9000/token", "http://127.0.0.1:9000/", True),
    ("http://localhost:9000/token", "http://localhost:9000/", True),
    ("http://127.0.0.1:9001/token", "http://127.0.0.1:9000/", False),
    ("https://drive.example.com/token", "https://drive.example.com/", True),
    ("http://drive.example.com/token", "http://drive.example.com/", False),
    ("https://evil.example.com/token", "https://www.googleapis.com/", False),
    ("https://drive.example.com/token", "ftp://drive.example.com/", False),
])
def test_check_destination_rules(issuer, endpoint, allowed):
    if allowed:
        auth.check_destination(issuer, endpoint, method="test")
    else:
        with pytest.raises(AuthError, match="refused"):
            auth.check_destination(issuer, endpoint, method="test")


# -- secrets stay out of logs, messages, reprs and the cache -----------------------------------

def test_redact_removes_every_kind_of_secret():
    secrets = {
        "ya29.a0AfB_byCdEf-GhIj.KlMn": "ya29.",
        "1//0gAbCdEfGhIjKlMnOpQrStUvWxYz-_0123": "1//",
        "GOCSPX-s3cr3tV4lue": None,
        "-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBg\n-----END PRIVATE KEY-----\n": None,
        "eyJhbGciOiJSUzI1NiJ9.eyJpc3MiOiJ4In0.c2lnbmF0dXJl": None,
        "AKIAIOSFODNN7EXAMPLE%2F20240101": None,
        "f00dfeedsignature": None,
    }
    text = (
        'token ya29.a0AfB_byCdEf-GhIj.KlMn refresh 1//0gAbCdEfGhIjKlMnOpQrStUvWxYz-_0123 '
        '{"client_secret": "GOCSPX-s3cr3tV4lue", "private_key": "-----BEGIN PRIVATE KEY-----\\n'
        'MIIEvQIBADANBg\\n-----END PRIVATE KEY-----\\n"} '
        '-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBg\n-----END PRIVATE KEY-----\n'
        'assertion=eyJhbGciOiJSUzI1NiJ9.eyJpc3MiOiJ4In0.c2lnbmF0dXJl '
        'https://b.s3.amazonaws.com/k?X-Amz-Credential=AKIAIOSFODNN7EXAMPLE%2F20240101'
        '&X-Amz-Signature=f00dfeedsignature'
    )
    out = auth.redact(text)
    for secret in secrets:
        assert secret not in out
    for fragment in ("0gAbCdEf", "MIIEvQ", "s3cr3t", "c2lnbmF0dXJl", "f00dfeed"):
        assert fragment not in out


def test_presigned_s3_url_leaves_no_signature_behind(isolated, moto_server, caplog, capsys):
    bucket = moto_server.create_bucket("signed")
    moto_server.put_object(bucket, "models/weights.bin", b"w" * 5000)
    url = moto_server.client().generate_presigned_url(
        "get_object", Params={"Bucket": bucket, "Key": "models/weights.bin"}, ExpiresIn=3600)
    from urllib.parse import parse_qs, urlsplit

    query = parse_qs(urlsplit(url).query)
    secrets = [v for k, vs in query.items() for v in vs
               if k.lower() in ("x-amz-signature", "x-amz-credential", "x-amz-security-token",
                                "signature", "awsaccesskeyid")]
    assert secrets, url
    caplog.set_level(logging.DEBUG)
    path = cm.fetch(url, progress=False)
    assert path.read_bytes() == b"w" * 5000
    again = cm.fetch(url, progress=False)  # a hit, through the alias
    assert again == path

    cache_root = isolated / "cache"
    checked = 0
    for dirpath, _, filenames in os.walk(cache_root):
        for name in filenames:
            data = open(os.path.join(dirpath, name), "rb").read()  # noqa: SIM115
            checked += 1
            for secret in secrets:
                assert secret.encode() not in data, os.path.join(dirpath, name)
                assert secret.encode() not in name.encode()
    assert checked >= 3  # data, meta.json, an alias
    shown = repr(cm.cache.entries()) + str(cm.cache.entries())
    from colabmodels.api import cache_ls

    report = cache_ls()
    shown += repr(report.entries) + " ".join(e.source + e.identity for e in report.entries)
    assert "models/weights.bin" in shown
    for secret in secrets:
        assert secret not in shown
    ours = "\n".join(r.getMessage() for r in caplog.records if r.name.startswith("colabmodels"))
    for secret in secrets:
        assert secret not in ours
    from colabmodels import cli

    assert cli.main(["cache", "ls"]) == 0
    printed = capsys.readouterr()
    assert "weights.bin" in printed.out
    for secret in secrets:
        assert secret not in printed.out + printed.err


# -- the cache is private ----------------------------------------------------------------------

def test_cache_is_private_whatever_the_umask(drive_env):
    old = os.umask(0o022)
    try:
        fid = drive_env.put("MyDrive/private/model.bin", os.urandom(300_000))
        drive_env.put("MyDrive/private/tree/a.bin", b"a")
        drive_env.put("MyDrive/private/tree/sub/b.bin", b"b")
        cm.fetch(fid, progress=False)
        cm.fetch("MyDrive/private/tree", progress=False)
    finally:
        os.umask(old)
    root = drive_env.key_path.parent / "cache"
    modes = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in [*dirnames, *filenames]:
            p = os.path.join(dirpath, name)
            if not os.path.islink(p):
                modes[p] = stat.S_IMODE(os.lstat(p).st_mode)
    modes[str(root)] = stat.S_IMODE(root.stat().st_mode)
    assert len(modes) > 8
    readable = {p: oct(m) for p, m in modes.items() if m & 0o077}
    assert readable == {}, f"readable by others: {readable}"
    assert modes[str(root)] == 0o700
