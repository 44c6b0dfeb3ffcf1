"""Run planning: how this machine's measured speeds become the plan of a run."""

import time

import pytest

from vit_demo import planning
from vit_demo.model import ViTConfig
from vit_demo.planning import ThroughputMeter
from vit_demo.recipes import Candidate

SMALL, LARGE = Candidate(7, 32, 1, 2, 64), Candidate(7, 64, 2, 4, 128)


def test_a_start_up_line_is_the_least_squares_fit_of_seconds_per_image_on_flops():
    # Hand computation: through (1, 3) and (3, 7) the line is 1 + 2x; (2, 5) lies on it.
    assert planning._fit([(1.0, 3.0), (3.0, 7.0), (2.0, 5.0)]) == pytest.approx((1.0, 2.0))
    # A fit whose fixed part would be negative goes through the origin: b = Σxy / Σx² = (2 + 30) / (1 + 9).
    assert planning._fit([(1.0, 2.0), (3.0, 10.0)]) == pytest.approx((0.0, 3.2))
    assert planning._fit([(2.0, 4.0)]) == pytest.approx((0.0, 2.0))  # one FLOP count: FLOP/s alone
    assert planning._fit([]) is None


def test_an_unmeasured_shape_is_planned_on_the_start_up_line_and_a_later_run_does_not_move_it():
    meter = ThroughputMeter()
    meter.record_speeds({SMALL.name: 8000.0, LARGE.name: 2000.0}, (SMALL, LARGE), "mnist")
    small, large = (planning._config("mnist", c) for c in (SMALL, LARGE))
    assert meter.planning_speed(small, SMALL.batch_size) == 8000.0  # a measured shape keeps its own figure
    x_small, x_large = planning._training_flops(small), planning._training_flops(large)
    slope = (1 / 2000 - 1 / 8000) / (x_large - x_small)
    fixed = 1 / 8000 - slope * x_small
    assert fixed > 0  # a step's fixed cost: the smaller model is not as much faster as its FLOPs say
    between = ViTConfig(image_size=28, patch_size=7, num_classes=10, dim=48, depth=2, heads=4, mlp_dim=96, channels=1)
    expected = 1 / (fixed + slope * planning._training_flops(between))
    assert meter.planning_speed(between, 128) == pytest.approx(expected)
    meter.record_run(between, 128, images_per_second=expected * 3)
    assert meter.planning_speed(between, 128) == pytest.approx(expected)  # plans stay the same for everyone
    assert meter.images_per_second(between, 128) == pytest.approx(expected * 3)  # time estimates use the run


def test_plans_follow_the_mean_of_the_readings_until_a_run_settles_them():
    meter = ThroughputMeter()
    meter.record_speeds({SMALL.name: 8000.0, LARGE.name: 2000.0}, (SMALL, LARGE), "mnist")
    meter.record_speeds({SMALL.name: 6000.0}, (SMALL,), "mnist")  # timed again while idle
    small, large = (planning._config("mnist", c) for c in (SMALL, LARGE))
    assert (meter.readings("mnist", SMALL), meter.readings("mnist", LARGE)) == (2, 1)
    assert meter.planning_speed(small, 128) == 7000.0
    # An untimed shape lies on the line through the shapes' means: 1/7000 and 1/2000 s per image.
    between = ViTConfig(image_size=28, patch_size=7, num_classes=10, dim=48, depth=2, heads=4, mlp_dim=96, channels=1)
    x_small, x_large, x = (planning._training_flops(c) for c in (small, large, between))
    on_line = 1 / (1 / 7000 + (1 / 2000 - 1 / 7000) * (x - x_small) / (x_large - x_small))
    assert meter.planning_speed(between, 128) == pytest.approx(on_line)

    # A run of each is planned: from now on, those two shapes keep those speeds.
    assert meter.settle_planning_speed(small, 128) == 7000.0
    assert meter.settle_planning_speed(between, 128) == pytest.approx(on_line)
    meter.record_speeds({SMALL.name: 1000.0, LARGE.name: 1000.0}, (SMALL, LARGE), "mnist")
    assert meter.planning_speed(small, 128) == 7000.0
    assert meter.planning_speed(between, 128) == pytest.approx(on_line)  # though the line moved
    assert meter.planning_speed(large, 128) == 1500.0  # no run of it yet: the mean of its two readings


def test_time_estimates_follow_the_measured_speed():
    meter = ThroughputMeter()
    config = ViTConfig(image_size=28, patch_size=7, num_classes=10, dim=64, depth=4, heads=4, mlp_dim=128, channels=1)
    meter.record_run(config, 128, images_per_second=1000)
    assert meter.seconds_per_epoch(config, 128, 60_000) == pytest.approx(60)
    assert meter.source == "measured in the last training run"


def test_start_up_speeds_are_images_over_the_time_of_steps_taken_in_turns(monkeypatch):
    # A step of the small model takes 10 ms and of the large one 20 ms (a sleep each): the
    # figures are batch / step time, each candidate timed in turns with the other.
    taken = []

    def step(model, *rest) -> None:
        depth = len(model.transformer.layers)
        taken.append(depth)
        time.sleep(0.010 * depth)

    monkeypatch.setattr(planning, "_step_on", step)
    (speeds,) = planning.measure_speeds("mnist", (SMALL, LARGE), seconds=0.2, rounds=2, device="cpu")
    assert speeds[SMALL.name] == pytest.approx(SMALL.batch_size / 0.010, rel=0.25)
    assert speeds[LARGE.name] == pytest.approx(LARGE.batch_size / 0.020, rel=0.25)
    turns = [depth for i, depth in enumerate(taken) if i == 0 or taken[i - 1] != depth]
    assert turns == [1, 2, 1, 2, 1, 2]  # the first steps (allocation, not timed), then two rounds
    assert taken.count(2) >= 1 + 2 * 2  # at least two steps a turn
