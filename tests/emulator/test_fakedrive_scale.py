"""The emulator at scale (issue 25): ``FakeDrive.put_many`` fills a big folder quickly, and
pages of a listing are served from where the last one stopped (counted, never timed)."""

from __future__ import annotations

from colabmodels.refs import parse_ref
from colabmodels.storage import backend_for


def test_put_many_and_paging_through_a_big_folder(drive_env):
    names = [f"img_{i:05d}.jpg" for i in range(2500)]
    ids = drive_env.put_many("MyDrive/big", names, b"\xff\xd8\xff\xe0tiny")
    assert len(set(ids)) == 2500
    assert drive_env.get(ids[1234]) == b"\xff\xd8\xff\xe0tiny"
    drive_env.put("MyDrive/big/other.bin", b"x")  # a normal put beside them
    mark = len(drive_env.requests)
    listed = list(backend_for(parse_ref("MyDrive/big")).list(parse_ref("MyDrive/big")))
    pages = [r for r in drive_env.requests[mark:] if r.path == "/drive/v2/files"
             and "title" not in r.query.get("q", "")]  # not the path look-up
    assert [s.name for s in listed] == [*names, "other.bin"]  # creation order, nothing twice
    assert len(pages) == 3  # 1,000 per page
    assert {s.checksum for s in listed[:2500]} == {listed[0].checksum}


def test_ordered_pages_of_a_big_folder_are_complete_and_in_order(drive_env):
    import colabmodels as cm

    names = [f"n{(i * 7919) % 3000:05d}.jpg" for i in range(3000)]  # created out of order
    folder = drive_env.mkdir("MyDrive/sorted")
    drive_env.put_many("MyDrive/sorted", names, b"\xff\xd8\xff")
    drive_env.mkdir("MyDrive/sorted/zz-folder")  # folders first
    session = cm.mount(interactive=False)
    seen, token, calls = [], None, 0
    while True:
        def page(s, t=token):
            return s.files().list(q=f"'{folder}' in parents and trashed = false",
                                  orderBy="folder,title desc", maxResults=700, pageToken=t,
                                  fields="nextPageToken,items(title)")

        answer = session.execute(page, what="listing")
        calls += 1
        seen += [item["title"] for item in answer["items"]]
        token = answer.get("nextPageToken")
        if not token:
            break
    assert seen == ["zz-folder", *sorted(names, reverse=True)]
    assert calls == 5


def _titles(session, folder, order_by):
    answer = session.execute(
        lambda s: s.files().list(q=f"'{folder}' in parents and trashed = false", orderBy=order_by,
                                 maxResults=1000, fields="items(title)"), what="listing")
    return [item["title"] for item in answer["items"]]


def test_each_order_by_form_sorts_like_its_columns(drive_env):
    import colabmodels as cm

    folder = drive_env.mkdir("MyDrive/cols")
    sizes = {"b.bin": 30, "a.bin": 10, "C.bin": 20, "d.bin": 20}
    for name, size in sizes.items():
        drive_env.put(f"MyDrive/cols/{name}", b"x" * size)
    drive_env.mkdir("MyDrive/cols/sub")
    session = cm.mount(interactive=False)
    files = sorted(sizes, key=str.lower)
    by_size = sorted(sizes, key=lambda n: (sizes[n], n.lower()))
    assert _titles(session, folder, "title") == sorted([*sizes, "sub"], key=str.lower)
    assert _titles(session, folder, "folder,title") == ["sub", *files]
    assert _titles(session, folder, "folder,quotaBytesUsed desc,title") == \
        ["sub", *sorted(sizes, key=lambda n: (-sizes[n], n.lower()))]
    assert _titles(session, folder, "folder,starred,quotaBytesUsed,title") == ["sub", *by_size]
    assert _titles(session, folder, "folder desc,title desc") == [*reversed(files), "sub"]


def test_a_sign_in_keeps_sorted_listings_and_a_change_drops_them(drive_env):
    """A sorted listing is kept for its next pages until the store changes; a token request
    changes no file (a new session used to sort a 300,000-file folder again)."""
    import colabmodels as cm
    from colabmodels.auth import refresh_credentials

    session = cm.mount(interactive=False)
    folder = drive_env.mkdir("MyDrive/kept")
    before, mark = drive_env.store.generation, len(drive_env.requests)
    refresh_credentials(session.credentials)  # a sign-in: POST /token
    assert [r.path for r in drive_env.requests[mark:]] == ["/token"]
    assert drive_env.store.generation == before
    session.execute(lambda s: s.files().insert(body={"title": "new", "parents": [{"id": folder}]}),
                    what="creating")
    assert drive_env.store.generation > before


def test_put_many_takes_a_big_store_out_of_the_collectors_sight(drive_env, monkeypatch):
    import gc

    from colabmodels.testing import fakedrive

    gc.unfreeze()
    try:
        monkeypatch.setattr(fakedrive, "FREEZE_AT_FILES", len(drive_env.store.files) + 10)
        drive_env.put_many("MyDrive/few", [f"{i}.jpg" for i in range(5)], b"x")
        assert gc.get_freeze_count() == 0  # a small store: nothing frozen
        drive_env.put_many("MyDrive/many", [f"{i}.jpg" for i in range(5)], b"x")
        assert gc.get_freeze_count() > 0
    finally:
        gc.unfreeze()
