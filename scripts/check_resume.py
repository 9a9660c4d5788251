"""Resume check on a device: for every method and both data paths (per image on the CPU, and
`data.on_device`: batches made on the device), a tiny run pre-empted after step 3 and resumed, and
the same pre-empted run resumed after its checkpoint.pt was damaged (so from checkpoint.prev.pt),
must equal the uninterrupted run — every metrics record, the final loss and every weight. A second
uninterrupted run shows whether the device is deterministic at all (deterministic algorithms are
asked for; cuBLAS needs CUBLAS_WORKSPACE_CONFIG for that).

    CUBLAS_WORKSPACE_CONFIG=:4096:8 python scripts/check_resume.py cuda results.json
    python scripts/check_resume.py cpu results.json

The tests do the same on the CPU (tests/train/test_engine.py); this is for the CUDA path (bf16 autocast,
the checkpoint read onto the CPU, the CUDA generator's state restored), which CI cannot reach.
"""

import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.train import devices, engine, loop  # noqa: E402
from tests.conftest import TINY_METHODS, tiny_config  # noqa: E402

RESUME = {"budget.value": 8, "checkpoint_every_s": 0, "log_every": 3}  # a checkpoint every step


def records(run: Path) -> list[tuple]:
    """Every record's step, loss (None in a health-only record) and health signals."""
    lines = (run / "metrics.jsonl").read_text().splitlines()
    return [
        (r["step"], r.get("loss"), sorted((k, v) for k, v in r.items() if k.startswith("health/")))
        for r in map(json.loads, lines)
    ]


def outcome(run: Path) -> dict:
    summary = json.loads((run / "summary.json").read_text())
    weights = torch.load(run / "checkpoint.pt", map_location="cpu", weights_only=True)["method"]
    return {"records": records(run), "final_loss": summary["final_loss"], "weights": weights}


def same(a: dict, b: dict) -> dict:
    """Equal records, final loss and weights; the largest weight difference when they are not."""
    diff = max(float((a["weights"][k].float() - b["weights"][k].float()).abs().max()) for k in a["weights"])
    return {
        "records": a["records"] == b["records"],
        "final_loss": a["final_loss"] == b["final_loss"],
        "weights": diff == 0.0,
        "max_weight_diff": diff,
    }


def check(method: str, device: str, on_device: bool, folder: Path) -> dict:
    cfg = tiny_config(method, device=device, **RESUME, **{"data.on_device": on_device})
    engine.train(cfg, folder / "straight")
    engine.train(cfg, folder / "again")
    asks = iter(range(1, 100))
    try:
        engine.train(cfg, folder / "stopped", stop=lambda: next(asks) == 3)
        raise AssertionError("the run was not pre-empted")
    except loop.Preempted:
        pass
    shutil.copytree(folder / "stopped", folder / "damaged")
    engine.train(cfg, folder / "stopped")  # resumes from checkpoint.pt (step 3)
    ckpt = folder / "damaged" / "checkpoint.pt"
    ckpt.write_bytes(ckpt.read_bytes()[: ckpt.stat().st_size // 2])
    engine.train(cfg, folder / "damaged")  # resumes from checkpoint.prev.pt (step 2)
    straight = outcome(folder / "straight")
    return {
        "method": method,
        "device": devices.device_name(devices.select_device(cfg)),
        "precision": cfg.precision,
        "data_on_device": on_device,
        "deterministic": same(straight, outcome(folder / "again")),
        "resumed": same(straight, outcome(folder / "stopped")),
        "from_previous": same(straight, outcome(folder / "damaged")),
        "damaged_kept": (folder / "damaged" / "checkpoint.pt.damaged").is_file(),
    }


def main() -> None:
    device, out = sys.argv[1], Path(sys.argv[2])
    torch.use_deterministic_algorithms(True)
    rows = []
    for method in TINY_METHODS:
        for on_device in (False, True):  # the CPU data path and the device path (data.on_device)
            t0 = time.perf_counter()
            with tempfile.TemporaryDirectory() as tmp:
                row = check(method, device, on_device, Path(tmp))
            row["seconds"] = round(time.perf_counter() - t0, 1)
            rows.append(row)
            print(json.dumps(row), flush=True)
    out.write_text(json.dumps(rows, indent=2) + "\n")
    ok = all(
        r[k]["records"] and r[k]["weights"] and r[k]["final_loss"] for r in rows for k in ("resumed", "from_previous")
    )
    print("resume equals the uninterrupted run:", ok)
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
