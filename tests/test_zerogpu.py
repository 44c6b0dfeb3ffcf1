"""The app as a ZeroGPU Space runs it: `python app.py` with the real `spaces` package in ZeroGPU
mode (tests/zerogpu_app.py) against a stand-in of the ZeroGPU scheduler on loopback
(tests/zerogpu_standin.py), driven as visitors drive it (gradio_client, with and without the
`X-IP-Token` header a Space's proxy adds).

Asserted: the visitor's token reaches the scheduler with a lease sized to the run; the run
trains in a worker forked from the server and streams back through spaces' own pickling; a
Stop crosses into the worker; a quota refusal reaches the page as a sentence and the run
trains on the Space's CPU instead; the server never starts CUDA. Without CUDA here, spaces'
two CUDA calls in the worker are the only parts replaced (tests/zerogpu_app.py); on a machine
with a GPU, none is.
"""

import base64
import json
import os
import time

import pytest
import torch
from gradio_client import Client
from zerogpu_standin import Scheduler

from tools.harness import REPO, AppProcess
from vit_demo import checkpoints
from vit_demo.service.jobs import TrainingJob
from vit_demo.service.knobs import Knobs
from vit_demo.service.zerogpu import GpuLease
from vit_demo.settings import ZERO_GPU_ENV

pytest.importorskip("spaces", reason="the spaces package is not installed (pip install spaces)")
pytestmark = pytest.mark.slow


def token(user: str) -> str:
    """An X-IP-Token as a Space's proxy sends it: a JWT whose payload names the visitor."""
    payload = base64.urlsafe_b64encode(json.dumps({"user": user}).encode()).decode().rstrip("=")
    return f"eyJhbGciOiJub25lIn0.{payload}.signature"


STUDENT, SPENT = token("student"), token("spent-student")
TINY = dict(dataset="mnist", patch_size=7, dim=32, depth=2, heads=4, mlp_dim=64, lr=0.003, batch_size=128, seed=0)


def gpu_uuid() -> str | None:
    """The real GPU's UUID where there is one (the scheduler lends it), else None."""
    if not torch.cuda.is_available():
        return None
    import subprocess

    listing = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True, check=True).stdout
    return listing.split("UUID: ")[1].split(")")[0]


@pytest.fixture(scope="module")
def space(tmp_path_factory, data_dir):
    folder = tmp_path_factory.mktemp("space")
    scheduler = Scheduler(nvidia_uuid=gpu_uuid() or "GPU-standin", refused=(SPENT,), left=5)
    (folder / "cgroup").write_text("0::/space\n")
    env = {
        ZERO_GPU_ENV: "true",
        "SPACES_ZERO_DEVICE_API_URL": scheduler.url,
        "ZEROGPU_PROC_SELF_CGROUP_PATH": str(folder / "cgroup"),
        "ZEROGPU_OFFLOAD_DIR": str(folder / "offload"),
        "HOME": str(folder),  # spaces keeps its worker clean-ups under ~/.zerogpu
        "VIT_DEMO_DATA": str(data_dir),
        "VIT_DEMO_TRAIN_LIMIT": "2048",
        "VIT_DEMO_TEST_LIMIT": "500",
        "VIT_DEMO_WORK_DIR": str(folder / "work"),
        "VIT_DEMO_CUDA_INIT_LOG": str(folder / "cuda-init.log"),
    }
    app = AppProcess(env, log=folder / "app.log", app=REPO / "tests" / "zerogpu_app.py")
    try:
        app.wait_ready(timeout=180)
        yield app, scheduler, folder
    finally:
        app.stop()
        scheduler.close()


def train(client: Client, **changes):
    return client.submit(**{**TINY, "epochs": 2, **changes}, api_name="/train")


def test_a_visitors_run_is_leased_on_their_token_and_streams_back_from_a_forked_worker(space):
    app, scheduler, _ = space
    client = Client(app.url, verbose=False, headers={"X-IP-Token": STUDENT})
    job = train(client)
    final = job.result(timeout=300)
    streamed = job.outputs()
    assert len(streamed) >= 3  # the worker's reports came back one by one, not one answer at the end
    status = final[0]
    assert status.startswith("### Test accuracy") and "No GPU" not in status, status
    zips = [v["value"] for v in final if isinstance(v, dict) and str(v.get("value", "")).endswith(".zip")]
    assert checkpoints.load(zips[0])[1]["dataset"] == "mnist"  # the model made it back from the worker
    (schedule,) = [call for call in scheduler.called("/schedule") if call.get("token") == STUDENT]
    knobs = Knobs.read(dict(TINY, epochs=2))
    job = TrainingJob(knobs.shape, knobs.train_config(train_limit=2048, test_limit=500), None, max_seconds=600)
    assert int(schedule["durationSeconds"]) == GpuLease().seconds(job)  # the run's own lease, not a fixed cap
    (lease,) = [allow for allow, visitor in scheduler.grants.items() if visitor == STUDENT]
    (allowed,) = [call for call in scheduler.called("/allow") if call["allowToken"] == lease]
    assert int(allowed["pid"]) not in (app.pid, os.getpid())  # the GPU went to a worker forked from the server
    assert [call["fail"] for call in scheduler.called("/release") if call["allowToken"] == lease] == ["false"]


def test_stop_crosses_into_the_worker(space):
    app, _, _ = space
    client = Client(app.url, verbose=False, headers={"X-IP-Token": STUDENT})
    job = train(client, epochs=30, dim=64)
    deadline = time.monotonic() + 300
    while not any(str(output[2]).startswith("Step **") for output in job.outputs()):
        assert not job.done() and time.monotonic() < deadline, "no training step reached the page"
        time.sleep(0.1)
    stopped = time.monotonic()
    client.predict(api_name="/stop")
    status = job.result(timeout=120)[0]
    took = time.monotonic() - stopped
    print(f"stop reached the page's stream {took:.2f} s after it was pressed")
    assert "Stopped early" in status, status


def test_a_visitor_without_quota_gets_a_sentence_and_a_model_trained_on_the_spaces_cpu(space):
    app, scheduler, _ = space
    client = Client(app.url, verbose=False, headers={"X-IP-Token": SPENT})
    final = train(client, seed=3).result(timeout=300)  # settings nobody else trained: no run to share
    status = final[0]
    assert "No GPU for this run, so it trains on this Space's CPU" in status, status
    assert "You have exceeded your free ZeroGPU quota" in status  # ZeroGPU's own reason, passed on
    assert "Signing in to Hugging Face gives more GPU time" in status and status.startswith("### Test accuracy")
    assert [call.get("token") for call in scheduler.called("/schedule")].count(SPENT) == 1
    assert SPENT not in scheduler.grants.values()  # refused: no worker was given a GPU for it


def test_an_anonymous_visitor_is_scheduled_without_a_token(space):
    app, scheduler, _ = space
    before = len(scheduler.called("/schedule"))
    final = train(Client(app.url, verbose=False), seed=1).result(timeout=300)
    assert final[0].startswith("### Test accuracy")
    assert [call.get("token") for call in scheduler.called("/schedule")[before:]] == [None]


def test_the_server_never_starts_cuda_and_reports_itself_to_the_scheduler(space):
    app, scheduler, folder = space
    assert scheduler.called("/startup-report")  # spaces saw a decorated function at launch
    assert not (folder / "cuda-init.log").exists(), (folder / "cuda-init.log").read_text()
    log = (folder / "app.log").read_text()
    assert "Low-level CUDA init" not in log and "Traceback" not in log, log[-3000:]
