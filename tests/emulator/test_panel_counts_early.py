"""Issue 25: the dataset panel's summary shows class counts before the listing ends (they fill
in as pages arrive), then the exact, complete summary (counted from the updates, never timed)."""

from __future__ import annotations

from colabmodels.datasets.summary import summarize


def test_counts_arrive_page_by_page_before_the_complete_summary(drive_env):
    for c in range(3):
        drive_env.put_many(f"MyDrive/many/class_{c}", [f"{i:05d}.jpg" for i in range(2100)],
                           b"\xff\xd8\xff\xe0")
    drive_env.put("MyDrive/many/class_0/notes.txt", b"not an image")
    updates = []
    done = summarize("MyDrive/many", on_update=updates.append)
    assert done.complete and done.counts == {f"class_{c}": 2100 for c in range(3)}
    assert updates[0].class_names == ["class_0", "class_1", "class_2"] and not updates[0].counts
    partial = [u for u in updates[1:-1] if not u.complete]
    assert partial, "no counts before the listing ended"
    # one comes after a single page (at most 1000 files); a later one may already hold every
    # file on a slow machine (the last page listed, the selection not made yet), never more
    totals = [sum(u.counts.values()) for u in partial]
    assert 0 < min(totals) <= 1000 and max(totals) <= 6300
    assert all(u.counts[name] <= 2100 for u in partial for name in u.counts)
    assert updates[-1] is done


def test_the_chart_shows_counts_so_far_while_listing():
    from colabmodels.datasets.summary import DatasetSummary
    from colabmodels.widgets.dataset_panel import chart_html

    partial = DatasetSummary(ref="r", path="r", class_names=["a", "b"], counts={"a": 1000, "b": 0})
    chart = chart_html(partial)
    assert "cm-bar-count'>1000…<" in chart and "cm-bar-count'>…<" in chart
    assert "data-count=''" in chart  # the exact count comes with the complete summary
