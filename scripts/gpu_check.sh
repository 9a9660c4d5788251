#!/usr/bin/env bash
# The GPU check, in one command of at most 6 minutes on one H100: the gpu-marked tests, the throughput
# benchmark (every method at ViT-B/16 224 px and at the small-data ViT-nano/4 32 px) and the GPU study
# sweeps/fmnist-gpu.yaml, its leaderboard and plots. Everything lands in RESULTS (default results/gpu;
# bench writes tables inside results/ only), and is copied to COPY_DIR when one is given: as few files
# as a lent GPU's tool brings back (at most 8):
#
#   check.log          this script's whole output, with the device and the time of each part
#   tests.log          the gpu-marked tests
#   throughput.csv     scripts/benchmark_throughput.py's rows (images/s, FLOP/s, MFU)
#   fmnist-gpu.csv     the study's leaderboard (bench collate), with fmnist-gpu.md,
#                      fmnist-gpu_summary.csv and fmnist-gpu_compute.csv beside it
#   report.tar.gz      bench report's plots and every run's config, metrics and summary
#
#   bash scripts/gpu_check.sh [COPY_DIR]       # PYTHON=... picks the interpreter (default .venv/bin/python)
#
# On a lent GPU of this workplace (torch there, not all of this project's dependencies, no registry):
# scripts/gpu_wheels.sh here, then carry .whl and install it there first (that script says how).
#
# A rehearsal on a CPU (the plumbing, not the numbers): DEVICE=cpu SWEEP=<a small CPU sweep> THROUGHPUT="..."
# RESULTS=results/rehearsal bash scripts/gpu_check.sh — the throughput arguments replace the GPU's.
#
# Each part has its own time limit, so a slow part cannot eat the others' time; the sweep gets what is
# left until DEADLINE seconds (330), then its lanes are stopped (SIGINT, then `bench cancel`), and what
# it finished is collated all the same: a run cut off there resumes from its checkpoint when this
# script runs again on the same machine (finished runs are kept).
set -u -o pipefail

COPY_DIR=${1:-}
OUT=${RESULTS:-results/gpu}
DEADLINE=${DEADLINE:-330}
DEVICE=${DEVICE:-cuda}
SWEEP=${SWEEP:-sweeps/fmnist-gpu.yaml}
THROUGHPUT=${THROUGHPUT:---device cuda}
PY=${PYTHON:-.venv/bin/python}
[ -x "$PY" ] || PY=python3
ROOT=${BENCH_ROOT:-runs}
export PYTHONUNBUFFERED=1 BENCH_ROOT="$ROOT" WANDB_MODE=${WANDB_MODE:-disabled}
mkdir -p "$OUT"
exec > >(tee "$OUT/check.log") 2>&1
start=$SECONDS
say() { echo "[gpu_check +$((SECONDS - start))s] $*"; }
left() { local s=$((DEADLINE - (SECONDS - start))); echo $((s > 1 ? s : 1)); }  # timeout 0 would mean none
bench() { "$PY" -m bench.cli.main "$@"; }

say "python $("$PY" -c 'import sys, torch; print(sys.version.split()[0], "torch", torch.__version__)')"
if [ "$DEVICE" = cuda ]; then
    "$PY" -c 'import torch; assert torch.cuda.is_available(), "no CUDA device"; print(torch.cuda.get_device_name())' || exit 1
    nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>/dev/null
fi

say "1/3 gpu-marked tests (100 s at most)"
timeout 100 "$PY" -m pytest -q -m gpu -p no:cacheprovider -o addopts="" tests >"$OUT/tests.log" 2>&1
say "tests: exit $? ($(tail -n 1 "$OUT/tests.log"))"

say "2/3 throughput: every method, ViT-B/16 at 224 px and ViT-nano/4 at 32 px (60 s at most)"
# shellcheck disable=SC2086  # THROUGHPUT is a list of arguments
timeout 60 "$PY" scripts/benchmark_throughput.py $THROUGHPUT --out "$OUT/throughput.csv"
say "throughput: exit $?"

name=$(basename "$SWEEP" .yaml)
say "3/3 $SWEEP until +${DEADLINE}s ($(left) s left)"
# SIGINT: `bench sweep --wait` then stops its lanes (they run in sessions of their own, which a
# SIGTERM to it would leave training); `bench cancel` for any lane still running after 30 s
timeout -s INT -k 30 "$(left)" "$PY" -m bench.cli.main sweep "$SWEEP" --executor local --parallel 2 --wait
code=$?
say "sweep: exit $code (124 or 130: stopped at the deadline; finished runs are kept)"
[ "$code" -eq 0 ] || bench cancel "$SWEEP" >/dev/null 2>&1

bench status "$SWEEP"
bench collate "$SWEEP" --out "$OUT/$name.csv"
report="$OUT/report"  # tarred below: bench writes inside results/ only
rm -rf "$report" && bench report "$SWEEP" --out "$report/report" >/dev/null
mkdir -p "$report/runs"
for run in "$ROOT/$name"/*/; do
    mkdir -p "$report/runs/$(basename "$run")"
    cp "$run"/{config.yaml,metrics.jsonl,summary.json,eval.json} "$report/runs/$(basename "$run")/" 2>/dev/null
done
mkdir -p "$report/report"  # a report that failed leaves the runs' files to tar
tar -czf "$OUT/report.tar.gz" -C "$report" report runs && rm -rf "$report"
say "done: $(ls "$OUT" | tr '\n' ' ')"
if [ -n "$COPY_DIR" ]; then
    sleep 1  # the log's last lines reach check.log
    mkdir -p "$COPY_DIR" && cp "$OUT"/* "$COPY_DIR"/
fi
