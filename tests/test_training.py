import contextlib
import math
import threading

import pytest
import torch
from conftest import TINY, needs_cxx

from vit_demo import training
from vit_demo.data import DATASETS, Split
from vit_demo.machine import available_cores
from vit_demo.step import (
    BatchSplitter,
    TrainingForward,
    forward_backward,
    training_on_this_thread,
    trainings_side_by_side,
)
from vit_demo.training import (
    TrainConfig,
    check_model_fits_dataset,
    create_model,
    evaluate,
    evaluation_slice,
    learning_rate,
    run_to_completion,
    train,
)


def test_learning_rate_warms_up_then_decays_to_zero_at_the_end():
    config = TrainConfig(lr=2e-3, warmup=0.1)
    assert learning_rate(0.0, config) == 0.0
    assert learning_rate(0.05, config) == pytest.approx(1e-3)
    assert learning_rate(0.1, config) == pytest.approx(2e-3)
    # Halfway through the decay the cosine is at its midpoint.
    assert learning_rate(0.55, config) == pytest.approx(1e-3)
    assert learning_rate(1.0, config) == pytest.approx(0.0, abs=1e-12)
    assert learning_rate(1.7, config) == pytest.approx(0.0, abs=1e-12)


@pytest.mark.parametrize(
    "settings, message",
    [
        ({"epochs": 1, "time_budget": 10}, "give one of epochs, time_budget or steps, not epochs and time_budget"),
        ({"epochs": 0}, "epochs must be positive"),
        ({"time_budget": -5}, "time_budget must be a positive number of seconds"),
        ({"batch_size": 0}, "batch_size must be a whole number of at least 1"),
        ({"lr": 5.0}, "learning rate must be between 0 and 1"),
        ({"dataset": "svhn"}, "unknown dataset 'svhn'"),
        ({"augment_shift": 14}, r"augment_shift must be 0 to 13 pixels \(2 is typical\), got 14"),
    ],
)
def test_invalid_training_settings_are_explained(settings, message):
    with pytest.raises(ValueError, match=message):
        TrainConfig(**settings)


def test_a_model_for_another_dataset_is_refused_with_the_reason():
    model = create_model("cifar10", **{**TINY, "patch_size": 8})
    with pytest.raises(ValueError, match=r"does not fit MNIST .*channels=3 but its images have 1.*image_size=32"):
        check_model_fits_dataset(model, DATASETS["mnist"])


def test_evaluate_counts_a_hand_made_confusion_matrix():
    class Constant(torch.nn.Module):
        """Always predicts class 1."""

        def forward(self, images):
            return torch.tensor([[0.0, 1.0] + [0.0] * 8]).repeat(len(images), 1)

    model = Constant()
    model.register_parameter("anchor", torch.nn.Parameter(torch.zeros(1)))
    split = Split(torch.zeros(4, 1, 28, 28, dtype=torch.uint8), torch.tensor([1, 1, 0, 3]))
    loss, accuracy, confusion = evaluate(model, split, DATASETS["mnist"], with_confusion=True)
    assert accuracy == 0.5
    assert confusion[1, 1] == 2 and confusion[0, 1] == 1 and confusion[3, 1] == 1 and confusion.sum() == 4
    expected_loss = -torch.log_softmax(torch.tensor([0.0, 1.0] + [0.0] * 8), 0)
    assert loss == pytest.approx((2 * expected_loss[1] + expected_loss[0] + expected_loss[3]).item() / 4, rel=1e-5)


def test_a_short_real_run_on_mnist_learns(data_dir):
    model = create_model("mnist", seed=0, **TINY)
    config = TrainConfig(
        dataset="mnist",
        epochs=3,
        batch_size=64,
        train_limit=10000,
        test_limit=2000,
        data_dir=str(data_dir),
        compile=False,  # a compiled step drops each epoch's partial batch: the step count below is an eager run's
    )
    reports = list(train(model, config))
    final = reports[-1]
    assert final.done and not final.stopped
    assert final.final_test_images == 2000
    # A 2-block model after 471 steps is still early in learning (~66%); chance is 10%.
    assert final.test_accuracy > 0.5
    assert final.confusion.sum() == 2000 and final.confusion.trace() / 2000 == pytest.approx(final.test_accuracy)
    fractions = [r.fraction for r in reports]
    assert fractions == sorted(fractions) and fractions[-1] == 1.0
    assert final.step == 3 * math.ceil(10000 / 64)
    assert sum(r.evaluated for r in reports) >= 5
    assert not model.training


def test_a_report_comes_after_the_first_step_whenever_report_every_has_passed_and_at_each_evaluation(data_dir):
    settings = dict(
        dataset="mnist", epochs=0.5, train_limit=2000, test_limit=200, data_dir=str(data_dir), compile=False
    )
    every_step = list(train(create_model("mnist", seed=0, **TINY), TrainConfig(**settings, report_every=0.0)))
    assert [r.step for r in every_step] == [*range(1, every_step[-1].step + 1), every_step[-1].step]
    only_evaluations = list(
        train(create_model("mnist", seed=0, **TINY), TrainConfig(**settings, report_every=1e9, evaluations=4))
    )
    first_step, *evaluations = only_evaluations  # the first step is always reported at once
    assert first_step.step == 1 and not first_step.evaluated
    assert [r.evaluated for r in evaluations] == [True] * 4  # 3 during the run, the final score
    assert [round(r.fraction, 2) for r in evaluations] == [0.25, 0.5, 0.75, 1.0]


class StepClock:
    """training.py's clock, moved only as a test says: `tick` seconds for each training step
    (`before_step` is `train`'s should_stop, asked just before each step) and whatever a
    reader holds a report for. A test on it says the same on any machine, however busy."""

    def __init__(self, tick: float):
        self.now, self.tick, self.steps = 0.0, tick, 0

    def perf_counter(self) -> float:
        return self.now

    def before_step(self) -> bool:
        self.now += self.tick
        self.steps += 1
        return self.steps > 1000  # a deadline: a run that would never end is stopped (and fails)


@pytest.fixture
def clock(monkeypatch) -> StepClock:
    clock = StepClock(tick=1 / 16)  # binary fractions: the sums below are exact
    monkeypatch.setattr(training, "time", clock)  # training.py reads time.perf_counter() alone
    return clock


def test_a_reader_that_holds_each_report_does_not_make_every_later_step_a_report(data_dir, clock):
    # The training process holds a run at each report while it gives other runs their turns:
    # the next report is due after `report_every` of the run's own work, not of the wait.
    config = TrainConfig(
        dataset="mnist",
        steps=40,
        evaluations=1,
        report_every=0.25,  # 4 steps of the clock's 1/16 s
        train_limit=2000,
        test_limit=200,
        data_dir=str(data_dir),
        compile=False,
    )
    steps = []
    for report in train(create_model("mnist", seed=0, **TINY), config, clock.before_step):
        steps.append(report.step)
        clock.now += 0.5  # held for longer than report_every: the other runs' turns
    # The first step at once, then every 4 steps of its own work, and the end (one report a
    # step would be 41).
    assert steps == [1, 5, 9, 13, 17, 21, 25, 29, 33, 37, 40]


def test_a_time_budget_sets_the_length_of_the_run(data_dir, clock):
    config = TrainConfig(
        dataset="mnist", time_budget=1, train_limit=4000, test_limit=500, data_dir=str(data_dir), compile=False
    )
    reports = list(train(create_model("mnist", seed=0, **TINY), config, clock.before_step))
    final = reports[-1]
    assert final.done and not final.stopped and final.total_steps is None
    # Steps of 1/16 s: the run ends at the step that reaches the budget, in the first epoch of
    # 32 steps, with the learning-rate schedule at its end.
    assert final.step == 16 and final.elapsed == 1.0 and final.fraction == 1.0
    assert final.lr == pytest.approx(0.0, abs=1e-12)
    assert all(r.elapsed < config.time_budget for r in reports[:-1])


def test_stop_ends_the_run_quickly_and_leaves_a_usable_model(data_dir):
    model = create_model("mnist", seed=0, **TINY)
    config = TrainConfig(dataset="mnist", epochs=50, train_limit=8000, test_limit=1000, data_dir=str(data_dir))
    reports = 0
    stop_requested = {}

    def should_stop():
        return "at step" in stop_requested

    for report in train(model, config, should_stop):
        reports += 1
        if reports == 3 and "at step" not in stop_requested:
            stop_requested["at step"] = report.step
        if report.done:
            final = report
    assert final.stopped and final.done
    assert final.step == stop_requested["at step"]  # not one step more once the stop was asked for
    assert final.final_test_images == 1000  # scored on the quick probe slice
    assert not model.training
    assert torch.isfinite(model(torch.zeros(1, 1, 28, 28))).all()


def test_closing_the_generator_leaves_the_model_in_eval_mode(data_dir):
    model = create_model("mnist", seed=0, **TINY)
    run = train(model, TrainConfig(dataset="mnist", epochs=5, train_limit=4000, test_limit=200, data_dir=str(data_dir)))
    next(run)
    assert model.training
    run.close()
    assert not model.training


def test_the_same_seed_gives_the_same_model(data_dir):
    weights = []
    for _ in range(2):
        model = create_model("mnist", seed=7, **TINY)
        run_to_completion(
            model,
            TrainConfig(dataset="mnist", epochs=0.2, train_limit=2000, test_limit=100, seed=7, data_dir=str(data_dir)),
        )
        weights.append(model.pos_embedding.detach().clone())
    torch.testing.assert_close(weights[0], weights[1], rtol=0, atol=0)


@pytest.mark.parametrize("batch", [6, 5, 1])
def test_a_split_step_gives_the_whole_batchs_logits_loss_and_gradients(batch):
    model = create_model("mnist", seed=0, **TINY).train()
    images, targets = torch.randn(batch, 1, 28, 28), torch.arange(batch) % 10
    results = []
    splitter = BatchSplitter(workers=2)
    try:
        for split in (None, splitter):
            model.zero_grad(set_to_none=True)
            logits, loss = forward_backward(model, images, targets, label_smoothing=0.1, splitter=split)
            results.append((logits, loss, [p.grad.clone() for p in model.parameters()]))
    finally:
        splitter.close()
    (plain_logits, plain_loss, plain_grads), (split_logits, split_loss, split_grads) = results
    torch.testing.assert_close(split_logits, plain_logits, atol=1e-5, rtol=1e-5)  # in the batch's order
    torch.testing.assert_close(split_loss, plain_loss, atol=1e-6, rtol=1e-5)  # the whole batch's mean
    for plain, split in zip(plain_grads, split_grads):
        torch.testing.assert_close(split, plain, atol=1e-6, rtol=1e-4)


def test_models_built_at_once_on_several_threads_are_each_their_seeds_model():
    """Two trainings side by side build their models at the same moment (worker.py)."""
    shape = dict(patch_size=7, dim=64, depth=2, heads=4, mlp_dim=128)
    expected = {seed: create_model("mnist", seed=seed, **shape).state_dict() for seed in range(4)}
    built = {}

    def build(seed: int) -> None:
        for attempt in range(10):
            built[seed, attempt] = create_model("mnist", seed=seed, **shape).state_dict()

    threads = [threading.Thread(target=build, args=(seed,)) for seed in range(4)]
    [thread.start() for thread in threads]
    [thread.join() for thread in threads]
    for (seed, _), weights in built.items():
        assert all(torch.equal(weights[name], expected[seed][name]) for name in weights)


def test_beside_another_training_the_slices_run_on_the_callers_thread_with_the_same_numbers(one_thread):
    model = create_model("mnist", seed=0, **TINY).train()
    threads_seen = []

    def recording_forward(images):
        threads_seen.append(threading.current_thread().name)
        return model(images)

    images, targets = torch.randn(6, 1, 28, 28), torch.arange(6) % 10
    splitter = BatchSplitter(workers=2)
    results = {}
    try:
        for side_by_side in (1, 2):
            threads_seen.clear()
            model.zero_grad(set_to_none=True)
            with contextlib.ExitStack() as trainings:
                for _ in range(side_by_side):  # this training, and one on the other core
                    trainings.enter_context(training_on_this_thread())
                assert trainings_side_by_side() == side_by_side
                logits, loss = forward_backward(recording_forward, images, targets, 0.1, splitter)
            results[side_by_side] = (logits, loss, [p.grad.clone() for p in model.parameters()]), set(threads_seen)
    finally:
        splitter.close()
    (alone, alone_threads), (beside, beside_threads) = results[1], results[2]
    assert all(name.startswith("vit-train") for name in alone_threads)  # both cores
    assert beside_threads == {threading.current_thread().name}  # the caller's core only
    for alone_value, beside_value in zip(alone[:2] + tuple(alone[2]), beside[:2] + tuple(beside[2])):
        assert torch.equal(alone_value, beside_value)  # bit for bit: a run's model is its own wherever it trains
    assert trainings_side_by_side() == 0


def test_split_workers_each_run_their_own_intra_op_threads():
    before = torch.get_num_threads()
    splitter = BatchSplitter(workers=2, threads_per_worker=1)
    try:
        counts = list(splitter._pool.map(lambda _: torch.get_num_threads(), range(4)))
    finally:
        splitter.close()
    assert counts == [1, 1, 1, 1]
    torch.set_num_threads(before)


def test_the_batch_is_split_only_where_the_callers_threads_leave_cores_idle(one_thread):
    cores = available_cores()
    splitter = BatchSplitter.for_device(torch.device("cpu"))  # one thread, as the app runs
    try:
        assert (splitter is None) if cores < 2 else (splitter.workers, splitter.threads_per_worker) == (2, 1)
    finally:
        if splitter is not None:
            splitter.close()
    torch.set_num_threads(cores)  # every core already in one step, as the CLI runs
    try:
        assert BatchSplitter.for_device(torch.device("cpu")) is None
    finally:
        torch.set_num_threads(1)
    assert BatchSplitter.for_device(torch.device("cuda")) is None


@needs_cxx
def test_a_compiled_bf16_step_matches_the_eager_step_to_bf16_precision():
    """A real TorchInductor compile (~20 s the first time on a machine, then cached)."""
    model = create_model("mnist", seed=0, **TINY).train()
    images, targets = torch.randn(128, 1, 28, 28), torch.arange(128) % 10
    cpu = torch.device("cpu")
    fast = TrainingForward(model, cpu, compile=True, bf16=True)
    assert fast.warm_up(images, targets) is None and fast.compiled
    results = []
    for forward in (TrainingForward(model, cpu), fast):
        model.zero_grad(set_to_none=True)
        logits, loss = forward_backward(forward, images, targets)
        results.append((logits, loss, torch.cat([p.grad.flatten() for p in model.parameters()])))
    torch._dynamo.reset()
    (eager_logits, eager_loss, eager_grads), (fast_logits, fast_loss, fast_grads) = results
    assert fast_logits.dtype == torch.float32
    assert (fast_logits - eager_logits).abs().max() < 0.03 * eager_logits.abs().max()
    assert abs(fast_loss - eager_loss) < 0.01 * eager_loss
    assert torch.nn.functional.cosine_similarity(fast_grads, eager_grads, dim=0) > 0.99


def test_without_a_working_compiler_training_runs_eagerly_and_says_why(monkeypatch):
    import torch._functorch.config as functorch_config
    import torch._inductor.config as inductor_config

    monkeypatch.setattr(inductor_config.cpp, "cxx", (None, "/nonexistent/c++"))
    monkeypatch.setattr(inductor_config, "fx_graph_cache", False)  # a cached graph needs no compiler
    monkeypatch.setattr(functorch_config, "enable_autograd_cache", False)
    model = create_model("mnist", seed=0, patch_size=14, dim=8, depth=1, heads=2, mlp_dim=16).train()
    images, targets = torch.randn(4, 1, 28, 28), torch.arange(4)
    forward = TrainingForward(model, torch.device("cpu"), compile=True)
    try:
        problem = forward.warm_up(images, targets)
    finally:
        torch._dynamo.reset()
    assert problem.startswith("could not compile the model (") and problem.endswith("training without compiling")
    assert not forward.compiled and all(p.grad is None for p in model.parameters())
    logits, loss = forward_backward(forward, images, targets)
    assert logits.shape == (4, 10) and loss > 0


def test_the_evaluation_slice_is_fixed_by_the_seed_and_sized():
    split = Split(torch.arange(50, dtype=torch.uint8).view(50, 1, 1, 1), torch.arange(50) % 10)
    first, again, other = (evaluation_slice(split, seed, 20) for seed in (3, 3, 4))
    assert len(first) == 20 and torch.equal(first.images, again.images)
    assert not torch.equal(first.images, other.images)
    assert len(set(first.images.flatten().tolist())) == 20  # no image twice
    torch.testing.assert_close(first.labels, first.images.flatten().long() % 10)


def test_a_run_of_so_many_steps_takes_exactly_those_and_ends_its_schedule_there(data_dir):
    config = TrainConfig(
        dataset="mnist", steps=13, train_limit=512, test_limit=128, data_dir=str(data_dir), bf16=False, force_step=True
    )
    reports = list(train(create_model("mnist", seed=0, **TINY), config))
    final = reports[-1]
    assert final.step == final.total_steps == 13 and final.fraction == 1.0
    assert final.lr == pytest.approx(0.0, abs=1e-4)  # the last step's rate: the schedule ends at zero
    # The same settings on one step path train the same model: what lets the app share identical
    # runs (it pins the path; left to timing, a close race could pick bf16 one run, fp32 the next).
    again = create_model("mnist", seed=0, **TINY)
    list(train(again, config))
    twice = create_model("mnist", seed=0, **TINY)
    list(train(twice, config))
    for name, tensor in again.state_dict().items():
        assert torch.equal(tensor, twice.state_dict()[name]), name


@pytest.mark.parametrize(
    "lengths, message",
    [
        (dict(epochs=1, steps=5), "give one of epochs, time_budget or steps, not epochs and steps"),
        (dict(steps=0), "steps must be a whole number of at least 1, got 0"),
        (dict(steps=2.5), "steps must be a whole number of at least 1, got 2.5"),
    ],
)
def test_a_run_has_one_length(lengths, message):
    with pytest.raises(ValueError, match=message):
        TrainConfig(**lengths)
