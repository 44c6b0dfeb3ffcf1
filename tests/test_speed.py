"""A machine's speed (vit_demo/speed.py): the shipped prior, this machine's timings, the line
through them for shapes nobody timed, how long a run is said to take, and the command line's
time budget."""

import pytest

from vit_demo import speed
from vit_demo.expectations import AccuracyTable
from vit_demo.recipes import Candidate, recipe_for
from vit_demo.speed import ThroughputMeter, training_flops
from vit_demo.training import TrainConfig, config_for

SMALL, LARGE = Candidate(7, 32, 1, 2, 64), Candidate(7, 64, 2, 4, 128)
BETWEEN = {"patch_size": 7, "dim": 48, "depth": 2, "heads": 4, "mlp_dim": 96}


def test_the_line_is_the_least_squares_fit_of_seconds_per_image_on_flops():
    # Hand computation: through (1, 3) and (3, 7) the line is 1 + 2x; (2, 5) lies on it.
    assert speed._fit([(1.0, 3.0), (3.0, 7.0), (2.0, 5.0)]) == pytest.approx((1.0, 2.0))
    # A fit whose fixed part would be negative goes through the origin: b = Σxy / Σx² = (2 + 30) / (1 + 9).
    assert speed._fit([(1.0, 2.0), (3.0, 10.0)]) == pytest.approx((0.0, 3.2))
    assert speed._fit([(2.0, 4.0)]) == pytest.approx((0.0, 2.0))  # one FLOP count: FLOP/s alone
    assert speed._fit([]) is None


def test_a_shape_nobody_timed_lies_on_the_line_through_the_timed_ones():
    meter = ThroughputMeter(prior={})
    meter.record_speeds({SMALL.name: 8000.0, LARGE.name: 2000.0}, (SMALL, LARGE), "mnist")
    small, large, between = (config_for("mnist", s) for s in (SMALL.shape, LARGE.shape, BETWEEN))
    assert meter.images_per_second(small, 128) == 8000.0  # a timed shape keeps its own figure
    x_small, x_large = training_flops(small), training_flops(large)
    slope = (1 / 2000 - 1 / 8000) / (x_large - x_small)
    fixed = 1 / 8000 - slope * x_small
    assert fixed > 0  # a step's fixed cost: the smaller model is not as much faster as its FLOPs say
    assert meter.images_per_second(between, 128) == pytest.approx(1 / (fixed + slope * training_flops(between)))
    meter.record_run(between, 128, images_per_second=5000)  # a real run of it: its own figure from now on
    assert meter.images_per_second(between, 128) == 5000


def test_the_shipped_prior_stands_until_this_machine_is_timed_and_the_page_says_which():
    prior = speed.read_prior()
    assert prior["rows"] and "CPU:" in prior["machine"] and prior["command"].startswith("python benchmarks/")
    row = prior["rows"][0]
    meter = ThroughputMeter()  # the shipped prior
    config = config_for(row["dataset"], row["shape"])
    assert meter.images_per_second(config, row["batch_size"]) == row["images_per_second"]
    assert not meter.timed and "development machine" in meter.source and prior["machine"] in meter.source
    meter.record_speeds({SMALL.name: 1000.0, LARGE.name: 500.0}, (SMALL, LARGE), "mnist")
    assert meter.timed and meter.source == "timed on this machine"
    assert meter.images_per_second(config, row["batch_size"]) != row["images_per_second"]  # the prior is gone


def test_a_runs_time_is_its_images_at_this_speed_plus_its_scoring():
    meter = ThroughputMeter(prior={})
    meter.record_speeds({SMALL.name: 1000.0}, (SMALL,), "mnist")
    config = config_for("mnist", SMALL.shape)
    training = TrainConfig(dataset="mnist", epochs=2, batch_size=128)
    seconds = meter.run_seconds(config, training, train_images=6000, test_images=1000)
    scored = training.evaluations * training.eval_subset + 2 * 1000 + 1000  # evaluations, starting point, final
    assert seconds == pytest.approx(12 + scored / 3000)  # 12,000 images at 1,000/s; scoring a third of that cost


def test_timing_takes_each_candidate_in_turns_and_divides_images_by_seconds(monkeypatch):
    # A fake clock that only the steps move: a step of the 1-block model takes 10 ms, of the 2-block one 20 ms.
    now, taken = [0.0], []

    def step(model, *rest) -> None:
        depth = len(model.transformer.layers)
        taken.append(depth)
        now[0] += 0.010 * depth

    monkeypatch.setattr(speed, "_step_on", step)
    monkeypatch.setattr(speed.time, "perf_counter", lambda: now[0])
    (speeds,) = speed.measure_speeds("mnist", (SMALL, LARGE), seconds=0.2, rounds=2, device="cpu")
    turns = [depth for i, depth in enumerate(taken) if i == 0 or taken[i - 1] != depth]
    assert turns == [1, 2, 1, 2, 1, 2]  # the first steps (allocation, not timed), then two rounds in rotation
    assert taken.count(2) >= 1 + 2 * 2  # at least two steps a turn
    assert speeds == {SMALL.name: pytest.approx(128 / 0.010), LARGE.name: pytest.approx(128 / 0.020)}


def test_a_time_budget_picks_the_candidate_with_the_best_measured_accuracy_for_the_images_it_buys():
    table = AccuracyTable(
        {
            "rows": [
                {"dataset": "mnist", "candidate": SMALL.name, "images": n, "test_accuracy": a}
                for n, a in ((1000, 0.5), (100_000, 0.9))
            ]
            + [
                {"dataset": "mnist", "candidate": LARGE.name, "images": n, "test_accuracy": a}
                for n, a in ((1000, 0.4), (100_000, 0.95))
            ]
        }
    )
    meter = ThroughputMeter(prior={})
    meter.record_speeds({SMALL.name: 10_000.0, LARGE.name: 1000.0}, (SMALL, LARGE), "mnist")
    # 10 s: the small model sees 100,000 images (0.9), the large one ~10,000 (below 0.9).
    assert speed.plan("mnist", 10, (SMALL, LARGE), meter, table).candidate == SMALL
    assert speed.plan("mnist", 1000, (SMALL, LARGE), meter, table).candidate == LARGE  # both past 100,000
    assert recipe_for("mnist").candidates  # the command line plans among the recipe's candidates
