#!/usr/bin/env bash
# Everything the suite needs from a GPU, in one run (device tool: torch/triton/hypothesis/pytest are
# preinstalled there and nothing can be downloaded, so this uses the machine's python3 directly):
#   1. the whole property catalogue on CUDA (ci profile), with per-test statistics
#   2. the P4 anchor table (INV variants at the per-head q shape)
#   3. the kernel benchmark (attention at the DeepSeek-V4 decode shape, RMSNorm [32768, 4096])
#   4. the compile table's reference kernels, each timed beside its roofline prediction and a
#      device copy of the same byte count (benchmarks/run_compile_table.py), after the sm_90a
#      compile table itself (./kp compile --reference, with this machine's triton and ptxas)
#   5. the error model's instruction figures measured on this GPU (benchmarks/gpu_instruction_errors.py:
#      worst error per instruction / the model's allowance; the tensor-core alignment bits that match)
# Budget: <= 8 min on an H100 (the suite gets SUITE_TIMEOUT, default 240 s, of it).
# Results land in ${OUT:-gpu-results}/.
set -uo pipefail
cd "$(dirname "$0")/.."
out="${OUT:-gpu-results}"; mkdir -p "$out"
export PYTHONUNBUFFERED=1 KERNELPROP_BACKEND=cuda
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv | tee "$out/gpu.txt"
python3 -c "import torch, triton, hypothesis; print('torch', torch.__version__, 'triton', triton.__version__, 'hypothesis', hypothesis.__version__)" | tee -a "$out/gpu.txt"
python3 benchmarks/bench_kernels.py --json "$out/bench.json" 2>&1 | tee "$out/bench.txt"
python3 benchmarks/measure_inv.py --json "$out/inv.json" 2>&1 | tee "$out/inv.txt"
timeout 120 python3 benchmarks/gpu_instruction_errors.py --json "$out/instructions.json" 2>&1 \
  | tee "$out/instructions.txt"; echo "instructions rc=${PIPESTATUS[0]}" | tee -a "$out/gpu.txt"
timeout 180 python3 -m kernelprop compile --reference -j 8 --json "$out/compile.json" \
  --markdown "$out/compile.md" > "$out/compile.txt" 2>&1; echo "compile rc=$?" | tee -a "$out/gpu.txt"
timeout 180 python3 benchmarks/run_compile_table.py --json "$out/roofline.json" 2>&1 | tee "$out/roofline.txt"
start=$(date +%s)
timeout "${SUITE_TIMEOUT:-240}" python3 -m pytest properties -q -n 4 --backend cuda \
  --hypothesis-profile=ci -p no:cacheprovider --hypothesis-show-statistics \
  --reports-dir "$out/reports" --durations=0 2>&1 | tee "$out/suite.txt" | tail -60
echo "suite rc=${PIPESTATUS[0]} wall=$(( $(date +%s) - start ))s" | tee -a "$out/gpu.txt"
