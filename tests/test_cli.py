import subprocess
import sys

import pytest
from conftest import REPO, needs_cxx

from vit_demo import checkpoints

# A model and a slice of the data small enough for a test to train in seconds.
SMALL_RUN = ("--train-limit", "4000", "--dim", "32", "--depth", "2", "--heads", "2", "--mlp-dim", "64")


def run_cli(*args, env_data_dir=None):
    return subprocess.run(
        [sys.executable, "-m", "vit_demo", *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )


@pytest.mark.slow
def test_cli_trains_and_saves_a_loadable_checkpoint(data_dir, tmp_path):
    out = tmp_path / "run"
    result = run_cli(
        "--dataset",
        "mnist",
        "--epochs",
        "2",
        *SMALL_RUN,
        "--data-dir",
        str(data_dir),
        "--out",
        str(out),
    )
    assert result.returncode == 0, result.stderr
    last_line = result.stdout.strip().splitlines()[-1]
    assert (
        last_line.startswith("test accuracy ")
        and "on 10,000 test images" in last_line
        and f"saved to {out}" in last_line
    )
    model, info = checkpoints.load(out)
    accuracy = float(last_line.split()[2].rstrip("%")) / 100
    assert abs(info["test_accuracy"] - accuracy) < 1e-4 and accuracy > 0.3  # chance is 0.1
    assert info["training"]["train_limit"] == 4000 and info["training"]["epochs"] == 2
    assert model.config.dim == 32 and model.config.patch_size == 7


@pytest.mark.slow
@needs_cxx
def test_cli_trains_compiled_in_bf16_with_chosen_augmentation(data_dir, tmp_path):
    out = tmp_path / "fast"
    result = run_cli(
        "--dataset",
        "fashion_mnist",
        "--epochs",
        "1",
        *SMALL_RUN,
        "--compile",
        "--bf16",
        "--shift",
        "1",
        "--flip",
        "--data-dir",
        str(data_dir),
        "--out",
        str(out),
    )
    assert result.returncode == 0, result.stderr
    assert "could not compile" not in result.stderr
    model, info = checkpoints.load(out)
    recorded = info["training"]
    assert (recorded["compile"], recorded["bf16"], recorded["augment_shift"], recorded["augment_flip"]) == (
        True,
        True,
        1,
        True,
    )
    # A compiled step has one batch shape: 4,000 images make 31 full batches of 128.
    assert recorded["steps"] == 31 and info["test_accuracy"] > 0.3


def test_cli_explains_invalid_hyperparameters(tmp_path):
    result = run_cli("--dataset", "mnist", "--patch-size", "5", "--out", str(tmp_path / "x"))
    assert result.returncode == 2
    assert (
        "image_size 28 is not divisible by patch_size 5: choose a patch_size that divides 28: 1, 2, 4, 7, 14, 28"
        in result.stderr
    )


def test_cli_explains_a_missing_dataset(tmp_path):
    result = run_cli(
        "--dataset", "cifar10", "--epochs", "1", "--data-dir", str(tmp_path / "empty"), "--out", str(tmp_path / "x")
    )
    assert result.returncode == 1
    assert "Missing files:" in result.stderr and "cifar-10-batches-py/data_batch_1" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.slow
def test_cli_plans_a_shape_for_a_time_budget_and_says_which(data_dir, tmp_path):
    """The README's headline command: no shape given, so one is timed and chosen here."""
    out = tmp_path / "budget"
    result = run_cli("--time-budget", "4", "--train-limit", "2000", "--data-dir", str(data_dir), "--out", str(out))
    assert result.returncode == 0, result.stderr
    plan = result.stdout.splitlines()[0]
    assert plan.startswith("plan: ") and "candidates timed here" in plan and "images/s" in plan
    model, _ = checkpoints.load(out)
    c = model.config  # the model it trained is the one it said it planned
    assert plan.startswith(f"plan: p{c.patch_size}-d{c.dim}-L{c.depth}-h{c.heads}-m{c.mlp_dim}-")


def test_cli_takes_the_plain_step_exactly_as_forced_on_the_cpu(data_dir, tmp_path):
    out = tmp_path / "plain"
    result = run_cli(
        "--epochs", "1", *SMALL_RUN, "--no-compile", "--no-bf16", "--force-step", "--device", "cpu",
        "--data-dir", str(data_dir), "--out", str(out),
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    _, info = checkpoints.load(out)
    assert info["training"]["step_path"] == "eager fp32" and info["training"]["force_step"] is True
