"""The machine a run trains on: its cores and how torch's threads use them, its device, and
what its hardware offers (torch's CPU capability, native bfloat16, a compiler for Inductor).
Nothing here assumes a CPU feature: each is read from the machine itself, and every speed
figure the project prints starts with `Machine.describe()`.
"""

from __future__ import annotations

import os
import platform
import shutil
import sys
from dataclasses import dataclass
from functools import cache

import torch


def available_cores() -> int:
    """The cores this process may run on (a container's CPU set, not the host's count)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # macOS and Windows have no affinity call
        return os.cpu_count() or 1


def configure_threads(num_threads: int | None = None) -> None:
    """Use every core for intra-op work and one inter-op thread: these models are too small
    for inter-op parallelism to pay, and a second pool only competes for the cores."""
    torch.set_num_threads(num_threads or available_cores())
    try:
        torch.set_num_interop_threads(1)
    except RuntimeError:  # already set, or inter-op work already started in this process
        pass


def use_threads_on_this_thread(num_threads: int) -> None:
    """Give the calling thread its own count of threads per operation (a thread other than
    the first starts with the process-wide count)."""
    # A thread takes the process-wide count at its first parallel operation (get_num_threads
    # triggers that), so its own count must be set after it.
    torch.get_num_threads()
    torch.set_num_threads(num_threads)


def server_threads(requested: int | None = None) -> int:
    """Threads per operation for a server that trains and answers predictions on this machine:
    on two cores one, which leaves the other core to predictions while someone trains (the
    training then runs faster than with two threads fighting the predictions for both cores,
    measured on a 2-vCPU machine); on more, all but one."""
    cores = available_cores()
    return requested or (1 if cores <= 2 else cores - 1)


def pick_device(preferred: str | None = None) -> torch.device:
    """`preferred` if given, else CUDA, else Apple MPS, else the CPU."""
    if preferred:
        return torch.device(preferred)
    if torch.cuda.is_available():
        return torch.device("cuda")
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def synchronize(device: torch.device) -> None:
    """Wait for the device's queued work (timing a GPU step needs it; a CPU has none)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    elif device.type == "mps":
        torch.mps.synchronize()


# ----------------------------------------------------------------------------- the machine

# TorchInductor builds its CPU kernels with this compiler (torch._inductor.config.cpp.cxx).
CXX = os.environ.get("CXX", "clang++" if sys.platform == "darwin" else "g++")


def _cpu_flags() -> set[str]:
    try:
        with open("/proc/cpuinfo", encoding="ascii", errors="replace") as info:
            for line in info:
                if line.startswith("flags"):
                    return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()


def _cpu_name() -> str:
    try:
        with open("/proc/cpuinfo", encoding="ascii", errors="replace") as info:
            for line in info:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


@dataclass(frozen=True)
class Machine:
    """What the hardware offers a training step."""

    device: torch.device
    name: str  # the CPU's or GPU's model name
    cores: int
    cpu_capability: str  # the vector instructions torch's CPU kernels use: "AVX512", "AVX2", ...
    native_bf16: bool  # bfloat16 matrix units on the training device (AVX512-BF16 or AMX; a GPU's)
    bf16_units: str  # which ones, for the line that describes the machine
    compiler: bool  # TorchInductor can build kernels here

    @classmethod
    def detect(cls, device: torch.device | None = None) -> Machine:
        device = device or pick_device()
        if device.type == "cuda":
            index = device.index if device.index is not None else torch.cuda.current_device()
            native = torch.cuda.is_bf16_supported()
            return cls(
                device,
                torch.cuda.get_device_name(index),
                available_cores(),
                cpu_capability(),
                native,
                "CUDA" if native else "",
                compiler_available(device),
            )
        units = cpu_bf16_units() if device.type == "cpu" else ""
        name = _cpu_name() if device.type == "cpu" else f"Apple GPU ({device.type})"
        return cls(device, name, available_cores(), cpu_capability(), bool(units), units, compiler_available(device))

    def describe(self) -> str:
        """One line: which machine a speed figure comes from."""
        if self.device.type == "cpu":
            bf16 = f"native bfloat16 ({self.bf16_units})" if self.native_bf16 else "no native bfloat16"
            return (
                f"CPU: {self.name}, {self.cores} core{'s' if self.cores != 1 else ''}, "
                f"torch capability {self.cpu_capability}, {bf16}"
            )
        bf16 = "bfloat16" if self.native_bf16 else "no bfloat16"
        return f"{self.device.type.upper()}: {self.name}, {bf16}; host CPU capability {self.cpu_capability}"


def cpu_capability() -> str:
    """torch's own word for the vector instructions its CPU kernels were dispatched to."""
    try:
        return torch.backends.cpu.get_cpu_capability()
    except AttributeError:  # older torch
        return "unknown"


@cache
def cpu_bf16_units() -> str:
    """The CPU's native bfloat16 units that torch's kernels will use ("AMX", "AVX512-BF16"),
    or "" where bfloat16 is only emulated.

    Two things must hold: the CPU has the units (its flags), and oneDNN, which runs the
    matrix products, is allowed to use them (it answers False when capped below AVX-512,
    e.g. by ONEDNN_MAX_CPU_ISA=AVX2, and on CPUs without AVX-512)."""
    flags = _cpu_flags()
    if sys.platform == "darwin" and platform.machine() == "arm64":
        return ""  # Apple CPUs: torch's CPU bfloat16 matmuls are not accelerated
    try:
        onednn_bf16 = bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        onednn_bf16 = False
    if not onednn_bf16 or cpu_capability() not in ("AVX512", "AMX"):
        return ""
    if "amx_bf16" in flags:
        return "AMX"
    if "avx512_bf16" in flags:
        return "AVX512-BF16"
    return ""


def compiler_available(device: torch.device) -> bool:
    """Inductor needs a C++ compiler for CPU kernels, Triton for CUDA ones."""
    if device.type == "cpu":
        return shutil.which(CXX) is not None
    if device.type == "cuda":
        try:
            import triton  # noqa: F401
        except ImportError:
            return False
        return True
    return False
