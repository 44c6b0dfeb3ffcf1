"""The training step: which paths a machine is offered, and the timed choice between them."""

import os
import subprocess
import sys
import time

import pytest
import torch
from conftest import REPO, TINY

from vit_demo.step import (
    EAGER_FP32,
    FastestStep,
    Machine,
    StepPath,
    TrainingForward,
    cpu_bf16_units,
    plan_step,
)
from vit_demo.training import create_model

CPU = torch.device("cpu")
# The CPUs the project has met: an AVX2-only AMD EPYC (bf16 ~10x slower than fp32 there)
# and a Xeon with AMX.
EPYC_AVX2 = Machine(CPU, "AMD EPYC", 2, "AVX2", native_bf16=False, bf16_units="", compiler=True)
XEON_AMX = Machine(CPU, "Intel Xeon", 2, "AVX512", native_bf16=True, bf16_units="AMX", compiler=True)
NO_COMPILER = Machine(CPU, "Intel Xeon", 2, "AVX512", native_bf16=True, bf16_units="AMX", compiler=False)
# torch's AVX2 kernels and oneDNN capped at AVX2: this machine behaves as the EPYC does.
AS_AVX2 = {"ATEN_CPU_CAPABILITY": "avx2", "ONEDNN_MAX_CPU_ISA": "AVX2"}

COMPILED_FP32, COMPILED_BF16 = StepPath(compile=True, bf16=False), StepPath(compile=True, bf16=True)
EAGER_BF16 = StepPath(compile=False, bf16=True)


def test_bf16_asked_for_on_a_cpu_without_native_bf16_trains_in_fp32_and_says_so_in_one_line():
    paths, notes = plan_step(EPYC_AVX2, compile=True, bf16=True)
    assert paths == [EAGER_FP32, COMPILED_FP32]
    assert len(notes) == 1 and "no native bfloat16" in notes[0] and "capability AVX2" in notes[0]
    assert "training in float32" in notes[0] and "--force-step" in notes[0]


def test_where_bf16_is_native_both_bf16_steps_are_candidates_beside_the_plain_step():
    assert plan_step(XEON_AMX, compile=True, bf16=True) == ([EAGER_FP32, EAGER_BF16, COMPILED_FP32, COMPILED_BF16], [])
    assert plan_step(XEON_AMX, compile=False, bf16=True) == ([EAGER_FP32, EAGER_BF16], [])
    # Left to the machine, a long run considers every path; a short one never pays for a compile.
    assert plan_step(XEON_AMX, None, None, expected_seconds=600)[0] == [
        EAGER_FP32,
        EAGER_BF16,
        COMPILED_FP32,
        COMPILED_BF16,
    ]
    assert plan_step(XEON_AMX, None, None, expected_seconds=60) == ([EAGER_FP32, EAGER_BF16], [])
    assert plan_step(EPYC_AVX2, None, None, expected_seconds=600) == ([EAGER_FP32, COMPILED_FP32], [])
    assert plan_step(EPYC_AVX2, None, None, expected_seconds=60) == ([EAGER_FP32], [])


def test_compile_without_a_compiler_is_turned_down_with_the_reason():
    paths, notes = plan_step(NO_COMPILER, compile=True, bf16=None)
    assert paths == [EAGER_FP32, EAGER_BF16] and "no compiler for TorchInductor" in notes[0]


def test_forcing_takes_exactly_what_was_asked():
    assert plan_step(EPYC_AVX2, compile=False, bf16=True, force=True) == ([StepPath(False, True)], [])


class Slowed:
    """A forward that takes `delay` seconds longer than the model's."""

    def __init__(self, forward: TrainingForward, delay: float):
        self.forward, self.delay, self.compiled, self.name = forward, delay, False, f"slowed {forward.name}"

    def __call__(self, images):
        time.sleep(self.delay)
        return self.forward(images)

    def warm_up(self, images, targets):
        return None


def test_the_timed_steps_train_and_the_fastest_path_is_kept(one_thread):
    model = create_model("mnist", seed=0, **TINY).train()
    plain = TrainingForward(model, CPU)
    stepper = FastestStep([Slowed(plain, 0.25), plain], CPU)  # far slower than any noise on a busy machine
    images, targets = torch.randn(16, 1, 28, 28), torch.arange(16) % 10
    stepper.prepare(images, targets)
    assert stepper.path.startswith("timing ")
    trial = FastestStep.ROUNDS * FastestStep.STEPS_PER_ROUND * 2
    for _ in range(trial):
        model.zero_grad(set_to_none=True)
        logits, loss = stepper(images, targets, 0.0)
        assert logits.shape == (16, 10) and all(p.grad is not None for p in model.parameters())
    assert stepper.chosen is plain and stepper.path == "eager fp32"
    assert stepper.notes[-1].startswith("fastest step here: eager fp32 (slowed eager fp32 ")


def test_this_cpu_is_described_with_torchs_capability_and_its_bf16_units():
    machine = Machine.detect(CPU)
    line = machine.describe()
    assert line.startswith("CPU: ") and f"torch capability {torch.backends.cpu.get_cpu_capability()}" in line
    assert ("native bfloat16" in line) == machine.native_bf16 and machine.bf16_units == cpu_bf16_units()


def test_capped_at_avx2_this_cpu_reports_no_native_bf16():
    code = "from vit_demo.step import Machine; m = Machine.detect(); print(m.cpu_capability, m.native_bf16)"
    result = subprocess.run(
        [sys.executable, "-c", code],
        cwd=REPO,
        env={**os.environ, **AS_AVX2},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.stdout.split() == ["AVX2", "False"], result.stderr


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA GPU here: the GPU step path cannot run")
def test_on_a_gpu_a_run_takes_no_host_sync_per_step(data_dir):
    from vit_demo import training

    config = training.TrainConfig(
        dataset="mnist",
        epochs=1,
        train_limit=4096,
        test_limit=512,
        data_dir=str(data_dir),
        evaluations=0,
        report_every=1e9,
    )
    run = training._Run(create_model("mnist", seed=0, **TINY), config)
    batches = run.batches()
    while run.stepper.chosen is None:  # the first steps time each path, and wait for the GPU to do so
        run.take_step(*next(batches))
    torch.cuda.set_sync_debug_mode("error")  # from here on, any call that waits for the GPU raises
    try:
        for _ in range(10):
            run.take_step(*next(batches))
    finally:
        torch.cuda.set_sync_debug_mode("default")
    with pytest.raises(RuntimeError):  # the debug mode does catch a sync
        torch.cuda.set_sync_debug_mode("error")
        try:
            torch.ones(1, device="cuda").item()
        finally:
            torch.cuda.set_sync_debug_mode("default")
    final = run.final_report()
    assert final.step >= 10 and final.test_accuracy > 0.1 and run.images.is_cuda
