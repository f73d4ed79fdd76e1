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
