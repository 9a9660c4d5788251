"""The leaderboard a terminal shows (`bench collate`): a row per configuration, 100 characters wide."""

import pandas as pd

from bench.results.summary import NOISE_STDS, labels

BOARD_METRICS = {"knn@20": "k-NN@20", "linear": "linear", "linear_1%": "1 %"}
BOARD_WIDTH = 100  # a terminal's width, with room to spare on most
NOISE_MARK = "~"


def narrow_board(summary: pd.DataFrame, metric: str = "linear", width: int = BOARD_WIDTH) -> pd.DataFrame:
    """The leaderboard a terminal shows, at most `width` characters a line: a row per configuration —
    its name, budget, steps, k-NN@20, linear and 1 % top-1 (mean ± std over seeds) and the gain of
    each over its method's own init (Δ, mean over seeds; `~` where within noise) — then each
    method's init (budget `init`) and the reference rows. Within a budget, configurations come in
    the order of their ranking by `metric` (summarize's). Names too long for the width are shortened
    in the middle. The wide tables (every column, the gains' std, full names) are the CSV and
    Markdown files; `board.attrs["note"]` says what Δ and ~ mean."""
    rows = summary.copy()
    rows["configuration"] = labels(summary) if "seeds" in rows else rows["method"]
    configs = rows[rows["seeds"].notna()] if "seeds" in rows else rows.iloc[0:0]
    refs = rows.drop(configs.index)
    init = configs["role"] == "init" if "role" in configs else pd.Series(False, index=configs.index)
    order = [c for c in ("rank", metric) if c in configs]
    heads = configs[~init].sort_values(["budget", *order], ascending=[True, *[c == "rank" for c in order]])
    metrics = [m for m in BOARD_METRICS if m in rows and rows[m].notna().any()]
    spread = any(f"{m}_std" in configs and configs[f"{m}_std"].notna().any() for m in metrics)

    def number(value, std=None, sign: str = "") -> str:
        if pd.isna(value):
            return "-"
        if pd.notna(std):
            return f"{value:{sign}.1f}±{std:.1f}"
        return f"{value:{sign}.1f}" if spread else f"{value:{sign}.2f}"

    def line(row, budget: str) -> dict:
        out = {"configuration": row["configuration"], "budget": budget}
        out["steps"] = "-" if pd.isna(row.get("steps")) else f"{row['steps']:.0f}"
        for m in metrics:
            out[BOARD_METRICS[m]] = number(row[m], row.get(f"{m}_std"))
        for m in metrics:
            gain = row.get(f"gain_{m}")
            cell = "" if pd.isna(gain) else number(gain, sign="+")
            out[f"Δ{BOARD_METRICS[m]}"] = cell + (NOISE_MARK if row.get(f"gain_{m}_noise") is True else "")
        return out

    lines = [line(r, f"{r['budget']:g}") for _, r in heads.iterrows()]
    lines += [line(r, "init") for _, r in configs[init].iterrows()]
    lines += [line(r, "-") for _, r in refs.iterrows()]
    board = pd.DataFrame(lines)
    if board.empty:
        return board
    board = board[[c for c in board.columns if not c.startswith("Δ") or board[c].ne("").any()]]
    # two characters between columns (rich's padding; plain text needs one)
    others = sum(max(len(c), board[c].str.len().max()) + 2 for c in board.columns if c != "configuration")
    room = max(width - others, len("configuration"))
    board["configuration"] = board["configuration"].map(lambda name: shorten(name, room))
    notes = []
    if any(c.startswith("Δ") for c in board.columns):
        notes.append("Δ: gain over the method's own init, paired by seed")
    if board.apply(lambda col: col.str.endswith(NOISE_MARK)).any().any():
        notes.append(f"{NOISE_MARK}: within noise, |gain| <= {NOISE_STDS:g} std over seeds")
    if notes:
        board.attrs["note"] = "; ".join(notes)
    return board


def shorten(text: str, room: int) -> str:
    """`text` cut in the middle to `room` characters ("ijepa [tea…ets=4)"); as it is when it fits."""
    if len(text) <= room:
        return text
    head = (room - 1) // 2
    return text[:head] + "…" + text[len(text) - (room - 1 - head) :]
