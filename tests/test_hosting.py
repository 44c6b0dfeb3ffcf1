"""ZeroGPU's contract, checked on the CPU: the training function is decorated at import time,
the decorator changes nothing outside a ZeroGPU Space, the function runs in another process
with only pickled values crossing over, a stop file reaches it there, and the main process
never asks for CUDA (spaces makes `torch.cuda.is_available()` lie there)."""

import multiprocessing
import pickle

import pytest
import torch
from conftest import TINY

from vit_demo.data import load_split
from vit_demo.sessions import StopFlag, run_training
from vit_demo.training import TrainConfig, create_model
from vit_demo.ui import hosting

spaces = pytest.importorskip("spaces", reason="the spaces package is not installed (pip install spaces)")


def test_outside_a_zero_gpu_space_the_decorator_changes_nothing(monkeypatch):
    monkeypatch.delenv(hosting.ZERO_GPU_ENV, raising=False)
    assert not hosting.on_zero_gpu()
    assert hosting.train_on_gpu is run_training  # decorated at import, and returned unchanged
    assert spaces.GPU(duration=hosting.gpu_lease_seconds)(run_training) is run_training


def test_a_lease_covers_the_capped_run_and_its_setup():
    config = TrainConfig(dataset="mnist", time_budget=600)
    lease = hosting.gpu_lease_seconds(TINY, config, None, stop=None, max_seconds=600, timeline_capacity=40)
    assert lease == hosting.ZERO_GPU_TRAIN_SECONDS + hosting.ZERO_GPU_SETUP_SECONDS
    assert hosting.gpu_lease_seconds(TINY, config, None, max_seconds=30) == 30 + hosting.ZERO_GPU_SETUP_SECONDS


def _lent_gpu_worker(arguments: bytes, results) -> None:
    """What ZeroGPU's worker does with a decorated generator: unpickle the arguments, run the
    function, pickle each value it yields back."""
    args, kwargs = pickle.loads(arguments)
    for value in hosting.train_on_gpu(*args, **kwargs):
        results.put(pickle.dumps(value))
    results.put(None)


def test_the_training_function_runs_in_a_spawned_process_on_pickled_values_and_stops_there(data_dir, tmp_path):
    context = multiprocessing.get_context("spawn")  # stricter than ZeroGPU's fork: nothing is inherited
    results = context.Queue()
    probes = load_split("mnist", train=False, data_dir=str(data_dir), limit=4).images
    config = TrainConfig(dataset="mnist", time_budget=60, train_limit=1024, test_limit=256, data_dir=str(data_dir))
    stop = StopFlag(tmp_path / "stop")
    arguments = pickle.dumps(((TINY, config, probes), {"stop": stop, "max_seconds": 60, "timeline_capacity": 8}))
    worker = context.Process(target=_lent_gpu_worker, args=(arguments, results))
    worker.start()
    try:
        first = pickle.loads(results.get(timeout=120))
        assert first.progress is None and first.start is not None
        while (update := pickle.loads(results.get(timeout=60))).progress is None or update.progress.step < 5:
            pass
        stop.request()
        updates = []
        while (raw := results.get(timeout=30)) is not None:
            updates.append(pickle.loads(raw))
    finally:
        worker.join(30)
    # The flag is checked before every step: at most a report already under way, then the final
    # one (missed, the run would report every 0.4 s for a minute).
    last = updates[-1]
    assert last.progress.stopped and len(updates) <= 2
    model = create_model("mnist", **TINY)
    model.load_state_dict(last.state_dict)  # the weights come back
    assert all(t.device.type == "cpu" for t in last.state_dict.values())
    assert worker.exitcode == 0


def test_on_a_zero_gpu_space_the_app_caps_runs_and_never_asks_for_cuda(monkeypatch, tmp_path, tiny_checkpoints):
    from ui_helpers import settings_for

    from vit_demo.ui import App, AppSettings

    monkeypatch.setenv(hosting.ZERO_GPU_ENV, "true")
    monkeypatch.setenv("VIT_DEMO_MAX_TRAIN_SECONDS", "600")
    settings = AppSettings.from_env(tmp_path)
    assert settings.zero_gpu and settings.max_train_seconds == hosting.ZERO_GPU_TRAIN_SECONDS

    def no_cuda_here():
        raise AssertionError("the main process asked for CUDA")

    monkeypatch.setattr(torch.cuda, "is_available", no_cuda_here)
    app = App(settings_for(tmp_path, tiny_checkpoints, zero_gpu=True, max_train_seconds=settings.max_train_seconds))
    assert app.processes is None and app.train._run is hosting.run_on_gpu
    app.start_measuring()  # nothing to time: that would spend GPU quota
    assert app.measured.is_set()
    summary = app.build.describe("mnist", 7, 32, 2, 4, 64, 0.003, 128, "time", 120, 1)[0]
    assert "ZeroGPU lends for one run at a time, for at most 2.0 min" in summary
    # Explore predicts on the CPU.
    from ui_helpers import EXAMPLE

    label = app.explore.predict(str(EXAMPLE), "mnist", None, None)
    assert len(label) == 10
