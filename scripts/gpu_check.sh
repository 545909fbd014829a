#!/usr/bin/env bash
# On a machine with an NVIDIA GPU: builds, runs every unit test (the CUDA ones run when a
# GPU is present: bf16 training and CUDA checkpoints, NCCL all-reduce), then trains the
# quickstart model for 50 steps on cuda in bfloat16 and prints its tokens/s and peak GPU
# memory; with two GPUs or more, the same on 2 ranks (torchrun, NCCL). Exits non-zero when
# there is no GPU or a check fails.
#   scripts/gpu_check.sh
set -euo pipefail
cd "$(dirname "$0")/.."
if ! nvidia-smi -L 2>/dev/null | grep -q GPU; then
  echo "gpu_check: no NVIDIA GPU on this machine (nvidia-smi lists none)" >&2
  exit 1
fi
nvidia-smi -L
scripts/setup.sh
scripts/build.sh
build/bin/xlhost --version

echo "== unit tests (CUDA tests enabled by the GPU)"
build/bin/xlhost_tests 2>&1 | tee build/gpu_unit_tests.log
if grep -q "SKIPPED.*\(Cuda\|Nccl\)" build/gpu_unit_tests.log; then
  echo "gpu_check: a CUDA test was skipped although a GPU is present" >&2
  exit 1
fi

echo "== quickstart model, 50 steps on cuda in bfloat16"
[[ -f data/synth/train.jsonl ]] || build/bin/xlhost data synth --out data/synth
build/bin/xlhost run --plugin build/plugins/model_original.so --config configs/quickstart.json \
  --set experiment.id=0.0.50 --set run.out_dir=out/gpu_check --set train.max_steps=50 \
  --set train.device=cuda --set train.dtype=bfloat16 --no-metrics
record=out/gpu_check/0.0.50/record.json
"$(scripts/python-env.sh)/bin/python" - "$record" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
res, env = r["results"], r["environment"]
print(f"gpu_check: {', '.join(env['cuda_devices'])}: {res['tokens_per_second']:.0f} tokens/s, "
      f"peak CUDA memory {res['peak_cuda_bytes'] / 2**20:.0f} MiB, final loss {res['final_loss']:.4f}")
last = [json.loads(line) for line in open(sys.argv[1].replace("record.json", "train.log")) if '"loss"' in line][-1]
print(f"gpu_check: last log line (the dashboard's system panels): GPU memory {last.get('gpu_memory_mib')} MiB, "
      f"utilisation {last.get('gpu_util_percent')}% (NVML), CPU {last['cpu_percent']:.0f}%, RSS {last['rss_mib']:.0f} MiB")
PY

gpus=$(nvidia-smi -L | grep -c GPU)
if ((gpus < 2)); then
  echo "gpu_check: $gpus GPU: the 2-rank NCCL run needs two GPUs and is skipped"
  exit 0
fi
echo "== the same on 2 GPUs: 2 ranks (torchrun, NCCL, one GPU each), same global batch"
build/bin/xlhost run --plugin build/plugins/model_original.so --config configs/quickstart.json \
  --set experiment.id=0.0.51 --set run.out_dir=out/gpu_check --set train.max_steps=50 --set train.batch_size=8 \
  --set train.device=cuda --set train.dtype=bfloat16 --no-metrics --nproc 2
"$(scripts/python-env.sh)/bin/python" - out/gpu_check/0.0.51/record.json <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
res, d = r["results"], r["distributed"]
print(f"gpu_check: {d['world_size']} ranks on {d['backend']}: {res['tokens_per_second']:.0f} tokens/s, "
      f"all-reduce {1000 * res['step_time']['communication_s']:.1f} ms per step, final loss {res['final_loss']:.4f}")
PY
