"""The training step: which paths a machine is offered, and the timed choice between them."""

import os
import subprocess
import sys

import pytest
import torch
from conftest import REPO, TINY

from vit_demo import machine, step
from vit_demo.machine import Machine
from vit_demo.step import EAGER_FP32, FastestStep, StepPath, TrainingForward, plan_step
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


class TickingClock:
    """step.py's clock for a test: 1 ms passes between any two readings, and a `Slowed` step
    adds its delay. The timed choice then comes out the same on any machine, however busy."""

    def __init__(self):
        self.now = 0.0

    def perf_counter(self) -> float:
        self.now += 0.001
        return self.now


class Slowed:
    """A forward that takes `delay` seconds longer than the model's, on `clock`."""

    def __init__(self, forward: TrainingForward, delay: float, clock: TickingClock):
        self.forward, self.delay, self.clock = forward, delay, clock
        self.compiled, self.name = False, f"slowed {forward.name}"

    def __call__(self, images):
        self.clock.now += self.delay
        return self.forward(images)

    def warm_up(self, images, targets):
        return None


def test_the_timed_steps_train_and_the_fastest_path_is_kept(one_thread, monkeypatch):
    clock = TickingClock()
    monkeypatch.setattr(step, "time", clock)  # step.py reads time.perf_counter() alone
    model = create_model("mnist", seed=0, **TINY).train()
    plain = TrainingForward(model, CPU)
    stepper = FastestStep([Slowed(plain, 0.25, clock), plain], CPU)
    images, targets = torch.randn(16, 1, 28, 28), torch.arange(16) % 10
    stepper.prepare(images, targets)
    assert stepper.path.startswith("timing ")
    trial = FastestStep.ROUNDS * FastestStep.STEPS_PER_ROUND * 2
    for _ in range(trial):
        model.zero_grad(set_to_none=True)
        logits, loss = stepper(images, targets, 0.0)
        assert logits.shape == (16, 10) and all(p.grad is not None for p in model.parameters())
    assert stepper.chosen is plain and stepper.path == "eager fp32"
    # Each step read the clock twice: 1 ms for the plain step, 251 ms for the slowed one.
    timings = "slowed eager fp32 4.0 steps/s, eager fp32 1,000.0 steps/s"
    assert stepper.notes[-1] == f"fastest step here: eager fp32 ({timings})"


def test_a_machine_is_described_in_one_line_with_its_capability_and_bf16_units():
    assert EPYC_AVX2.describe() == "CPU: AMD EPYC, 2 cores, torch capability AVX2, no native bfloat16"
    assert XEON_AMX.describe() == "CPU: Intel Xeon, 2 cores, torch capability AVX512, native bfloat16 (AMX)"
    line = Machine.detect(CPU).describe()  # this machine: the capability is torch's own word
    assert line.startswith("CPU: ") and f"torch capability {torch.backends.cpu.get_cpu_capability()}" in line


@pytest.fixture
def cpu_facts(monkeypatch):
    """Sets what a CPU offers (its flags, torch's kernel capability, oneDNN's bf16) for Machine.detect."""

    def facts(flags: set[str], capability: str, onednn_bf16: bool) -> None:
        monkeypatch.setattr(machine, "_cpu_flags", lambda: set(flags))
        monkeypatch.setattr(machine, "cpu_capability", lambda: capability)
        monkeypatch.setattr(torch.ops.mkldnn, "_is_mkldnn_bf16_supported", lambda: onednn_bf16)
        monkeypatch.setattr(machine.platform, "machine", lambda: "x86_64")
        machine.cpu_bf16_units.cache_clear()

    yield facts
    machine.cpu_bf16_units.cache_clear()  # this machine's own answer again


@pytest.mark.parametrize(
    "flags, capability, onednn_bf16, units",
    [
        ({"avx2"}, "AVX2", False, ""),  # the EPYC: bfloat16 emulated, ~10x slower than fp32
        ({"avx512f", "avx512_bf16"}, "AVX512", True, "AVX512-BF16"),
        ({"avx512f", "avx512_bf16", "amx_bf16"}, "AVX512", True, "AMX"),  # the faster of the two
        ({"avx512f", "avx512_bf16", "amx_bf16"}, "AVX2", True, ""),  # torch's kernels capped at AVX2
        ({"avx512f", "avx512_bf16"}, "AVX512", False, ""),  # oneDNN will not use them
        ({"avx512f"}, "AVX512", True, ""),  # AVX-512 without its bfloat16 instructions
    ],
)
def test_native_bf16_needs_the_cpus_units_and_torchs_kernels_allowed_to_use_them(
    cpu_facts, flags, capability, onednn_bf16, units
):
    cpu_facts(flags, capability, onednn_bf16)
    machine = Machine.detect(CPU)
    assert (machine.bf16_units, machine.native_bf16) == (units, bool(units))
    assert machine.describe().endswith(f"native bfloat16 ({units})" if units else "no native bfloat16")


def test_capped_at_avx2_this_cpu_reports_no_native_bf16():
    code = "from vit_demo.machine import Machine; m = Machine.detect(); print(m.cpu_capability, m.native_bf16)"
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
