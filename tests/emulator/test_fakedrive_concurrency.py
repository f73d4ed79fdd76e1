"""The Drive emulator under concurrent clients: inserts and listings that overlap stay consistent.

Several writer threads create files and folders in two shared folders (metadata-only inserts,
multipart and resumable uploads, the same titles in both folders) while reader threads list
those folders page by page, ordered, and by title, each thread through its own
google-api-python-client service (its own HTTP connection and sign-in), as PyDrive2's workers do.
Every answer is checked against what the writers had done by the time it was asked and answered:

* a listing holds no id twice, only children of the folder it names, each with the title it was
  inserted with, and every file whose insert had completed before the listing began (paged
  listings included: inserts between pages neither hide nor repeat a file);
* a title lookup in one folder finds exactly the file made there, never its namesake next door;
* an insert's answer carries the title, parents and md5 it was sent.

Written while looking for the cause of PyDrive2's flaky ``test_concurrent_operations`` (see
tests/emulator/test_pydrive2_own_suite.py): the emulator was not it, and this keeps it so.
"""

from __future__ import annotations

import hashlib
import io
import random
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from colabmodels.testing import FakeDrive
from colabmodels.testing.fakedrive.client import drive_service, service_account_credentials

pytestmark = [pytest.mark.emulator, pytest.mark.timeout(300)]

FOLDER_MIME = "application/vnd.google-apps.folder"
WRITERS = 6
INSERTS_PER_WRITER = 24
READERS = 4


@pytest.fixture(scope="module")
def fd():
    with FakeDrive() as fd:
        yield fd


@pytest.fixture(scope="module")
def key(fd, tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("concurrency") / "key.json"
    fd.write_service_account(path)
    return path


def new_service(fd: FakeDrive, key: Path) -> Any:
    """A service with its own credentials and connection (httplib2 is not thread-safe)."""
    return drive_service(fd, service_account_credentials(key))


@dataclass
class Insert:
    id: str
    title: str
    parent: str
    sent: float
    done: float


@dataclass
class Journal:
    """What the writers did, with the monotonic times each request was sent and answered."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    inserts: list[Insert] = field(default_factory=list)
    writers_done: threading.Event = field(default_factory=threading.Event)

    def add(self, ins: Insert) -> None:
        with self.lock:
            self.inserts.append(ins)

    def done_before(self, t: float, parent: str) -> dict[str, Insert]:
        with self.lock:
            return {i.id: i for i in self.inserts if i.parent == parent and i.done < t}

    def sent_before(self, t: float) -> set[str]:
        with self.lock:
            return {i.id for i in self.inserts if i.sent < t}


def write(fd: FakeDrive, key: Path, n: int, folders: list[str], journal: Journal) -> None:
    from googleapiclient.http import MediaIoBaseUpload

    files = new_service(fd, key).files()
    rng = random.Random(n)
    for k in range(INSERTS_PER_WRITER):
        parent = folders[k % 2]
        # the same title in both folders: a lookup in one must never find the other's
        title = f"w{n}-{k // 2:02d}"
        body: dict[str, Any] = {"title": title, "parents": [{"id": parent}]}
        kind = rng.choice(("folder", "file", "multipart", "resumable"))
        data = f"{title} in {parent}".encode()
        sent = time.monotonic()
        if kind == "folder":
            res = files.insert(body={**body, "mimeType": FOLDER_MIME}).execute()
        elif kind == "file":
            res = files.insert(body=body).execute()
        else:
            media = MediaIoBaseUpload(io.BytesIO(data), "application/octet-stream",
                                      resumable=kind == "resumable")
            res = files.insert(body=body, media_body=media).execute()
            assert res["md5Checksum"] == hashlib.md5(data).hexdigest(), res
        done = time.monotonic()
        assert res["title"] == title and [p["id"] for p in res["parents"]] == [parent], res
        journal.add(Insert(res["id"], title, parent, sent, done))


def list_pages(files: Any, q: str, *, page: int, order_by: str | None = None) -> list[dict[str, Any]]:
    kwargs: dict[str, Any] = {"q": q, "maxResults": page}
    if order_by:
        kwargs["orderBy"] = order_by
    items: list[dict[str, Any]] = []
    token = None
    while True:
        resp = files.list(pageToken=token, **kwargs).execute()
        items += resp["items"]
        token = resp.get("nextPageToken")
        if not token:
            return items


def read(
    fd: FakeDrive, key: Path, n: int, folders: list[str], journal: Journal
) -> tuple[int, list[tuple[float, dict[str, str]]]]:
    """List and look up until the writers are done (and once more after).

    Returns the number of checks made and each listing's (time answered, {id: title}), to be checked
    against the writers' whole journal at the end (an insert still awaiting its answer when a
    listing shows it is in the journal only later).
    """
    files = new_service(fd, key).files()
    rng = random.Random(100 + n)
    checks = 0
    seen: list[tuple[float, dict[str, str]]] = []
    last_round = False
    while not last_round:
        last_round = journal.writers_done.is_set()
        parent = rng.choice(folders)
        how = rng.choice(("paged", "ordered", "title"))
        sent = time.monotonic()
        if how == "title":
            known = list(journal.done_before(sent, parent).values())
            if not known:
                time.sleep(0.01)
                continue
            want = rng.choice(known)
            q = f"title = '{want.title}' and '{parent}' in parents and trashed = false"
            found = [i["id"] for i in files.list(q=q, maxResults=1000).execute()["items"]]
            assert found == [want.id], (q, found, want)
        else:
            q = f"'{parent}' in parents and trashed = false"
            if how == "paged":  # seq-token pages, written to between them
                items = list_pages(files, q, page=rng.choice((5, 7, 11)))
            else:  # one ordered page: the sorted listing the emulator caches per generation
                items = list_pages(files, q, page=1000, order_by="title")
                titles = [i["title"].lower() for i in items]
                assert titles == sorted(titles), titles
            answered = time.monotonic()
            ids = [i["id"] for i in items]
            assert len(ids) == len(set(ids)), f"{how} listing repeats ids: {ids}"
            for item in items:
                assert parent in [p["id"] for p in item["parents"]], item
            missing = set(journal.done_before(sent, parent)) - set(ids)
            assert not missing, f"{how} listing lacks {len(missing)} files inserted before it began"
            seen.append((answered, {i["id"]: i["title"] for i in items}))
        checks += 1
    return checks, seen


def test_concurrent_inserts_and_listings_stay_consistent(fd, key):
    setup = new_service(fd, key).files()
    folders = [setup.insert(body={"title": f"shared-{i}", "mimeType": FOLDER_MIME}).execute()["id"]
               for i in range(2)]
    journal = Journal()
    with ThreadPoolExecutor(WRITERS + READERS) as ex:
        readers = [ex.submit(read, fd, key, n, folders, journal) for n in range(READERS)]
        writers = [ex.submit(write, fd, key, n, folders, journal) for n in range(WRITERS)]
        try:
            for w in writers:
                w.result()
        finally:
            journal.writers_done.set()
        results = [r.result() for r in readers]

    assert len(journal.inserts) == WRITERS * INSERTS_PER_WRITER
    assert all(checks >= 1 for checks, _ in results)  # at least the round after the writers
    titles = {i.id: i.title for i in journal.inserts}
    for _, listings in results:
        for answered, shown in listings:
            unknown = set(shown) - journal.sent_before(answered)
            assert not unknown, f"a listing showed ids no writer had asked for yet: {unknown}"
            # never a half-made file: each shows the title it was inserted with
            assert {fid: titles[fid] for fid in shown} == shown
    for parent in folders:
        expected = {i.id for i in journal.inserts if i.parent == parent}
        items = list_pages(setup, f"'{parent}' in parents", page=9)
        assert sorted(i["id"] for i in items) == sorted(expected)
    # the emulator answered everything itself: no 5xx, no retry hid a failure
    statuses = {r.status for r in fd.requests}
    assert statuses <= {200, 308}, statuses
