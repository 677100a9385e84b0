#!/usr/bin/env bash
# Everything the suite needs from a GPU, in one run (device tool: torch/triton/hypothesis/pytest are
# preinstalled there and nothing can be downloaded, so this uses the machine's python3 directly):
#   1. the whole property catalogue on CUDA (ci profile), with per-test statistics
#   2. the P4 anchor table (INV variants at the per-head q shape)
#   3. the kernel benchmark (attention at the DeepSeek-V4 decode shape, RMSNorm [32768, 4096])
# Results land in ${OUT:-gpu-results}/.
set -uo pipefail
cd "$(dirname "$0")/.."
out="${OUT:-gpu-results}"; mkdir -p "$out"
export PYTHONUNBUFFERED=1 KERNELPROP_BACKEND=cuda
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv | tee "$out/gpu.txt"
python3 -c "import torch, triton, hypothesis; print('torch', torch.__version__, 'triton', triton.__version__, 'hypothesis', hypothesis.__version__)" | tee -a "$out/gpu.txt"
python3 benchmarks/bench_kernels.py --json "$out/bench.json" 2>&1 | tee "$out/bench.txt"
python3 benchmarks/measure_inv.py --json "$out/inv.json" 2>&1 | tee "$out/inv.txt"
start=$(date +%s)
timeout "${SUITE_TIMEOUT:-300}" python3 -m pytest properties -q -n 4 --backend cuda \
  --hypothesis-profile=ci -p no:cacheprovider --hypothesis-show-statistics \
  --reports-dir "$out/reports" --durations=0 2>&1 | tee "$out/suite.txt" | tail -60
echo "suite rc=${PIPESTATUS[0]} wall=$(( $(date +%s) - start ))s" | tee -a "$out/gpu.txt"
