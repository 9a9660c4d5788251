"""Results: tables over a sweep's run folders, and the plots and reports made of them.

- `runs`: read the run folders once, checked (`read_runs`, `tabled_runs`); `eval_columns`.
- `status`: where each run stands (`bench status`).
- `collate`: the runs table, a row per run with its gains, sorted by the chosen metric.
- `summary`: a row per configuration, mean and std over seeds, gains and ranking; `labels`.
- `compute`: compute against accuracy, a row per budget.
- `board`: the narrow leaderboard a terminal shows.
- `leaderboards`: the three tables together, --metric's check, CSV and Markdown files.
- `plots`, `report`: figures, a Markdown or HTML page, a W&B Report.
"""
