"""Nothing a page leaves behind outlives it: its files go a grace period after it leaves, any
page's files go once too old, and the app's folder stays under its bound, oldest first."""

import os

from ui_helpers import merged, run_all, tiny_knobs

from vit_demo.service.workfolder import WorkFolder, folder_bytes


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


def page_files(work: WorkFolder, page: str, size: int = 1000) -> None:
    (work.fresh("sessions", page) / "run.zip").write_bytes(b"x" * size)
    (work.fresh("timelines", page) / "timeline.gif").write_bytes(b"x" * size)
    work.page_path("stop", page).parent.mkdir(exist_ok=True)
    work.page_path("stop", page).write_text("")


def test_a_page_that_left_loses_its_files_after_the_grace_period_unless_it_trains(tmp_path):
    clock = Clock()
    work = WorkFolder(tmp_path, max_bytes=10**9, grace=120, clock=clock)
    for page in ("gone", "stays", "training"):
        page_files(work, page)
    work.left("gone")
    work.left("training")
    clock.now += 60
    assert work.sweep() == []  # within the grace: a download may still be under way
    clock.now += 61
    assert work.sweep(busy={"training"}) == ["gone"]
    assert not any(work.page_path(kind, "gone").exists() for kind in ("sessions", "timelines", "stop"))
    assert work.page_path("sessions", "stays").exists() and work.page_path("sessions", "training").exists()


def test_files_a_run_writes_after_its_page_left_go_too(tmp_path):
    """Found by benchmarks/soak.py: a tab closed mid-run, its run wound down and wrote its download
    afterwards, and the page's files stayed for a day."""
    clock = Clock()
    work = WorkFolder(tmp_path, max_bytes=10**9, grace=120, clock=clock)
    work.left("closed")
    page_files(work, "closed")  # the run's last writes, after the unload
    clock.now += 121
    assert work.sweep() == ["closed"] and not work.page_path("sessions", "closed").exists()


def test_files_too_old_go_and_the_folder_stays_under_its_bound_oldest_first(tmp_path):
    clock = Clock()
    work = WorkFolder(tmp_path, max_bytes=5000, max_age=3600, clock=clock)
    for age, page in ((7200, "ancient"), (300, "old"), (200, "older-ish"), (100, "new")):
        page_files(work, page)
        for path in (tmp_path / kind / page for kind in ("sessions", "timelines", "stop")):
            os.utime(path, (clock.now - age, clock.now - age))
    gone = work.sweep()
    assert gone[0] == "ancient" and "old" in gone  # too old, then the oldest until under the bound
    assert folder_bytes(tmp_path) <= 5000 and work.page_path("sessions", "new").exists()


def test_a_closed_tabs_run_its_live_state_and_later_its_files_are_freed(trainer):
    trainer.runs.work.grace = 0  # the sweep comes after the grace period
    shown = merged(run_all(trainer.runs.open(tiny_knobs(), "tab")))
    assert shown["download"].is_file()
    trainer.runs.start_live(tiny_knobs(epochs=30, seed=1), "tab")
    trainer.runs.leave("tab")  # the unload event
    assert not trainer.runs.training("tab") and "tab" not in trainer.runs._live
    assert trainer.runs.sweep() == ["tab"] and not shown["download"].exists()
