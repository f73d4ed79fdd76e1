"""Google Docs and Drive's 403 answers say what happened, in the user's words.

Before: a Google Doc passed to fetch/load_model was retried for ~15 s and reported as "access
token expired; refreshed", because every 403 on a media request was taken for a stale token.
Now the mime type is checked before any download, and each 403 reason has its own meaning.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import pytest

import colabmodels as cm
from colabmodels.drive.wire import SHORTCUT_MIME
from colabmodels.errors import (
    AuthError,
    NotDownloadableError,
    QuotaError,
    RetryableError,
)
from colabmodels.httpstatus import classify_response
from colabmodels.refs import Ref
from colabmodels.storage import backend_for

DOC = "application/vnd.google-apps.document"
SHEET = "application/vnd.google-apps.spreadsheet"
SLIDES = "application/vnd.google-apps.presentation"


def media(fd, since=0):
    return [r for r in fd.requests[since:] if r.query.get("alt") == "media"]


def token_requests(fd, since=0):
    return [r for r in fd.requests[since:] if r.path.rstrip("/").endswith("token")]


@pytest.mark.parametrize(("mime", "kind"), [
    (DOC, "a Google Doc"), (SHEET, "a Google Sheet"), (SLIDES, "a Google Slides presentation"),
])
def test_google_docs_are_named_not_downloaded(drive_env, caplog, mime, kind):
    fid = drive_env.put("MyDrive/notes/plan", b"a,b\n1,2\n", mime_type=mime)
    caplog.set_level(logging.INFO, logger="colabmodels")
    for ref in (fid, f"https://docs.google.com/document/d/{fid}/edit"
                if mime == DOC else f"https://drive.google.com/file/d/{fid}/view",
                "MyDrive/notes/plan"):
        with pytest.raises(NotDownloadableError) as info:
            cm.fetch(ref, progress=False)
        message = str(info.value)
        assert kind in message and "Export" in message
        assert "token" not in message
    assert media(drive_env) == [], "the mime type is checked before any download"
    assert not [r for r in caplog.records if "retrying" in r.getMessage()]
    cache_dir = Path(os.environ["COLABMODELS_CACHE_DIR"])
    left = [p for p in cache_dir.rglob("*") if p.is_file() and "partial" in p.parts]
    assert left == [], "nothing partial is left behind"


def test_load_model_of_a_doc_says_what_it_is(drive_env):
    fid = drive_env.put("MyDrive/notes/readme", b"hello", mime_type=DOC)
    with pytest.raises(NotDownloadableError, match="Google Doc"):
        cm.load_model(fid, progress=False)
    assert isinstance(NotDownloadableError("x"), ValueError)


def test_media_403_file_not_downloadable_is_not_a_token_problem(drive_env):
    """Straight to the bytes (skipping the mime check): Drive's own 403 reason decides."""
    fid = drive_env.put("MyDrive/notes/raw", b"hello", mime_type=DOC)
    ref = Ref("drive", id=fid)
    backend = backend_for(ref)
    backend.stat(ref)  # signs in (the first token)
    before = len(drive_env.requests)
    with pytest.raises(NotDownloadableError, match="fileNotDownloadable"):
        backend.read_range(ref, 0, None)
    assert token_requests(drive_env, before) == [], "no token refresh for a 403"


def test_download_quota_is_a_quota_error_at_once(drive_env, caplog):
    fid = drive_env.put("MyDrive/q/popular.bin", b"x" * 5000)
    drive_env.fail_next("quota", "alt=media", count=20)
    caplog.set_level(logging.INFO, logger="colabmodels")
    with pytest.raises(QuotaError, match="24 hours"):
        cm.fetch(fid, progress=False)
    # signed in: the file itself once, then once the temporary copy in the user's Drive
    # (tests/emulator/test_drive_room.py); no retries of either
    assert len(media(drive_env)) == 2
    assert not [r for r in caplog.records if "retrying" in r.getMessage()]


@pytest.mark.parametrize("kind", ["403-rate", "403-user-rate"])
def test_rate_limit_403_is_retried(drive_env, monkeypatch, kind):
    monkeypatch.setattr("colabmodels.retry.BACKOFF_BASE_S", 0.01)
    fid = drive_env.put("MyDrive/r/model.bin", b"y" * 5000)
    drive_env.fail_next(kind, "alt=media")
    assert cm.fetch(fid, progress=False).read_bytes() == b"y" * 5000
    statuses = [r.status for r in media(drive_env)]
    assert statuses[0] == 403 and statuses[-1] in (200, 206)


def test_no_permission_is_an_auth_error_that_says_so(drive_env):
    fid = drive_env.put("MyDrive/theirs/model.bin", b"z", owner="bob")
    drive_env.share(fid, readers=[drive_env.default_user], owner="bob")
    ref = Ref("drive", id=fid)
    assert backend_for(ref).read_range(ref, 0, None) == b"z"  # reading is allowed
    with pytest.raises(AuthError) as info:
        backend_for(ref).set_metadata(ref, description="mine now")
    assert "insufficientFilePermissions" in str(info.value) and "owner" in str(info.value)


def test_shortcut_stands_for_its_target(drive_env):
    data = b"target bytes" * 100
    target = drive_env.put("MyDrive/real/model.bin", data)
    session = cm.mount()
    shortcut = session.service.files().insert(
        body={"title": "model-link", "mimeType": SHORTCUT_MIME,
              "shortcutDetails": {"targetId": target}},
        fields="id").execute()["id"]
    assert cm.fetch(shortcut, progress=False).read_bytes() == data


@pytest.mark.parametrize(("status", "reason", "expected"), [
    (403, "fileNotDownloadable", NotDownloadableError),
    (403, "cannotDownloadAbusiveFile", NotDownloadableError),
    (403, "downloadQuotaExceeded", QuotaError),
    (403, "insufficientFilePermissions", AuthError),
    (403, "forbidden", AuthError),
    (403, "rateLimitExceeded", RetryableError),
    (403, "userRateLimitExceeded", RetryableError),
])
def test_403_reasons(status, reason, expected):
    body = {"error": {"code": status, "message": "m", "errors": [{"reason": reason}]}}
    import json

    error = classify_response(status, {}, json.dumps(body).encode())
    assert type(error) is expected
    assert error.status == 403
