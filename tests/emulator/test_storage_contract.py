"""One storage contract, run against every backend on loopback servers.

``StorageContract`` holds the tests; each ``Test<Source>`` class provides three fixtures:

- ``backend``: the backend under test,
- ``root_ref``: a writable (for HTTP: seedable) folder, fresh for each test,
- ``make_file(rel_path, data) -> Ref``: puts a file under ``root_ref`` *without* going through
  the backend (a direct client call), and returns its reference (``root_ref.child(rel_path)``).

A source that cannot be written sets ``read_only`` to the reason; write tests then skip.
"""

from __future__ import annotations

import email.utils
import hashlib
import random
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from colabmodels.errors import (
    AuthError,
    NotDownloadableError,
    NotFoundError,
    QuotaError,
    RefError,
    RetryableError,
    TransferError,
)
from colabmodels.refs import Ref
from colabmodels.storage.base import RemoteStat, StorageBackend
from tests.servers import gcs_storage_options, s3_storage_options

pytestmark = pytest.mark.emulator


def _data(n: int, seed: int = 0) -> bytes:
    return random.Random(seed).randbytes(n)


def _md5(data: bytes) -> str:
    return "md5:" + hashlib.md5(data).hexdigest()


class StorageContract:
    """What every backend promises (see ``colabmodels/storage/base.py``)."""

    read_only: str | None = None
    """Why this source cannot be written (write tests skip), or None."""
    has_checksum = True
    """The source reports an MD5 for plainly uploaded files."""
    has_folders = True

    def skip_if_read_only(self) -> None:
        if self.read_only:
            pytest.skip(self.read_only)

    def skip_if_no_folders(self) -> None:
        if not self.has_folders:
            pytest.skip(f"{type(self).__name__[4:]} URLs are files, not folders")

    def _upload(self, backend: StorageBackend, tmp_path: Path, dest: Ref, data: bytes,
                **kwargs) -> RemoteStat:
        src = tmp_path / f"src-{uuid.uuid4().hex}.bin"
        src.write_bytes(data)
        return backend.upload(src, dest, **kwargs)

    # -- stat ------------------------------------------------------------------------------

    def test_stat_file(self, backend, make_file):
        data = b"weights " * 1000
        ref = make_file("models/model.bin", data)
        st = backend.stat(ref)
        assert st.name == "model.bin"
        assert st.size == len(data)
        assert not st.is_dir
        assert st.identity
        again = backend.stat(st.ref)  # the returned ref reaches the object again
        assert (again.size, again.identity) == (st.size, st.identity)

    def test_checksum_is_md5_of_the_bytes(self, backend, make_file):
        data = _data(5000, seed=1)
        st = backend.stat(make_file("c.bin", data))
        if self.has_checksum:
            assert st.checksum == _md5(data)
        else:
            assert st.checksum is None or st.checksum == _md5(data)

    def test_identity_changes_when_content_changes(self, backend, make_file):
        first = backend.stat(make_file("x.bin", b"version one")).identity
        second = backend.stat(make_file("x.bin", b"version two, longer")).identity
        assert first and second and first != second

    def test_stat_missing_is_not_found(self, backend, root_ref):
        with pytest.raises(NotFoundError) as info:
            backend.stat(root_ref.child("no-such-file.bin"))
        assert isinstance(info.value, FileNotFoundError)

    def test_empty_file(self, backend, make_file):
        ref = make_file("empty.bin", b"")
        assert backend.stat(ref).size == 0
        assert backend.read_range(ref, 0, None) == b""

    # -- list ------------------------------------------------------------------------------

    def test_list_folder(self, backend, root_ref, make_file):
        make_file("d/a.bin", b"a")
        make_file("d/b.txt", b"bb")
        make_file("d/sub/c.bin", b"ccc")
        listing = backend.list(root_ref.child("d"))
        assert isinstance(listing, Iterator)  # lazy, not a list
        entries = {e.name: e for e in listing}
        assert set(entries) == {"a.bin", "b.txt", "sub"}
        assert entries["sub"].is_dir and not entries["a.bin"].is_dir
        assert entries["b.txt"].size == 2
        assert backend.stat(entries["b.txt"].ref).size == 2  # list output feeds stat
        assert backend.stat(entries["sub"].ref).is_dir
        assert {e.name for e in backend.list(entries["sub"].ref)} == {"c.bin"}

    def test_list_in_pages(self, backend, root_ref, make_file):
        self.skip_if_no_folders()
        names = {f"f{i}.bin" for i in range(5)}
        for name in names:
            make_file(f"p/{name}", name.encode())
        assert {e.name for e in backend.list(root_ref.child("p"), page_size=2)} == names

    def test_list_missing_folder_is_not_found(self, backend, root_ref):
        self.skip_if_no_folders()
        with pytest.raises(NotFoundError):
            list(backend.list(root_ref.child("no-such-folder")))

    # -- read ------------------------------------------------------------------------------

    def test_read_range(self, backend, make_file):
        data = _data(10_240, seed=2)
        ref = make_file("r.bin", data)
        n = len(data)
        assert backend.read_range(ref, 0, 100) == data[:100]  # head
        assert backend.read_range(ref, 5000, 6000) == data[5000:6000]  # middle
        assert backend.read_range(ref, n - 10, n) == data[-10:]  # tail
        assert backend.read_range(ref, 1000, None) == data[1000:]  # to the end
        assert backend.read_range(ref, 0, None) == data
        assert backend.read_range(ref, 77, 77) == b""

    def test_open_range_streams_in_chunks(self, backend, make_file):
        data = _data(3 * 1024 * 1024 + 123, seed=3)
        ref = make_file("big.bin", data)
        chunks = list(backend.open_range(ref, 0, None))
        assert len(chunks) > 1 and all(isinstance(c, bytes) for c in chunks)
        assert max(len(c) for c in chunks) <= 8 * 1024 * 1024
        assert b"".join(chunks) == data
        assert backend.read_range(ref, 1_000_000, 2_500_001) == data[1_000_000:2_500_001]

    def test_open_range_of_missing_file_is_not_found(self, backend, root_ref):
        with pytest.raises(NotFoundError):
            list(backend.open_range(root_ref.child("nope.bin"), 0, 10))

    # -- write -----------------------------------------------------------------------------

    def test_upload_then_stat_and_read_back(self, backend, root_ref, tmp_path):
        self.skip_if_read_only()
        data = _data(300_000, seed=4)
        dest = root_ref.child("up/nested/model.bin")
        seen: list[int] = []
        st = self._upload(backend, tmp_path, dest, data, progress=seen.append)
        assert st.size == len(data) and st.name == "model.bin" and st.identity
        assert sum(seen) == len(data)
        assert backend.read_range(dest, 0, None) == data
        assert backend.stat(dest).identity == st.identity

    def test_upload_empty_file(self, backend, root_ref, tmp_path):
        self.skip_if_read_only()
        st = self._upload(backend, tmp_path, root_ref.child("empty.bin"), b"")
        assert st.size == 0 and st.identity
        assert backend.read_range(st.ref, 0, None) == b""

    def test_upload_overwrites(self, backend, root_ref, tmp_path):
        self.skip_if_read_only()
        dest = root_ref.child("over.bin")
        first = self._upload(backend, tmp_path, dest, b"old bytes")
        second = self._upload(backend, tmp_path, dest, b"new bytes, more of them")
        assert first.identity != second.identity
        assert backend.read_range(dest, 0, None) == b"new bytes, more of them"

    def test_upload_with_metadata(self, backend, root_ref, tmp_path):
        self.skip_if_read_only()
        dest = root_ref.child("meta/model.bin")
        description = "fine-tuned vgg16 \u2014 acc 0.93 \u2713"  # not ASCII on purpose
        properties = {"acc": "0.93", "framework": "torch"}
        st = self._upload(backend, tmp_path, dest, b"weights",
                          metadata={"description": description, "properties": properties})
        for s in (st, backend.stat(dest)):
            assert s.description == description
            assert s.properties == properties

    def test_set_metadata_merges_properties(self, backend, make_file):
        self.skip_if_read_only()
        ref = make_file("m.bin", b"payload")
        st = backend.set_metadata(ref, description="first", properties={"a": "1", "b": "2"})
        assert (st.description, st.properties) == ("first", {"a": "1", "b": "2"})
        st = backend.set_metadata(ref, properties={"b": "20", "c": "3"})
        assert st.description == "first"
        assert st.properties == {"a": "1", "b": "20", "c": "3"}
        st = backend.set_metadata(ref, description="second")
        again = backend.stat(ref)
        assert (again.description, again.properties) == ("second", {"a": "1", "b": "20", "c": "3"})
        assert backend.read_range(ref, 0, None) == b"payload"

    def test_makedirs_then_upload_into_it(self, backend, root_ref, tmp_path):
        self.skip_if_read_only()
        folder = root_ref.child("made/deep")
        backend.makedirs(folder)
        self._upload(backend, tmp_path, folder.child("w.bin"), b"w")
        assert backend.stat(folder).is_dir
        assert [e.name for e in backend.list(folder)] == ["w.bin"]

    def test_delete(self, backend, make_file):
        self.skip_if_read_only()
        ref = make_file("gone.bin", b"bye")
        backend.delete(ref)
        with pytest.raises(NotFoundError):
            backend.stat(ref)

    # -- download (through colabmodels.transfer) --------------------------------------------

    def test_download(self, backend, make_file, tmp_path):
        from colabmodels.transfer import download

        data = _data(2 * 1024 * 1024 + 7, seed=5)
        ref = make_file("dl/model.bin", data)
        dest = tmp_path / "model.bin"
        seen: list[int] = []
        st = download(backend, ref, dest, progress=seen.append)
        assert st.size == len(data)
        assert dest.read_bytes() == data
        assert sum(seen) == len(data)


# -- local -------------------------------------------------------------------------------------

class TestLocal(StorageContract):
    has_checksum = False

    @pytest.fixture
    def backend(self):
        from colabmodels.storage.local import LocalBackend

        return LocalBackend()

    @pytest.fixture
    def root_ref(self, tmp_path):
        root = tmp_path / "root"
        root.mkdir()
        return Ref("local", path=str(root), raw=str(root))

    @pytest.fixture
    def make_file(self, root_ref):
        def make(rel_path: str, data: bytes) -> Ref:
            path = Path(root_ref.path) / rel_path
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)
            return root_ref.child(rel_path)

        return make

    def test_metadata_lives_in_a_hidden_sidecar(self, backend, make_file):
        ref = make_file("s/model.bin", b"x")
        backend.set_metadata(ref, description="d", properties={"k": "v"})
        folder = Path(ref.path).parent
        assert (folder / ".model.bin.colabmodels-meta.json").is_file()
        assert [e.name for e in backend.list(Ref("local", path=str(folder)))] == ["model.bin"]
        backend.delete(ref)
        assert list(folder.iterdir()) == []

    def test_list_of_a_file_is_a_ref_error(self, backend, make_file):
        with pytest.raises(RefError):
            backend.list(make_file("f.bin", b"f"))


# -- S3 (moto) ---------------------------------------------------------------------------------

BUCKET = "colabmodels-contract"


@pytest.fixture(scope="module")
def s3_bucket(moto_server):
    return moto_server.create_bucket(BUCKET)


@pytest.fixture(scope="module")
def gcs_bucket(gcs_emulator):
    return gcs_emulator.create_bucket(BUCKET)


class _BucketFixtures:
    """Shared by S3 and GCS: one bucket, a fresh prefix per test."""

    bucket = BUCKET
    source = ""
    scheme = ""

    @pytest.fixture
    def root_ref(self, bucket_name):
        path = f"{bucket_name}/{uuid.uuid4().hex[:12]}"
        return Ref(self.source, path=path, raw=f"{self.scheme}{path}")

    def test_reads_large_ranges_in_several_requests(self, backend, make_file, monkeypatch):
        from colabmodels.storage import _fsspec

        monkeypatch.setattr(_fsspec, "READ_REQUEST_BYTES", 256 * 1024)
        data = _data(1024 * 1024 + 5, seed=6)
        ref = make_file("parts.bin", data)
        assert backend.read_range(ref, 0, None) == data
        assert backend.read_range(ref, 100_000, 900_000) == data[100_000:900_000]

    def test_missing_bucket_is_not_found(self, backend):
        with pytest.raises(NotFoundError):
            backend.stat(Ref(self.source, path="no-such-bucket-here/x.bin"))

    def test_stat_of_bucket_and_prefix_are_folders(self, backend, root_ref, make_file):
        make_file("sub/a.bin", b"a")
        assert backend.stat(Ref(self.source, path=self.bucket)).is_dir
        assert backend.stat(root_ref.child("sub")).is_dir
        assert backend.stat(root_ref.child("sub/")).is_dir


class TestS3(_BucketFixtures, StorageContract):
    source = "s3"
    scheme = "s3://"

    @pytest.fixture
    def bucket_name(self, s3_bucket):
        return s3_bucket

    @pytest.fixture
    def backend(self, moto_server):
        from colabmodels.storage.s3 import S3Backend

        return S3Backend(**s3_storage_options(moto_server.endpoint))

    @pytest.fixture
    def make_file(self, moto_server, root_ref):
        def make(rel_path: str, data: bytes) -> Ref:
            bucket, _, prefix = root_ref.path.partition("/")
            moto_server.put_object(bucket, f"{prefix}/{rel_path}", data)
            return root_ref.child(rel_path)

        return make

    def test_multipart_etag_is_no_checksum(self, backend, moto_server, root_ref):
        bucket, _, prefix = root_ref.path.partition("/")
        key = f"{prefix}/multi.bin"
        client = moto_server.client()
        mpu = client.create_multipart_upload(Bucket=bucket, Key=key)
        part = client.upload_part(Bucket=bucket, Key=key, UploadId=mpu["UploadId"],
                                  PartNumber=1, Body=b"only part")
        client.complete_multipart_upload(
            Bucket=bucket, Key=key, UploadId=mpu["UploadId"],
            MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": part["ETag"]}]})
        st = backend.stat(root_ref.child("multi.bin"))
        assert st.checksum is None and "-1" in st.identity
        assert backend.read_range(st.ref, 0, None) == b"only part"

    def test_set_metadata_on_large_object_copies_in_parts(self, backend, make_file):
        backend.copy_limit = 1024  # pretend the 5 GiB CopyObject limit is tiny
        backend.copy_part_bytes = 5 * 1024 * 1024  # S3's smallest part
        data = _data(5 * 1024 * 1024 + 100, seed=7)
        ref = make_file("large.bin", data)
        st = backend.set_metadata(ref, description="big", properties={"k": "v"})
        assert (st.description, st.properties, st.size) == ("big", {"k": "v"}, len(data))
        assert backend.read_range(ref, 0, None) == data

    def test_endpoint_from_environment(self, moto_server, make_file, monkeypatch):
        from colabmodels.storage.s3 import S3Backend

        monkeypatch.setenv("AWS_ENDPOINT_URL_S3", moto_server.endpoint)
        backend = S3Backend(key="testing", secret="testing")
        assert backend.stat(make_file("env.bin", b"env")).size == 3


# -- GCS (gcp-storage-emulator) ----------------------------------------------------------------

class TestGCS(_BucketFixtures, StorageContract):
    source = "gcs"
    scheme = "gs://"

    @pytest.fixture
    def bucket_name(self, gcs_bucket):
        return gcs_bucket

    @pytest.fixture
    def backend(self, gcs_emulator):
        from colabmodels.storage.gcs import GCSBackend

        return GCSBackend(**gcs_storage_options(gcs_emulator.endpoint))

    @pytest.fixture
    def make_file(self, gcs_emulator, root_ref):
        def make(rel_path: str, data: bytes) -> Ref:
            bucket, _, prefix = root_ref.path.partition("/")
            gcs_emulator.put_object(bucket, f"{prefix}/{rel_path}", data)
            return root_ref.child(rel_path)

        return make

    def test_identity_is_the_generation(self, backend, make_file):
        st = backend.stat(make_file("g.bin", b"g"))
        assert st.version and st.identity.endswith(f":{st.version}")

    def test_emulator_host_from_environment(self, gcs_emulator, make_file, monkeypatch):
        from colabmodels.storage.gcs import GCSBackend

        monkeypatch.setenv("STORAGE_EMULATOR_HOST", gcs_emulator.endpoint.removeprefix("http://"))
        backend = GCSBackend()  # no options: endpoint from the environment, anonymous
        assert backend.storage_options["token"] == "anon"
        assert backend.stat(make_file("env.bin", b"env")).size == 3


# -- HTTP (static server) ----------------------------------------------------------------------

class TestHTTP(StorageContract):
    read_only = "HTTP is read-only"
    has_folders = False

    @pytest.fixture
    def backend(self, http_server):
        from colabmodels.storage.http import HTTPBackend

        http_server.reset()
        backend = HTTPBackend(stat_attempts=2)
        yield backend
        backend.client.close()

    @pytest.fixture
    def root_ref(self, http_server):
        url = http_server.url(uuid.uuid4().hex[:12])
        return Ref("http", path=url, raw=url)

    @pytest.fixture
    def make_file(self, http_server, root_ref):
        def make(rel_path: str, data: bytes) -> Ref:
            rel = root_ref.path[len(http_server.endpoint) + 1:]
            http_server.write(f"{rel}/{rel_path}", data)
            return root_ref.child(rel_path)

        return make

    def test_signed_url_identity_has_no_signature(self, backend, make_file):
        """Two signatures of one object: one identity, and no secret in it (issue 11)."""
        url = make_file("signed.bin", b"s" * 100).path
        first = url + "?versionId=3&X-Amz-Credential=AKIAX%2F1&X-Amz-Signature=deadbeef01"
        second = url + "?versionId=3&X-Amz-Credential=AKIAX%2F2&X-Amz-Signature=cafebabe02"
        a = backend.stat(Ref("http", path=first, raw=first))
        b = backend.stat(Ref("http", path=second, raw=second))
        assert a.identity == b.identity and "versionId=3" in a.identity
        assert "deadbeef01" not in a.identity and "AKIAX" not in a.identity
        assert a.name == "signed.bin"
        assert backend.read_range(a.ref, 0, 3) == b"sss"  # the signed URL itself still reads

    # HTTP has no folders: list() says so instead of listing.
    def test_list_folder(self, backend, root_ref, make_file):
        make_file("d/a.bin", b"a")
        with pytest.raises(RefError, match="not folders"):
            backend.list(root_ref.child("d"))

    def test_writes_are_not_supported(self, backend, make_file, tmp_path):
        ref = make_file("w.bin", b"w")
        (tmp_path / "src").write_bytes(b"x")
        with pytest.raises(NotImplementedError, match="Drive, GCS, S3"):
            backend.upload(tmp_path / "src", ref)
        with pytest.raises(NotImplementedError):
            backend.set_metadata(ref, description="d")

    def test_stat_reports_ranges_and_validators(self, backend, make_file):
        st = backend.stat(make_file("v.bin", b"v" * 10))
        assert st.properties == {"accept-ranges": "bytes"}
        assert st.identity.startswith(f"http:{st.ref.path}:")
        assert st.modified and st.mime

    def test_503_is_retryable_with_retry_after(self, backend, http_server, make_file):
        data = _data(1000, seed=8)
        ref = make_file("busy.bin", data)
        http_server.fail_next(503, retry_after=2, method="GET")
        with pytest.raises(RetryableError) as info:
            backend.open_range(ref, 0, 10)
        assert info.value.status == 503 and info.value.retry_after == 2
        assert backend.read_range(ref, 0, 10) == data[:10]  # the next try succeeds

    def test_429_retry_after_as_http_date(self, backend, http_server, make_file):
        ref = make_file("slow.bin", b"slow")
        http_server.fail_next(429, retry_after=email.utils.formatdate(time.time() + 30, usegmt=True))
        with pytest.raises(RetryableError) as info:
            backend.read_range(ref, 0, None)
        assert info.value.status == 429 and 20 < info.value.retry_after <= 30

    @pytest.mark.parametrize(("status", "reason", "expected"), [
        (403, "rateLimitExceeded", RetryableError),
        (403, "userRateLimitExceeded", RetryableError),
        (429, "rateLimitExceeded", RetryableError),
        (403, "downloadQuotaExceeded", QuotaError),
        (403, "insufficientFilePermissions", AuthError),
        (403, "fileNotDownloadable", NotDownloadableError),
        (403, "cannotDownloadAbusiveFile", NotDownloadableError),
        (401, "authError", AuthError),
        (404, "notFound", NotFoundError),
        (500, "backendError", RetryableError),
    ])
    def test_drive_style_json_errors(self, backend, http_server, make_file, status, reason,
                                     expected):
        ref = make_file("drive.bin", b"drive")
        body = {"error": {"code": status, "message": f"{reason} happened",
                          "errors": [{"domain": "usageLimits", "reason": reason,
                                      "message": f"{reason} happened"}]}}
        http_server.fail_next(status, body=body, method="GET")
        with pytest.raises(expected) as info:
            backend.read_range(ref, 2, 4)
        if expected is QuotaError:
            assert "cm.mount()" in str(info.value) and "24 hours" in str(info.value)
        if expected is RetryableError:
            assert info.value.status == status
        if expected is AuthError:
            assert isinstance(info.value, PermissionError)

    def test_server_ignoring_range(self, backend, http_server, make_file):
        data = _data(50_000, seed=9)
        ref = make_file("norange.bin", data)
        http_server.ignore_range = True
        assert backend.read_range(ref, 1000, 2000) == data[1000:2000]
        assert backend.read_range(ref, 40_000, None) == data[40_000:]
        assert backend.read_range(ref, 0, 10) == data[:10]
        gets = [r for r in http_server.requests if r.method == "GET"]
        assert [r.status for r in gets] == [200, 200, 200]
        assert gets[0].range == "bytes=1000-1999"
        assert "accept-ranges" not in backend.stat(ref).properties

    def test_dropped_connection_is_retryable(self, backend, http_server, make_file):
        data = _data(200_000, seed=10)
        ref = make_file("drop.bin", data)
        http_server.drop_next(after_bytes=50_000)
        with pytest.raises(RetryableError):
            b"".join(backend.open_range(ref, 0, None))
        assert backend.read_range(ref, 0, None) == data

    def test_stat_falls_back_to_a_one_byte_get(self, backend, http_server, make_file):
        data = _data(4321, seed=11)
        ref = make_file("nohead.bin", data)
        http_server.allow_head = False
        st = backend.stat(ref)
        assert st.size == len(data) and st.checksum == _md5(data) and st.identity
        assert http_server.requests[-1].range == "bytes=0-0"

    def test_stat_without_validators_has_no_identity(self, backend, http_server, make_file):
        ref = make_file("plain.bin", b"plain")
        http_server.send_validators = False
        http_server.send_checksums = False
        st = backend.stat(ref)
        assert st.size == 5 and st.identity is None and st.checksum is None

    def test_stat_retries_a_transient_error(self, backend, http_server, make_file):
        ref = make_file("flaky.bin", b"flaky")
        http_server.fail_next(503, retry_after=0, method="HEAD")
        assert backend.stat(ref).size == 5
        http_server.fail_next(503, retry_after=0, method="HEAD", count=5)
        with pytest.raises(TransferError):
            backend.stat(ref)

    def test_range_client_sends_caller_headers(self, http_server, make_file):
        from colabmodels.storage.http import RangeClient

        url = make_file("auth.bin", b"0123456789").path
        client = RangeClient()
        try:
            assert b"".join(client.open_range(url, 2, 5, {"Authorization": "Bearer t0k"})) == b"234"
        finally:
            client.close()
        assert http_server.requests[-1].headers.get("Authorization") == "Bearer t0k"


def test_classify_response():
    from colabmodels.storage.http import classify_response

    assert classify_response(200, {}, b"") is None
    assert isinstance(classify_response(502, {}, b"bad gateway"), RetryableError)
    assert classify_response(503, {"Retry-After": "7"}).retry_after == 7
    assert isinstance(classify_response(408, {}), RetryableError)
    assert isinstance(classify_response(400, {}, b"nope"), TransferError)
    page = b"<html><p>Too many users have viewed or downloaded this file recently.</p></html>"
    assert isinstance(classify_response(403, {}, page), QuotaError)
    assert isinstance(classify_response(403, {}, b"forbidden"), AuthError)
    signed = classify_response(403, {}, b"", url="https://h/x?X-Amz-Signature=abc&id=1")
    assert "abc" not in str(signed) and "id=1" in str(signed)


# -- the registry ------------------------------------------------------------------------------

def test_get_backend_shares_instances_per_options():
    from colabmodels.storage import get_backend
    from colabmodels.storage.local import LocalBackend

    assert isinstance(get_backend("local"), LocalBackend)
    assert get_backend("local") is get_backend("local")
    a = get_backend("s3", key="a", client_kwargs={"region_name": "x"})
    assert a is get_backend("s3", key="a", client_kwargs={"region_name": "x"})
    assert a is not get_backend("s3", key="b")
    with pytest.raises(RefError, match="known sources"):
        get_backend("ftp")


def test_import_storage_is_light():
    import subprocess
    import sys

    code = ("import sys, colabmodels.storage, colabmodels.storage.local; "
            "heavy = [m for m in ('s3fs', 'gcsfs', 'urllib3', 'botocore', 'fsspec') "
            "if m in sys.modules]; print(heavy)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


# -- Google Drive (the emulator, through PyDrive2's session) ----------------------------------

class TestDrive(StorageContract):
    has_checksum = True

    @pytest.fixture
    def backend(self, drive_env):
        import colabmodels as cm
        from colabmodels.storage.drive import DriveBackend

        return DriveBackend(cm.mount())

    @pytest.fixture
    def root_ref(self, drive_env):
        drive_env.mkdir("MyDrive/contract")
        return Ref("drive", path="MyDrive/contract", raw="MyDrive/contract")

    @pytest.fixture
    def make_file(self, drive_env, root_ref):
        def make(rel_path: str, data: bytes) -> Ref:
            drive_env.put(f"{root_ref.path}/{rel_path}", data, replace=True)  # an update
            return root_ref.child(rel_path)

        return make

    def test_id_and_path_reach_the_same_file(self, backend, make_file):
        ref = make_file("m/x.bin", b"same")
        by_path = backend.stat(ref)
        by_id = backend.stat(Ref("drive", id=by_path.ref.id))
        assert by_path.identity == by_id.identity and by_path.checksum == _md5(b'same')
