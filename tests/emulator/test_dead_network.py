"""A network that is down fails at once, as NetworkDownError (an OfflineError), not after retries.

The emulator is started, a file put and fetched, then the emulator is stopped: every later
call gets "connection refused". A DNS failure is a URL under ``.invalid`` (RFC 2606: never
resolves). Whether the call retried is read from the log (the retry policy logs each retry),
not from a clock.
"""

from __future__ import annotations

import errno
import logging
import socket

import pytest

import colabmodels as cm
import colabmodels.drive.session
from colabmodels.errors import NetworkDownError, OfflineError, RetryableError, TransferError
from colabmodels.refs import Ref
from colabmodels.retry import call_with_retries, is_retryable, network_down_cause
from colabmodels.storage import backend_for


def retries_logged(caplog) -> list[logging.LogRecord]:
    return [r for r in caplog.records if "retrying" in r.getMessage()]


@pytest.fixture
def stopped_drive(drive_env):
    """Two files, one fetched while Drive was up, then Drive stopped: ``(cached_id, other_id)``."""
    cached = drive_env.put("MyDrive/m/model.bin", b"weights" * 1000)
    other = drive_env.put("MyDrive/m/other.bin", b"other" * 1000)
    cm.fetch(cached, progress=False)
    drive_env.stop()
    return cached, other


def test_session_in_use_fails_at_once(stopped_drive, caplog):
    cached, other = stopped_drive
    caplog.set_level(logging.INFO, logger="colabmodels")
    ref = Ref("drive", id=cached)
    with pytest.raises(NetworkDownError) as info:
        backend_for(ref).stat(ref)
    assert isinstance(info.value, OfflineError) and isinstance(info.value, ConnectionError)
    assert "COLABMODELS_OFFLINE=1" in str(info.value)
    with pytest.raises(NetworkDownError):  # not cached: nothing to fall back to
        cm.fetch(other, progress=False)
    assert retries_logged(caplog) == []


def test_cached_copy_is_served_when_drive_is_down(stopped_drive, caplog):
    cached, _ = stopped_drive
    caplog.set_level(logging.INFO, logger="colabmodels")
    with pytest.warns(UserWarning):
        assert cm.fetch(cached, progress=False).read_bytes() == b"weights" * 1000
    assert retries_logged(caplog) == []


def test_fresh_process_sign_in_fails_at_once(stopped_drive, caplog):
    _, other = stopped_drive
    colabmodels.drive.session.reset()  # as in a new process: the first use signs in again
    caplog.set_level(logging.INFO, logger="colabmodels")
    with pytest.raises(NetworkDownError):
        cm.fetch(other, progress=False)
    with pytest.raises(NetworkDownError):
        cm.fetch("MyDrive/m/other.bin", progress=False)
    assert retries_logged(caplog) == []


def test_explicit_mount_fails_at_once(stopped_drive, caplog):
    colabmodels.drive.session.reset()
    caplog.set_level(logging.INFO, logger="colabmodels")
    with pytest.raises(NetworkDownError):
        cm.mount()
    assert retries_logged(caplog) == []


def test_offline_mode_still_serves_what_was_fetched(stopped_drive, monkeypatch):
    cached, _ = stopped_drive
    monkeypatch.setenv("COLABMODELS_OFFLINE", "1")
    assert cm.fetch(cached, progress=False).read_bytes() == b"weights" * 1000


def test_public_link_without_sign_in_fails_at_once(isolated, fake_drive, monkeypatch, caplog):
    monkeypatch.setenv("COLABMODELS_DRIVE_ENDPOINT", fake_drive.url)
    fid = fake_drive.put("MyDrive/pub/m.bin", b"public", public=True)
    fake_drive.stop()
    caplog.set_level(logging.INFO, logger="colabmodels")
    with pytest.raises(NetworkDownError):
        cm.fetch(fid, progress=False)
    assert retries_logged(caplog) == []


def test_http_refused_and_dns_failure_fail_at_once(isolated, caplog):
    with socket.socket() as s:  # a port that nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    caplog.set_level(logging.INFO, logger="colabmodels")
    with pytest.raises(NetworkDownError):
        cm.fetch(f"http://127.0.0.1:{port}/model.bin", progress=False)
    with pytest.raises(NetworkDownError):
        cm.fetch("http://colabmodels-test.invalid/model.bin", progress=False)
    assert retries_logged(caplog) == []


@pytest.mark.parametrize("error", [
    ConnectionRefusedError(errno.ECONNREFUSED, "Connection refused"),
    OSError(errno.EHOSTUNREACH, "No route to host"),
    OSError(errno.ENETUNREACH, "Network is unreachable"),
    socket.gaierror(socket.EAI_NONAME, "Name or service not known"),
])
def test_down_is_not_retried(error):
    wrapped = RetryableError("cannot reach http://x/")
    wrapped.__cause__ = error
    assert network_down_cause(wrapped) is error
    assert not is_retryable(wrapped)
    calls = []

    def refused():
        calls.append(1)
        raise wrapped

    with pytest.raises(NetworkDownError):
        call_with_retries(refused, what="reading x", sleep=lambda s: None)
    assert len(calls) == 1


@pytest.mark.parametrize("error", [
    ConnectionResetError(errno.ECONNRESET, "Connection reset by peer"),
    TimeoutError("timed out"),
    RetryableError("HTTP 503", status=503),
])
def test_transient_trouble_is_still_retried(error):
    calls = []

    def flaky():
        calls.append(1)
        raise error

    with pytest.raises(TransferError):
        call_with_retries(flaky, what="reading x", attempts=3, sleep=lambda s: None)
    assert len(calls) == 3
