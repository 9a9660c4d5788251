#!/usr/bin/env bash
# The GPU check, in one command of at most 6 minutes on one H100: the gpu-marked tests, the throughput
# benchmark (every method at ViT-B/16 224 px and at the small-data ViT-nano/4 32 px) and the GPU study
# sweeps/fmnist-gpu.yaml, its leaderboard and plots. Everything lands in OUT_DIR (default results/gpu),
# as few files as a lent GPU's tool brings back (at most 8):
#
#   check.log          this script's whole output, with the device and the time of each part
#   tests.log          the gpu-marked tests
#   throughput.csv     scripts/benchmark_throughput.py's rows (images/s, FLOP/s, MFU)
#   fmnist-gpu.csv     the study's leaderboard (bench collate), with fmnist-gpu.md and
#                      fmnist-gpu_summary.csv beside it
#   report.tar.gz      bench report's plots and every run's config, metrics and summary
#
#   bash scripts/gpu_check.sh [OUT_DIR]        # PYTHON=... picks the interpreter (default .venv/bin/python)
#
# Each part has its own time limit, so a slow part cannot eat the others' time; the sweep gets what is
# left until DEADLINE seconds (330) and then stops, and what it finished is collated all the same: a run
# cut off there is resumed from its checkpoint by running this script again (finished runs are kept).
set -u -o pipefail

OUT=${1:-results/gpu}
DEADLINE=${DEADLINE:-330}
PY=${PYTHON:-.venv/bin/python}
[ -x "$PY" ] || PY=python3
ROOT=${BENCH_ROOT:-runs}
export PYTHONUNBUFFERED=1 BENCH_ROOT="$ROOT" WANDB_MODE=${WANDB_MODE:-disabled}
mkdir -p "$OUT"
exec > >(tee "$OUT/check.log") 2>&1
start=$SECONDS
say() { echo "[gpu_check +$((SECONDS - start))s] $*"; }
left() { echo $((DEADLINE - (SECONDS - start))); }
bench() { "$PY" -m bench.cli.main "$@"; }

say "python $("$PY" -c 'import sys, torch; print(sys.version.split()[0], "torch", torch.__version__)')"
"$PY" -c 'import torch; assert torch.cuda.is_available(), "no CUDA device"; print(torch.cuda.get_device_name())' || exit 1
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>/dev/null

say "1/3 gpu-marked tests (60 s at most)"
timeout 60 "$PY" -m pytest -q -m gpu -p no:cacheprovider -o addopts="" tests >"$OUT/tests.log" 2>&1
say "tests: exit $? ($(tail -n 1 "$OUT/tests.log"))"

say "2/3 throughput: every method, ViT-B/16 at 224 px and ViT-nano/4 at 32 px (75 s at most)"
timeout 75 "$PY" scripts/benchmark_throughput.py --device cuda --out "$OUT/throughput.csv"
say "throughput: exit $?"

say "3/3 sweeps/fmnist-gpu.yaml until +${DEADLINE}s ($(left) s left)"
timeout "$(left)" "$PY" -m bench.cli.main sweep sweeps/fmnist-gpu.yaml --executor local --parallel 2 --wait
say "sweep: exit $? (124: stopped at the deadline; finished runs are kept)"

bench status sweeps/fmnist-gpu.yaml
bench collate sweeps/fmnist-gpu.yaml --out "$OUT/fmnist-gpu.csv"
report=$(mktemp -d)
bench report sweeps/fmnist-gpu.yaml --out "$report/report" >/dev/null
mkdir -p "$report/runs"
for run in "$ROOT"/fmnist-gpu/*/; do
    mkdir -p "$report/runs/$(basename "$run")"
    cp "$run"/{config.yaml,metrics.jsonl,summary.json,eval.json} "$report/runs/$(basename "$run")/" 2>/dev/null
done
tar -czf "$OUT/report.tar.gz" -C "$report" report runs
say "done: $(ls "$OUT" | tr '\n' ' ')"
