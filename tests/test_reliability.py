"""A class clicks everything: every bad setting gets a specific message (asserted as the person
reads it), a missing or broken dataset is named, and Stop, closed tabs, double Starts, exploring
during a training, shared runs and class runs leave the app consistent. The service is called as
the pages call it; a few checks go through gradio_client against the served app, to show the
message reaches a client too. Hostile uploads: test_hostile_uploads.py."""

import html
import io
import os
import time
from pathlib import Path

import gradio as gr
import pytest
import torch
from gradio_client import Client, handle_file
from gradio_client.exceptions import AppError
from PIL import Image
from ui_helpers import (
    EXAMPLE,
    REPO,
    TINY,
    digit,
    explore_values,
    merged,
    run_all,
    serving,
    settings_for,
    tiny_knobs,
    wait_for,
)

from vit_demo import checkpoints, data
from vit_demo.model import estimated_training_memory_bytes
from vit_demo.service.knobs import Knobs
from vit_demo.service.library import MINE
from vit_demo.service.runs import paced
from vit_demo.service.server import Service
from vit_demo.settings import AppSettings
from vit_demo.summaries import format_bytes
from vit_demo.training import config_for
from vit_demo.ui import build_demo
from vit_demo.ui.errors import as_user_error

pytestmark = pytest.mark.usefixtures("one_thread")

DIGITS = {str(d) for d in range(10)}


def shown(error: Exception) -> str:
    """An error as the person reads it: the page renders the UI's message as HTML."""
    return html.unescape(str(as_user_error(error).message).replace("<br>", "\n"))


def refused(call, *args, **kwargs) -> str:
    with pytest.raises(Exception) as raised:
        call(*args, **kwargs)
    return shown(raised.value)


def refused_run(settings: AppSettings, **changes) -> str:
    """What a page's Start shows for a run of the tiny knobs (with `changes`) on `settings`."""
    service = Service(settings)
    try:
        return refused(lambda: next(service.runs.open(tiny_knobs(**changes), "page")))
    finally:
        service.close()


# ================================================================== knobs


@pytest.mark.parametrize(
    "changes, message",
    [
        (
            dict(patch_size=5),
            "image_size 28 is not divisible by patch_size 5: choose a patch_size that divides 28: 1, 2, 4, 7, 14, 28",
        ),
        (dict(dim=64, heads=3), "dim 64 is not divisible by heads 3: choose heads from 1, 2, 4, 8, 16, 32, 64"),
        (dict(dim=0), "dim must be a whole number from 8 to 512, got 0"),
        (dict(depth=-2), "depth must be a whole number from 1 to 12, got -2"),
        (dict(mlp_dim=2.5), "mlp_dim must be a whole number from 16 to 2,048, got 2.5"),
        (dict(dim=float("inf")), "dim must be a whole number from 8 to 512, got inf"),
        (dict(depth="many"), "depth must be a whole number from 1 to 12, got 'many'"),
        (dict(dim=None), "dim must be a whole number from 8 to 512, got None"),
        (dict(batch_size=0), "batch_size must be a whole number from 1 to 1,024, got 0"),
        (dict(lr=-1), "lr must be a number from 0.0001 to 0.01, got -1"),
        (dict(epochs=0), "epochs must be a number from 0.5 to 300, got 0"),
    ],
)
def test_bad_knobs_are_refused_with_the_reason_on_start_and_in_the_summary(service, changes, message):
    values = {**tiny_knobs().values, **changes}
    assert message in refused(lambda: service.estimate(Knobs.read(values)))  # the Build tab's summary
    assert message in refused(lambda: next(service.runs.open(Knobs.read(values), "page")))  # Start


HUGE = dict(dataset="cifar10", patch_size=2, dim=512, depth=12, heads=16, mlp_dim=2048)


def test_a_model_too_big_for_the_servers_memory_says_how_big_and_what_to_lower(service):
    knobs = tiny_knobs(**HUGE)
    needed = estimated_training_memory_bytes(config_for("cifar10", knobs.shape), 128)
    assert refused(lambda: next(service.runs.open(knobs, "page"))) == (
        f"This model is too big for this server: training it with batch_size 128 needs about {format_bytes(needed)} "
        "of memory, over the 2 GB limit (VIT_DEMO_MAX_TRAIN_MEMORY_MB). To fit, raise patch_size (now 2: 256 "
        "patches; 4, 8, 16, 32 also divide 32), or lower batch_size (now 128), depth (now 12), dim (now 512), "
        "mlp_dim (now 2048)."
    )
    assert "too big for this server" in refused(lambda: service.estimate(knobs))  # nothing was built
    assert service.process.started == 0


def test_the_memory_cap_comes_from_the_environment(monkeypatch, tmp_path, tiny_checkpoints):
    monkeypatch.setenv("VIT_DEMO_MAX_TRAIN_MEMORY_MB", "100")
    assert AppSettings.from_env(tmp_path).max_train_memory_mb == 100
    small = settings_for(tmp_path, tiny_checkpoints, max_train_memory_mb=100)
    # The "finer" MNIST preset (patch 4, depth 6) needs about 231 MB.
    message = refused_run(small, patch_size=4, dim=64, depth=6, heads=4, mlp_dim=128)
    assert "needs about 231 MB of memory, over the 100 MB limit" in message
    assert "raise patch_size (now 4: 49 patches; 7, 14, 28 also divide 28)" in message


def test_a_model_too_slow_for_the_time_limit_says_how_long_and_what_to_lower(tmp_path, tiny_checkpoints):
    hurried = settings_for(tmp_path, tiny_checkpoints, max_train_seconds=1)
    message = refused_run(
        hurried, dataset="cifar10", patch_size=2, dim=64, depth=12, heads=4, mlp_dim=128, batch_size=16
    )
    assert message.startswith("This model is too slow for this server: 20 training steps with batch_size 16 ")
    assert "over the 1 s limit of one run (VIT_DEMO_MAX_TRAIN_SECONDS)" in message
    assert "raise patch_size (now 2: 256 patches" in message


# ================================================================== data


def test_a_missing_dataset_names_the_files_and_the_folder(tmp_path, tiny_checkpoints):
    empty = tmp_path / "no-data"
    message = refused_run(settings_for(tmp_path, tiny_checkpoints, data_dir=empty))
    assert message.startswith(
        f"MNIST (handwritten digits) is not in {empty} (downloads are switched off).\nMissing files:\n"
    )
    for name in (
        "train-images-idx3-ubyte",
        "train-labels-idx1-ubyte",
        "t10k-images-idx3-ubyte",
        "t10k-labels-idx1-ubyte",
    ):
        assert f"  - {empty / 'MNIST' / 'raw' / name}\n" in message
    assert f"Put them in {empty / 'MNIST'} (torchvision's layout)" in message
    assert message.endswith("`export VIT_DEMO_DATA=/path/to/data` or `--data-dir /path/to/data`.")


def test_no_network_is_reported_with_the_download_error(tmp_path, tiny_checkpoints, monkeypatch):
    monkeypatch.setenv("VIT_DEMO_DOWNLOAD", "1")

    def offline(spec, root):
        raise OSError("<urlopen error [Errno -3] Temporary failure in name resolution>")

    monkeypatch.setattr(data, "_download", offline)
    empty = tmp_path / "offline"
    message = refused_run(settings_for(tmp_path, tiny_checkpoints, data_dir=empty), dataset="fashion_mnist")
    assert "the download failed: <urlopen error [Errno -3] Temporary failure in name resolution>" in message
    assert f"  - {empty / 'FashionMNIST' / 'raw' / 'train-images-idx3-ubyte'}" in message


def test_a_half_downloaded_dataset_is_detected_not_crashed_on(tmp_path, tiny_checkpoints, data_dir):
    raw = tmp_path / "data" / "MNIST" / "raw"
    raw.mkdir(parents=True)
    for name in ("train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"):
        (raw / name).symlink_to(data_dir / "MNIST" / "raw" / name)
    (raw / "train-images-idx3-ubyte").write_bytes(
        (data_dir / "MNIST" / "raw" / "train-images-idx3-ubyte").read_bytes()[:5000]
    )
    message = refused_run(settings_for(tmp_path, tiny_checkpoints, data_dir=tmp_path / "data"))
    assert message.startswith(f"MNIST (handwritten digits) in {raw.parent} could not be read (")
    assert message.endswith(
        "A file may be half-downloaded or damaged: delete the folder's files and download them again."
    )


# ================================================================== faults during training


def follow_until_training(run) -> list[dict]:
    """Changes of `run` until the first one reporting a step past 0."""
    changes = []
    for change in run:
        changes.append(change)
        if str(change.get("metrics", "")).startswith("Step **"):
            return changes
    raise AssertionError("the run ended before it reported a step")


def test_a_script_gets_an_update_at_most_every_pace_seconds_and_the_first_step_and_the_end_at_once():
    now = [0.0]
    reports = [{"status": "Getting ready…"}, {"metrics": "Step 0"}, {"metrics": "Step **1**"}]
    reports += [{"metrics": f"Step **{n}**", "loss": n} for n in range(2, 12)] + [{"status": "### Test", "my_model": 1}]

    def run():
        for report in reports:
            yield report
            now[0] += 0.3  # a report every 0.3 s

    sent = [(now[0], update) for update in paced(run(), pace=1.0, clock=lambda: now[0])]
    times = [when for when, _ in sent]
    assert sent[1][1]["metrics"] == "Step **1**"  # the first training step at once (with what came before it)
    assert all(later - earlier >= 1.0 for earlier, later in zip(times[1:], times[2:-1]))  # then one a second
    assert sent[-1][1]["my_model"] == 1 and sent[-1][1]["loss"] == 11  # the end at once, with the newest values
    assert sum(len(update) for _, update in sent) < sum(len(r) for r in reports)  # fewer, merged updates


def test_a_script_streaming_a_run_gets_it_to_its_end_with_the_model_and_its_zip(trainer):
    streamed = list(trainer.runs.stream(tiny_knobs(epochs=8, seed=21), "a", pace=1.0))
    last = streamed[-1]
    assert last["status"].startswith("### Test accuracy") and last["download"].is_file() and last["my_model"]


def test_stop_mid_epoch_keeps_a_usable_model(trainer, explore):
    run = trainer.runs.open(tiny_knobs(epochs=30), "stopper")
    follow_until_training(run)
    trainer.runs.stop("stopper")
    last = merged(run_all(run))
    assert "Stopped early" in last["status"]
    mine = last["my_model"]
    label = explore.explore(explore_values(MINE, mine=mine))["label"]  # usable in Explore
    assert set(label) == DIGITS
    model, info = checkpoints.load(last["download"])  # and its download is a whole checkpoint
    assert info["training"]["stopped_early"] is True and model.config == mine.model.config
    assert not [p for p in trainer.settings.work_dir.rglob("*") if p.name.endswith(".partial")]
    assert (trainer.queue.running, trainer.queue.waiting) == (0, 0)


def test_a_closed_tab_ends_its_training_and_frees_the_seat_and_its_live_run(trainer):
    trainer.runs.start_live(tiny_knobs(epochs=30), "leaver")
    wait_for(lambda: trainer.queue.running == 1)
    trainer.runs.leave("leaver")  # what the page's unload event calls
    assert not trainer.runs.training("leaver")  # the page's live run is let go at once
    wait_for(lambda: (trainer.queue.running, trainer.queue.waiting) == (0, 0))  # the run stops at its next step
    # ... and so does a tab closed while waiting in line.
    someone = trainer.queue.join()
    assert trainer.queue.wait_turn(someone, 0) == 0
    queued = trainer.runs.open(tiny_knobs(), "impatient")
    assert "number 1 in line" in [next(queued) for _ in range(2)][-1]["status"]
    queued.close()
    wait_for(lambda: (trainer.queue.running, trainer.queue.waiting) == (1, 0))  # it left the line
    trainer.queue.leave(someone)


@pytest.mark.slow
def test_start_while_exploring_keeps_the_old_model_until_the_new_one_is_ready(trainer, explore):
    # The page's model is the one its run's changes last handed it (train_tab: "my_model" goes
    # into the page's state), so Explore follows those changes here as the page does.
    old = merged(run_all(trainer.runs.open(tiny_knobs(), "curious")))["my_model"]
    before = explore.explore(explore_values(MINE, mine=old))["label"]
    page_model, changes, explored = old, [], 0
    for change in trainer.runs.open(tiny_knobs(epochs=30, batch_size=16, seed=3), "curious"):  # minutes long
        changes.append(change)
        page_model = change.get("my_model", page_model)
        if str(change.get("metrics", "")).startswith("Step **") and "my_model" not in change:
            # The new run is training: the page explores the old model, unchanged.
            assert page_model is old
            assert explore.explore(explore_values(MINE, mine=page_model))["label"] == pytest.approx(before)
            explored += 1
            if explored == 2:
                trainer.runs.stop("curious")  # a stopped run's model is ready too (frames under way still come)
    assert explored >= 2
    assert [i for i, change in enumerate(changes) if "my_model" in change] == [len(changes) - 1]  # with its end only
    assert "Stopped early" in changes[-1]["status"]
    assert page_model is not old and page_model.info["training"]["seed"] == 3
    assert explore.explore(explore_values(MINE, mine=page_model))["label"] != pytest.approx(before)  # the new model


def test_pages_never_see_each_others_models(trainer, explore):
    alice = merged(run_all(trainer.runs.open(tiny_knobs(seed=5), "alice")))
    bob = merged(run_all(trainer.runs.open(tiny_knobs(seed=6), "bob")))
    assert alice["my_model"].files != bob["my_model"].files
    assert alice["download"].is_file() and bob["download"].is_file() and alice["download"] != bob["download"]
    # A page without a model of its own gets the message, not someone else's model.
    assert "have not trained a model yet" in refused(explore.predict, str(EXAMPLE), MINE, None, None)


def test_pages_that_ask_for_the_same_knobs_share_one_run_and_get_the_same_model(trainer):
    first = trainer.runs.open(tiny_knobs(epochs=8, seed=7), "carol")
    follow_until_training(first)
    # Dave asks for the same knobs while Carol's run trains: he follows it, no second run starts.
    dave = merged(run_all(trainer.runs.open(tiny_knobs(epochs=8, seed=7), "dave")))
    carol = merged(run_all(first))
    assert "Same settings as a run already on this server: sharing its result" in dave["status"]
    assert "Test accuracy" in dave["status"] and "Same settings" not in carol["status"]
    for name, tensor in carol["my_model"].model.state_dict().items():
        assert torch.equal(tensor, dave["my_model"].model.state_dict()[name]), name
    # Each keeps a copy of its own: one page's end cannot take the other's files.
    assert carol["my_model"].files != dave["my_model"].files
    assert len(trainer.runs.hub.runs()) == 1
    # Later, a third page gets the finished run at once: the whole curve and the model.
    erin = run_all(trainer.runs.open(tiny_knobs(epochs=8, seed=7), "erin"))
    assert len(erin) == 2 and erin[-1]["status"].startswith("**Same settings") and erin[-1]["loss"] is not None
    assert len(trainer.runs.hub.runs()) == 1


def test_a_shared_runs_stop_leaves_it_to_the_others_and_the_last_ones_stop_keeps_the_model(trainer):
    knobs = tiny_knobs(epochs=30, seed=8)
    frank = trainer.runs.open(knobs, "frank")
    follow_until_training(frank)
    grace = trainer.runs.open(knobs, "grace")
    next(grace), next(grace)
    trainer.runs.stop("frank")
    left = merged(run_all(frank))
    assert "You stopped watching. The run goes on for the 1 other page" in left["status"]
    assert "my_model" not in left
    trainer.runs.stop("grace")  # the last one watching: the run stops, its model is kept
    kept = merged(run_all(grace))
    assert "Stopped early" in kept["status"] and kept["my_model"].model is not None
    assert trainer.runs.hub.runs() == []  # a stopped run is never handed to anyone else


def test_a_class_run_started_by_the_teacher_shows_on_every_lesson_page_and_its_model_is_theirs(trainer):
    assert not trainer.runs.watch_class_run("student")  # nothing to show yet: the page keeps looking
    teacher = trainer.runs.open(tiny_knobs(epochs=8, seed=9), "teacher", class_lesson=True)
    follow_until_training(teacher)
    assert trainer.runs.watch_class_run("student")
    seen = {}
    wait_for(lambda: seen.update(trainer.runs.poll("student").changes) or "my_model" in seen, timeout=120)
    assert "Test accuracy" in seen["status"] and seen["my_model"].model is not None
    taught = merged(run_all(teacher))
    for name, tensor in taught["my_model"].model.state_dict().items():
        assert torch.equal(tensor, seen["my_model"].model.state_dict()[name]), name


# ================================================================== through gradio_client


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """The app served with its shipped models (checkpoints/), and no data."""
    settings = AppSettings(
        checkpoint_dir=REPO / "checkpoints",
        examples_dir=REPO / "examples",
        data_dir=str(tmp_path_factory.mktemp("no-data")),
        train_limit=512,
        test_limit=256,
        work_dir=tmp_path_factory.mktemp("work"),
    )
    with serving(settings) as address:
        assert address.startswith("http://127.0.0.1:")
        yield Client(address, verbose=False)


def test_a_client_sees_the_knob_messages_and_the_server_keeps_serving(served):
    common = dict(lr=0.003, batch_size=128, epochs=1, seed=0)
    with pytest.raises(AppError, match="too big for this server: training it with batch_size 128 needs about"):
        served.predict(**HUGE, **common, api_name="/train")
    with pytest.raises(AppError, match="image_size 28 is not divisible by patch_size 5"):
        served.predict(**{**TINY, "patch_size": 5}, dataset="mnist", **common, api_name="/train")
    # A CIFAR patch size the MNIST-first page does not list reaches the app's own checks
    # (here: no CIFAR data on this server), not Gradio's "not in the list of choices". A script
    # gets the page's image_size and channels (MNIST's) unless it names CIFAR's.
    cifar = dict(dataset="cifar10", image_size=32, channels=3, patch_size=8, dim=96, depth=4, heads=4, mlp_dim=192)
    with pytest.raises(AppError, match=r"CIFAR-10 .* is not in .*no-data"):
        served.predict(**cifar, **common, api_name="/train")
    # ... and still reads a 7 as a 7.
    assert served.predict(handle_file(str(EXAMPLE)), "mnist", api_name="/predict")["label"] == "7"


def test_pictures_in_gradios_cache_are_written_once_and_whole(service, tmp_path):
    from gradio import processing_utils

    build_demo(service)  # installs the app's cache writer
    picture = digit("RGB")
    first = processing_utils.save_pil_to_cache(picture, str(tmp_path / "cache"), format="png")
    inode, written = os.stat(first).st_ino, os.stat(first).st_mtime_ns
    time.sleep(0.02)
    with open(first, "rb") as being_served:
        # The same picture again (another student, the same example): the file a browser is
        # downloading is left alone, not truncated and rewritten under it.
        again = processing_utils.save_pil_to_cache(picture, str(tmp_path / "cache"), format="png")
        assert again == first and (os.stat(again).st_ino, os.stat(again).st_mtime_ns) == (inode, written)
        assert Image.open(io.BytesIO(being_served.read())).size == (64, 64)
    assert [p.name for p in Path(first).parent.iterdir()] == ["image.png"]  # no staging files left


def test_skipped_outputs_reach_the_page_as_gradio_would_send_them_without_its_work(service):
    import asyncio

    from gradio.blocks import Blocks
    from gradio.state_holder import SessionState

    demo = build_demo(service)
    train = next(fn for fn in demo.fns.values() if fn.api_name == "train")
    patched = Blocks.postprocess_data
    assert patched.vit_demo_skips
    skip = gr.skip()
    outputs = len(train.outputs)
    frames = [["**Training**", skip, "Step **3**", *[skip] * (outputs - 3)], ["one output", *[skip] * (outputs - 1)]]
    frames.append([skip] * outputs)
    for values in frames:
        ours = asyncio.run(patched(demo, train, list(values), SessionState(demo)))
        gradios = asyncio.run(patched.original(demo, train, list(values), SessionState(demo)))
        assert ours == gradios


def test_a_picture_shown_to_a_whole_class_is_encoded_once(service, tmp_path, monkeypatch):
    from gradio import processing_utils

    build_demo(service)
    encoded = []
    real = processing_utils.encode_pil_to_bytes
    monkeypatch.setattr(processing_utils, "encode_pil_to_bytes", lambda *a, **k: encoded.append(1) or real(*a, **k))
    shared = digit("RGB")  # one frame of a shared run, sent to thirty pages
    paths = {processing_utils.save_pil_to_cache(shared, str(tmp_path / "cache"), format="png") for _ in range(30)}
    assert len(paths) == 1 and len(encoded) == 1
    twin = digit("RGB")  # another picture that happens to look the same: encoded, and the same file
    assert processing_utils.save_pil_to_cache(twin, str(tmp_path / "cache"), format="png") in paths
    assert len(encoded) == 2
