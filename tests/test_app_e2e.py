"""The app served in-process on a free port and driven through gradio_client, as a
script or a class's notebook would: the predict API on a real picture, bad uploads, a
short training with live progress, Stop, and exploring the model just trained."""

import time
from pathlib import Path

import pytest
from gradio_client import Client, handle_file
from gradio_client.exceptions import AppError
from ui_helpers import EXAMPLE, serving, settings_for

from vit_demo import checkpoints
from vit_demo.ui.train_tab import TRAIN_OUTPUTS

TINY_MODEL = dict(dataset="mnist", patch_size=7, dim=32, depth=2, heads=4, mlp_dim=64, lr=0.003, batch_size=128, seed=0)


@pytest.fixture(scope="module")
def url(data_dir, tiny_checkpoints, tmp_path_factory):
    with serving(settings_for(tmp_path_factory.mktemp("app"), tiny_checkpoints, data_dir)) as address:
        yield address


@pytest.fixture
def client(url) -> Client:
    return Client(url, verbose=False)


def test_predict_names_the_classes_of_a_real_picture(client):
    result = client.predict(handle_file(str(EXAMPLE)), "mnist", api_name="/predict")
    assert result["label"] in {str(d) for d in range(10)}
    assert len(result["confidences"]) == 10
    assert sum(c["confidence"] for c in result["confidences"]) == pytest.approx(1.0, abs=1e-3)


@pytest.mark.parametrize(
    "name, content, message",
    [("notes.txt", b"not a picture at all", "is not an image"), ("half.png", None, "truncated or damaged")],
)
def test_a_bad_upload_gets_a_specific_message(client, tmp_path, name, content, message):
    path = tmp_path / name
    path.write_bytes(content if content is not None else EXAMPLE.read_bytes()[:120])
    with pytest.raises(AppError, match=message):
        client.predict(handle_file(str(path)), "mnist", api_name="/predict")


def test_train_streams_progress_then_explore_shows_the_new_model(client):
    job = client.submit(**TINY_MODEL, length="time", seconds=5, epochs=1, api_name="/train")
    progress = []
    while not job.done():
        update = job.status()
        if update.progress_data:
            progress += [unit.desc for unit in update.progress_data]
        time.sleep(0.1)
    outputs = job.outputs()
    assert len(outputs) >= 3  # streamed (an update every POLL_SECONDS, as a page polls), not one answer at the end
    assert any(desc and desc.startswith("Training: step") for desc in progress)
    status, *_ = final = outputs[-1]
    assert "Test accuracy" in status
    # The download button arrives as an update carrying the zip the browser would download.
    zip_path = next(v["value"] for v in final if isinstance(v, dict) and str(v.get("value")).endswith(".zip"))
    assert checkpoints.load(zip_path)[1]["dataset"] == "mnist"

    # The trained model lives in this client's session: Explore can pick it by name.
    label, seen, rollout, *other_views = client.predict("mine", "mean", 0.0, 2, "mean", api_name="/explore")
    assert label["label"] in {str(d) for d in range(10)}
    assert Path(seen).is_file() and Path(rollout).is_file()


def test_stop_ends_the_training_early(client):
    job = client.submit(**TINY_MODEL, length="time", seconds=60, epochs=1, api_name="/train")
    metrics = TRAIN_OUTPUTS.index("metrics")
    while not any("Step" in str(output[metrics]) for output in job.outputs()):
        assert not job.done(), job.result()
        time.sleep(0.1)
    client.predict(api_name="/stop")
    status = job.result(timeout=60)[0]
    assert "Stopped early" in status
