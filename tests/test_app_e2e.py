"""`python app.py` as a user (and a Space) starts it, in a process of its own, driven through
gradio_client as a script or a class's notebook would: it answers at once, the shipped models
read real pictures, bad uploads get a sentence, a training streams and stops, its download
comes back, and Explore shows the model just trained. The log holds how long the first page
took (a figure, not an assertion: no test depends on how fast the machine is)."""

import time
from pathlib import Path

import pytest
from gradio_client import Client, handle_file
from gradio_client.exceptions import AppError
from ui_helpers import EXAMPLE, REPO, digit

from tools.harness import AppProcess
from vit_demo import checkpoints

TINY = dict(dataset="mnist", patch_size=7, dim=32, depth=2, heads=4, mlp_dim=64, lr=0.003, batch_size=128, seed=0)
STATUS, METRICS = 0, 2  # where "/train" returns the status and the metrics line
EXAMPLES = sorted((REPO / "examples").glob("*/*.png"))


@pytest.fixture(scope="module")
def app(data_dir, tmp_path_factory):
    folder = tmp_path_factory.mktemp("app")
    env = {
        "VIT_DEMO_DATA": str(data_dir),
        "VIT_DEMO_TRAIN_LIMIT": "2048",
        "VIT_DEMO_TEST_LIMIT": "500",
        "VIT_DEMO_WORK_DIR": str(folder / "work"),
    }
    process = AppProcess(env, log=folder / "app.log")
    try:
        first_page = process.wait_ready(timeout=180)
        print(f"python app.py answered its first page after {first_page:.1f} s")
        yield process
    finally:
        process.stop()


@pytest.fixture
def client(app) -> Client:
    return Client(app.url, verbose=False)


def test_the_shipped_models_read_real_pictures_through_the_predict_api(client, tmp_path):
    # Every shipped example (named after its class: 7-7-00000.png is a 7), which the shipped
    # models all read right, and a 7 drawn dark on white paper, which the app must invert,
    # crop and centre as MNIST was made before the model can read it.
    drawn = tmp_path / "drawn-7.png"
    digit("L").save(drawn)
    pictures = [(path, path.parent.name, int(path.name.split("-")[0])) for path in EXAMPLES] + [(drawn, "mnist", 7)]
    for path, dataset, number in pictures:
        result = client.predict(handle_file(str(path)), dataset, api_name="/predict")
        assert result["label"] == checkpoints.default_info(dataset)["class_names"][number], (path.name, result)
        assert result["confidences"][0]["confidence"] > 0.5, (path.name, result)
    assert len(pictures) == 21
    assert sum(c["confidence"] for c in result["confidences"][:3]) <= 1.0 + 1e-6


@pytest.mark.parametrize(
    "name, content, message",
    [("notes.txt", b"not a picture at all", "is not an image"), ("half.png", None, "truncated or damaged")],
)
def test_a_bad_upload_gets_a_specific_message(client, tmp_path, name, content, message):
    path = tmp_path / name
    path.write_bytes(content if content is not None else EXAMPLE.read_bytes()[:120])
    with pytest.raises(AppError, match=message):
        client.predict(handle_file(str(path)), "mnist", api_name="/predict")


def test_a_training_streams_its_progress_and_explore_shows_the_new_model(client):
    job = client.submit(**TINY, epochs=4, api_name="/train")
    final = job.result(timeout=300)
    assert len(job.outputs()) >= 3  # streamed (an update every couple of seconds), not one answer at the end
    assert any(str(output[METRICS]).startswith("Step **") for output in job.outputs())
    assert final[STATUS].startswith("### Test accuracy")
    # The download button arrives as an update carrying the zip the browser would download.
    zip_path = next(v["value"] for v in final if isinstance(v, dict) and str(v.get("value")).endswith(".zip"))
    assert checkpoints.load(zip_path)[1]["dataset"] == "mnist"
    # The trained model lives in this client's session: Explore can pick it by name.
    label, seen, rollout, *other_views = client.predict("mine", "mean", 0.0, 2, "mean", api_name="/explore")
    assert label["label"] in {str(d) for d in range(10)}
    assert Path(seen).is_file() and Path(rollout).is_file()


def test_stop_ends_the_training_early_and_keeps_the_model(client):
    job = client.submit(**{**TINY, "dim": 64}, epochs=30, api_name="/train")
    deadline = time.monotonic() + 300
    while not any(str(output[METRICS]).startswith("Step **") for output in job.outputs()):
        assert not job.done() and time.monotonic() < deadline, "no training step reached the script"
        time.sleep(0.1)
    client.predict(api_name="/stop")
    status = job.result(timeout=120)[STATUS]
    assert "Stopped early" in status, status


def test_a_bad_knob_from_a_script_is_named_with_what_is_allowed(client):
    with pytest.raises(AppError, match="Value 40 is greater than maximum value 12"):  # the slider's own check
        client.predict(**{**TINY, "depth": 40}, epochs=1, api_name="/train")
    with pytest.raises(AppError, match="batch_size must be a whole number from 1 to 1,024, got 0"):
        client.predict(**{**TINY, "batch_size": 0}, epochs=1, api_name="/train")
    summary = client.predict(**{**TINY, "heads": 3}, epochs=1, api_name="/describe")[0]
    assert "dim 32 is not divisible by heads 3" in summary
