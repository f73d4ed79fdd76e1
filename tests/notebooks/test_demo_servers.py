"""The demo servers do not outlive their use: they stop when the last process (kernel) that
started or joined them has exited (after a short linger, long enough for a kernel restart), or
after an idle timeout; and starting them says how to stop them."""

from __future__ import annotations

import subprocess
import sys
import time

import pytest

from colabmodels import demo

pytestmark = pytest.mark.timeout(600)


def _gone_within(pid: int, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if not demo._alive(pid):
            return True
        time.sleep(0.2)
    return False


def test_servers_stop_after_the_last_kernel_that_used_them_exits(tmp_path, demo_content):
    work = tmp_path / "demo"
    kernel = ("import sys, time\n"
              "from colabmodels import demo\n"
              f"servers = demo.start_emulator({str(work)!r}, content={str(demo_content)!r},"
              " linger=1, idle_timeout=0)\n"
              "print(servers.pid, flush=True)\n"
              "sys.stdin.readline()\n")  # lives until told to exit, as a kernel would
    first = subprocess.Popen([sys.executable, "-c", kernel], stdin=subprocess.PIPE,
                             stdout=subprocess.PIPE, text=True)
    pid = int(first.stdout.readline())
    # a second kernel joins the same servers
    second = subprocess.Popen([sys.executable, "-c", kernel], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True)
    try:
        assert int(second.stdout.readline()) == pid
        first.communicate("\n", timeout=60)
        assert not _gone_within(pid, 4), "stopped while a kernel still used them"
        assert demo.running(work / "state.json") is not None
        second.communicate("\n", timeout=60)
        assert _gone_within(pid, 30), "still running after the last kernel exited"
        assert demo.running(work / "state.json") is None
        assert "the last process using them exited" in (work / "servers.log").read_text()
    finally:
        for proc in (first, second):
            if proc.poll() is None:
                proc.kill()
        demo.stop_emulator(work)


def test_servers_started_from_a_shell_say_how_to_stop_and_stop_when_idle(tmp_path, demo_content):
    work = tmp_path / "demo"
    done = subprocess.run(
        [sys.executable, "-m", "colabmodels.demo", "start", "--workdir", str(work),
         "--content", str(demo_content), "--idle-timeout", "3"],
        capture_output=True, text=True, timeout=300, check=True)
    servers = demo.running(work / "state.json")
    assert servers is not None  # the `start` command itself is no user: it exited at once
    try:
        assert f"colabmodels demo stop --workdir {work}" in done.stderr
        assert "after the last kernel using them exits" in done.stderr
        assert _gone_within(servers.pid, 40), "still running after the idle timeout"
        assert "no request for" in (work / "servers.log").read_text()
    finally:
        demo.stop_emulator(work)


def test_the_demo_s3_and_gcs_servers_take_no_anonymous_writes(tmp_path, demo_content):
    """Another local user must not be able to plant a model in the demo's buckets (notebook 04
    loads a SavedModel from GCS with trust=True and saves versions to S3)."""
    import json
    import stat
    import urllib.error
    import urllib.request

    import botocore.session
    from botocore import UNSIGNED
    from botocore.config import Config

    servers = demo.start_emulator(tmp_path / "demo", content=demo_content)
    try:
        endpoint = servers.env["AWS_ENDPOINT_URL_S3"]
        session = botocore.session.Session()

        def client(**kw):
            return session.create_client("s3", endpoint_url=endpoint, region_name="us-east-1", **kw)

        anonymous = client(config=Config(signature_version=UNSIGNED))
        guessed = client(aws_access_key_id="testing", aws_secret_access_key="testing")
        forged = client(aws_access_key_id=servers.env["AWS_ACCESS_KEY_ID"],
                        aws_secret_access_key="not-the-secret")
        for who in (anonymous, guessed, forged):
            for call in (lambda c: c.list_objects_v2(Bucket=demo.S3_BUCKET),
                         lambda c: c.put_object(Bucket=demo.S3_BUCKET, Key="small_vgg/x.pth", Body=b"x")):
                with pytest.raises(botocore.exceptions.ClientError) as e:
                    call(who)
                assert e.value.response["ResponseMetadata"]["HTTPStatusCode"] == 403
        own = client(aws_access_key_id=servers.env["AWS_ACCESS_KEY_ID"],
                     aws_secret_access_key=servers.env["AWS_SECRET_ACCESS_KEY"])
        keys = [o["Key"] for o in own.list_objects_v2(Bucket=demo.S3_BUCKET)["Contents"]]
        assert keys == ["small_vgg/small_vgg.pth"]
        # moto's control API could switch authentication off again: not reachable
        req = urllib.request.Request(f"{endpoint}/moto-api/reset-auth", data=b"1000", method="POST")
        with pytest.raises(urllib.error.HTTPError) as denied:
            urllib.request.urlopen(req, timeout=10)
        assert denied.value.code == 403
        assert stat.S_IMODE((tmp_path / "demo" / "state.json").stat().st_mode) == 0o600

        gcs = servers.env["STORAGE_EMULATOR_HOST"]
        upload = urllib.request.Request(
            f"{gcs}/upload/storage/v1/b/{demo.GCS_BUCKET}/o?uploadType=media&name=standardizer/saved_model.pb",
            data=b"planted", method="POST", headers={"Content-Type": "application/octet-stream"})
        for request in (upload, urllib.request.Request(
                f"{gcs}/storage/v1/b/{demo.GCS_BUCKET}/o/classifier.h5", method="DELETE")):
            with pytest.raises(urllib.error.HTTPError) as refused:
                urllib.request.urlopen(request, timeout=10)
            assert refused.value.code == 403
        with urllib.request.urlopen(f"{gcs}/storage/v1/b/{demo.GCS_BUCKET}/o", timeout=10) as resp:
            names = {item["name"] for item in json.loads(resp.read())["items"]}
        assert "standardizer/saved_model.pb" in names and "classifier.h5" in names
        with urllib.request.urlopen(f"{gcs}/storage/v1/b/{demo.GCS_BUCKET}/o/"
                                    "standardizer%2Fsaved_model.pb?alt=media", timeout=10) as resp:
            assert resp.read() != b"planted"
    finally:
        servers.stop()


def test_new_servers_start_with_an_empty_demo_cache(tmp_path, demo_content):
    """What a previous emulator's files left in the demo's cache (and its remembered listings)
    names ids the new emulator never gave: a second `make demo` failed to load `@v1`."""
    work = tmp_path / "demo"
    (work / "cache" / "listings").mkdir(parents=True)
    (work / "cache" / "listings" / "old").write_text("ids of the previous emulator")
    servers = demo.start_emulator(work, content=demo_content)
    try:
        assert servers.env["COLABMODELS_CACHE_DIR"] == str(work / "cache")
        assert not (work / "cache" / "listings" / "old").exists()
    finally:
        servers.stop()
