"""How long launching and watching a large sweep takes on SLURM (issue 5's targets: ≤ 2 s to
expand and submit 1,000 runs, one sbatch per array; ≤ 1 s for `bench status` over them).

Needs a SLURM cluster that answers (scripts/slurm-local.sh up). The jobs are submitted held
(sbatch --hold) and cancelled at the end: nothing trains.

    python scripts/benchmark_launch.py --runs 1000 --repeat 3 --out results/launch_speed.csv

Each figure is the median of --repeat fresh sweeps (this VM's disk makes single timings noisy).
"""

import argparse
import csv
import importlib
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

from bench.launch import slurm
from bench.launch.executors import LaunchOptions
from bench.launch.queue import Queue
from bench.launch.submit import launch
from bench.launch.sweep import load_sweep
from bench.results.status import status_table

BASE = {
    "backbone": "vit_nano_patch4",
    "data": {"name": "synthetic", "image_size": 16},
    "optim.batch_size": 16,
    "ijepa": {"predictor_depth": 1, "predictor_width": 48, "mask": {"num_targets": 2, "min_keep": 0}},
}


def timed(fn):
    t0 = time.perf_counter()
    value = fn()
    return value, time.perf_counter() - t0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=1000)
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--out", type=Path, default=None, help="CSV to write (e.g. results/launch_speed.csv)")
    args = parser.parse_args()
    if not slurm.available():
        sys.exit("error: sbatch is not on PATH (scripts/slurm-local.sh up starts a local cluster)")
    _, import_s = timed(lambda: importlib.import_module("bench.train.methods"))  # torch, timm: validation builds models
    trials = [measure(args.runs) for _ in range(args.repeat)]
    rows = [("import torch + timm (once per process)", args.runs, import_s, "")]
    rows += [
        (what, runs, statistics.median(t[i][2] for t in trials), target)
        for i, (what, runs, _, target) in enumerate(trials[0])
    ]
    for what, runs, seconds, target in rows:
        print(f"{what:55s} {runs:6d} runs  {seconds:7.3f} s" + (f"  (target <= {target} s)" if target else ""))
    if args.out:
        with args.out.open("w", newline="") as f:
            writer = csv.writer(f)
            writer.writerow(["what", "runs", "seconds", "target_s"])
            writer.writerows((w, r, f"{s:.3f}", t) for w, r, s, t in rows)


def measure(n_runs: int) -> list[tuple]:
    work = Path(tempfile.mkdtemp(prefix="bench-launch-"))
    spec_file = work / "big.yaml"
    spec_file.write_text(
        yaml.safe_dump(
            {
                "name": "big",
                "budget": {"kind": "steps", "value": 10},
                "base": BASE,
                "seeds": list(range(n_runs)),
                "slurm": {"additional": {"hold": True}},  # held: submission only
            }
        )
    )
    rows = []
    try:
        spec, expand_s = timed(lambda: load_sweep(spec_file))
        options = LaunchOptions(slurm=slurm.slurm_config(spec.slurm))
        submitted, submit_s = timed(lambda: launch(spec, work / "runs", "slurm", options))
        arrays = sorted({slurm.array_id(job[k]) for _, job in submitted for k in ("job_id", "eval_job_id")})
        rows.append(("expand sweep (load_sweep)", n_runs, expand_s, ""))
        rows.append((f"submit: {len(arrays)} sbatch calls (launch)", n_runs, submit_s, ""))
        rows.append(("expand + submit", n_runs, expand_s + submit_s, 2.0))
        table, status_s = timed(lambda: status_table(work / "runs" / "big", Queue()))
        assert len(table) == n_runs and set(table["state"]) == {"submitted"}, table["state"].value_counts()
        rows.append(("bench status table (status_table, one squeue)", n_runs, status_s, 1.0))
        bench = str(Path(sys.executable).parent / "bench")
        cli = [bench, "status", "big", "--root", str(work / "runs")]
        done, cli_s = timed(lambda: subprocess.run(cli, capture_output=True, text=True))
        assert done.returncode == 0, done.stderr
        rows.append(("`bench status` command, process start to exit", n_runs, cli_s, ""))
        again, resubmit_s = timed(lambda: launch(spec, work / "runs", "slurm", options))
        assert again == []
        rows.append(("`bench sweep` again: nothing to submit", n_runs, resubmit_s, ""))
    finally:
        if "arrays" in locals():
            subprocess.run(["scancel", *arrays], check=False)
        shutil.rmtree(work, ignore_errors=True)

    return rows


if __name__ == "__main__":
    main()
