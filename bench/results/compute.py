"""Compute against accuracy: a row per budget, a column per configuration (the I-JEPA paper's
comparison, as a table)."""

import pandas as pd

from bench.results.summary import labels


def compute_table(summary: pd.DataFrame, metric: str = "linear") -> pd.DataFrame:
    """Compute against accuracy: a row per budget (budget 0: each method's initialisation), a column
    per configuration — mean ± std over seeds, then in brackets the gain over its own init with its
    std ("within noise" when |gain| <= 2 std; "barely moved" when the encoder's weights moved < 5 %; "collapsed"
    when its final embeddings have, summary.py `collapsed`) —,
    one per reference row, and the ranking of the budget ("a > b = c": b and c not separated by
    Welch's t-test at p < 0.05)."""
    runs = summary[summary["seeds"].notna()].copy()
    runs["label"] = labels(summary)[runs.index]
    gain = f"gain_{metric}"

    def cell(row) -> str:
        if pd.isna(row[metric]):
            return ""
        std = row.get(f"{metric}_std")
        text = f"{row[metric]:.2f} ± {std:.2f}" if pd.notna(std) else f"{row[metric]:.2f}"
        if pd.notna(row.get(gain)):
            g_std = row.get(f"{gain}_std")
            text += f" ({row[gain]:+.2f}" + (f" ± {g_std:.2f}" if pd.notna(g_std) else "")
            text += ", within noise)" if row.get(f"{gain}_noise") is True else ")"
        if row.get("barely_moved") is True:
            text += " barely moved"
        if row.get("collapsed") is True:
            text += " collapsed"
        return text

    runs["cell"] = runs.apply(cell, axis=1)
    kind = runs["budget_kind"].iloc[0] if len(runs) else "budget"
    inits = runs[runs["role"] == "init"] if "role" in runs else runs.iloc[0:0]
    runs = runs.drop(inits.index)
    table = runs.pivot_table(index="budget", columns="label", values="cell", aggfunc="first", sort=False)
    if len(inits):  # budget 0: each configuration's column shows its method's init
        keys = [k for k in ("method", "backbone", "encoder") if k in runs]
        of = runs.drop_duplicates("label").set_index("label")[keys]
        cells = {}
        for label in table.columns:
            match = inits[(inits[keys] == of.loc[label, keys]).all(axis=1)]
            cells[label] = match["cell"].iloc[0] if len(match) else None
        table = pd.concat([pd.DataFrame(cells, index=[0.0]), table])
        table.index.name = "budget"
    table = table.sort_index()
    if "rank" in runs and runs["rank"].notna().any():
        table["ranking"] = [ranking(runs[(runs["budget"] == b) & runs["rank"].notna()]) for b in table.index]
    table = table.reset_index().rename(columns={"budget": f"budget ({kind})"})
    for _, ref in summary[summary["seeds"].isna()].iterrows():
        table[ref["method"]] = f"{ref[metric]:.2f}" if metric in ref and pd.notna(ref[metric]) else ""
    table.columns.name = None
    return table


def ranking(rows: pd.DataFrame) -> str:
    """'a > b = c': best first; '=' where the two neighbours are not separated (Welch, p >= 0.05)."""
    rows = rows.sort_values("rank")
    text = ""
    for i, (_, row) in enumerate(rows.iterrows()):
        text += row["label"]
        if i + 1 < len(rows):
            text += " = " if row["tied_next"] else " > "
    return text
