import pytest
import torch
from conftest import TINY
from PIL import Image

from vit_demo.data import DATASETS, load_split, normalize
from vit_demo.timeline import Timeline, save_gif, take_snapshot
from vit_demo.training import TrainConfig, create_model, train


def snapshot_at(model, fraction, step=0):
    return take_snapshot(
        model, torch.zeros(1, 1, 28, 28), step=step, epoch=fraction, fraction=fraction, test_accuracy=None
    )


def test_a_snapshot_is_small_and_shaped_like_the_model():
    model = create_model("mnist", **TINY).train()
    snapshot = snapshot_at(model, 0.5)
    assert model.training  # the mode it was in is restored
    assert snapshot.position_similarity.shape == (4, 4, 4, 4)
    assert snapshot.attention_distance.shape == (2, 2)
    assert snapshot.filters.shape == (8, 1, 7, 7)
    assert snapshot.probe_rollout.shape == (4, 4)
    assert snapshot.probe_probabilities.sum().item() == pytest.approx(1, abs=1e-5)
    assert snapshot.nbytes < 8_000


def test_the_timeline_stays_bounded_and_keeps_first_and_newest():
    model = create_model("mnist", **TINY).eval()
    timeline = Timeline(capacity=6, every=0.01)
    for i in range(50):
        timeline.add(snapshot_at(model, i / 49, step=i))
        assert len(timeline) <= 6
    steps = [s.step for s in timeline.snapshots]
    assert steps[0] == 0 and steps[-1] == 49
    assert steps == sorted(steps)
    assert timeline.nbytes <= 6 * timeline[0].nbytes


def test_snapshots_are_taken_at_regular_points_of_a_real_run(data_dir):
    spec = DATASETS["mnist"]
    probe = normalize(load_split("mnist", train=False, data_dir=data_dir, limit=1).images, spec)
    model = create_model("mnist", seed=0, **TINY)
    timeline = Timeline(capacity=40, every=0.1)
    config = TrainConfig(
        dataset="mnist", epochs=1, train_limit=4000, test_limit=200, report_every=0.0, data_dir=str(data_dir)
    )
    for progress in train(model, config):
        timeline.record(model, probe, progress)
    fractions = [s.fraction for s in timeline.snapshots]
    assert 8 <= len(timeline) <= 12 and fractions[-1] == 1.0
    assert all(b - a >= 0.1 - 1e-9 for a, b in zip(fractions[:-2], fractions[1:-1]))
    # The embedding moved away from its random start.
    first, last = timeline[0].position_similarity, timeline[-1].position_similarity
    assert (first - last).abs().max() > 0.05


def test_the_gif_has_one_frame_per_snapshot(tmp_path):
    frames = [Image.new("RGB", (60, 40), (i * 40, 0, 0)) for i in range(4)]
    path = save_gif(frames, tmp_path / "timeline.gif")
    with Image.open(path) as gif:
        assert gif.n_frames == 4 and gif.info.get("loop") == 0
    with pytest.raises(ValueError, match="no frames to save"):
        save_gif([], tmp_path / "empty.gif")


def test_a_timeline_frame_renders_with_the_step_in_its_title():
    from vit_demo.plots import figure_to_image
    from vit_demo.training_plots import plot_timeline_frame

    model = create_model("mnist", **TINY).eval()
    snapshot = take_snapshot(model, torch.zeros(1, 1, 28, 28), step=120, epoch=0.5, fraction=0.5, test_accuracy=0.91)
    figure = plot_timeline_frame(snapshot, torch.zeros(28, 28, dtype=torch.uint8).numpy(), model.config)
    assert figure.texts[0].get_text() == "Step 120 · epoch 0.50 · test accuracy 91.0%"
    assert figure_to_image(figure).size[0] >= 1000
