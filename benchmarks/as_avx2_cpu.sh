#!/usr/bin/env bash
# Run a command as if on a slower, AVX2-only 2-core CPU (the AMD EPYC the project was tried on):
#
#   sudo benchmarks/as_avx2_cpu.sh 0.36 python -m vit_demo.train --dataset mnist --time-budget 60 --out runs/x
#
# torch's kernels are dispatched to AVX2 (ATEN_CPU_CAPABILITY) and oneDNN, which runs the matrix
# products, is capped at AVX2 (ONEDNN_MAX_CPU_ISA): no AVX-512, no AVX512-BF16, no AMX, so bfloat16
# is emulated as it is there. The first argument is the share of the cores' time the command (and
# every process it starts) may use, enforced by a cgroup-v1 CPU quota over 10 ms periods; choose it
# so that `python -m benchmarks.train_throughput --no-compile` run the same way gives the slower
# CPU's measured speed. Needs root and /sys/fs/cgroup/cpu (cgroup v1). Not a real EPYC: its caches,
# memory and clock differ; the speeds and the features a planner sees are what this reproduces.
set -euo pipefail
share="$1"; shift
group="/sys/fs/cgroup/cpu/vit-demo-avx2-$$"
mkdir "$group"
trap 'rmdir "$group" 2>/dev/null || true' EXIT
period=10000
cores=$(nproc)
echo "$period" > "$group/cpu.cfs_period_us"
echo "$(awk "BEGIN { print int($share * $cores * $period) }")" > "$group/cpu.cfs_quota_us"
echo $$ > "$group/cgroup.procs"
export ATEN_CPU_CAPABILITY=avx2 ONEDNN_MAX_CPU_ISA=AVX2
"$@"
