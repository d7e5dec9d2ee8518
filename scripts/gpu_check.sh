#!/usr/bin/env bash
# The GPU check of training at scale, for a lent GPU machine (one prepared run, under 10 minutes):
#   bash scripts/gpu_check.sh .gpu          (.gpu from scripts/gpu_wheels.sh, carried along)
# 1. installs brevitas and our package from the carried wheels into a venv that sees the
#    machine's own torch (no network needed);
# 2. trains fmnist-cnn-l8 on the GPU (3 epochs, seed 0, as its model-zoo entry) and once more with
#    --amp, and prints training images/s against the CPU figure measured on our 2-core machines
#    (models/zoo/fmnist-cnn-l8/metrics.json);
# 3. converts the GPU-trained run on the CPU: the SNN against the integer network (0 samples
#    must differ), and the Brevitas accuracy on the GPU and on the CPU.
# Output lands in $OUT (or ./gpu-check): the runs' metrics and gpu_check.json.
set -euo pipefail
CARRY=${1:?usage: gpu_check.sh CARRY_DIR}
RESULTS=${OUT:-gpu-check}
mkdir -p "$RESULTS"
START=$(date +%s)
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader || true
python3 -m venv --system-site-packages .gpu-venv
. .gpu-venv/bin/activate
python -c "import numpy, torch; print('torch', torch.__version__, 'cuda', torch.version.cuda, torch.cuda.is_available(), 'numpy', numpy.__version__)"
pip install --quiet --no-index --find-links "$CARRY/wheels" pascal-fpga --no-deps
pip install --quiet --no-index --find-links "$CARRY/wheels" -r "$CARRY/requirements.txt" \
  || pip install --quiet --no-index --find-links "$CARRY/wheels" --no-deps -r "$CARRY/requirements.txt"
DATA=(--dataset fashion-mnist --data-dir "$CARRY/fashion-mnist")
run() { echo "+ $*" >&2; "$@"; }
run pascal-fpga train models/fmnist-cnn-l8.yaml "${DATA[@]}" --epochs 3 --seed 0 --device cuda \
  --out "$RESULTS/gpu" --json > "$RESULTS/train_gpu.json"
run pascal-fpga train models/fmnist-cnn-l8.yaml "${DATA[@]}" --epochs 3 --seed 0 --device cuda --amp \
  --out "$RESULTS/gpu-amp" --json > "$RESULTS/train_gpu_amp.json"
run pascal-fpga eval "$RESULTS/gpu" --device cuda --json > "$RESULTS/eval_gpu.json"
run pascal-fpga eval "$RESULTS/gpu" --device cpu --json > "$RESULTS/eval_cpu.json"
run pascal-fpga snn "$RESULTS/gpu" --device cpu --images 2000 --no-float --json > "$RESULTS/snn_cpu.json"
run pascal-fpga snn "$RESULTS/gpu-amp" --device cpu --images 2000 --no-float --json > "$RESULTS/snn_cpu_amp.json"
python - "$RESULTS" <<'PY'
import json, sys
from pathlib import Path
r = Path(sys.argv[1])
load = lambda name: json.loads((r / name).read_text())
cpu = json.loads(Path("models/zoo/fmnist-cnn-l8/metrics.json").read_text())
# trained before metrics recorded images/s: epochs x whole batches x batch / seconds
cpu.setdefault("train_images_per_second", cpu["epochs"] * (cpu["train_images"] // 128) * 128
               / cpu["train_seconds"])
gpu, amp = load("train_gpu.json"), load("train_gpu_amp.json")
snn, snn_amp = load("snn_cpu.json"), load("snn_cpu_amp.json")
out = {
    "cpu_images_per_second (2-core machine, zoo run)": cpu["train_images_per_second"],
    "gpu_images_per_second": gpu["train_images_per_second"],
    "gpu_amp_images_per_second": amp["train_images_per_second"],
    "gpu_over_cpu": gpu["train_images_per_second"] / cpu["train_images_per_second"],
    "gpu_test_accuracy": gpu["test_accuracy"], "cpu_zoo_test_accuracy": cpu["test_accuracy"],
    "gpu_amp_test_accuracy": amp["test_accuracy"],
    "eval_on_gpu": load("eval_gpu.json")["test_accuracy"],
    "eval_on_cpu": load("eval_cpu.json")["test_accuracy"],
    "snn_on_cpu_mismatched_samples": snn["mismatched_samples"],
    "snn_amp_on_cpu_mismatched_samples": snn_amp["mismatched_samples"],
    "snn_samples": snn["samples"],
}
(r / "gpu_check.json").write_text(json.dumps(out, indent=2) + "\n")
print(json.dumps(out, indent=2))
ok = out["snn_on_cpu_mismatched_samples"] == 0 and out["snn_amp_on_cpu_mismatched_samples"] == 0
print("GPU check:", "PASSED" if ok else "FAILED")
sys.exit(0 if ok else 1)
PY
echo "took $(( $(date +%s) - START )) s"
