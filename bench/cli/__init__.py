"""The `bench` command (bench/cli/main.py holds the app and its commands, a module per group).

    bench sweep sweeps/masks.yaml     # launch a sweep (returns at once; --wait to block); masks.yaml: the same
    bench status sweeps/masks.yaml    # where every run stands
    bench cancel sweeps/masks.yaml    # cancel the jobs of a sweep's active runs
    bench collate sweeps/masks.yaml   # write the leaderboards (CSV, Markdown) and print one
    bench report sweeps/masks.yaml    # leaderboards, plots and a page (md or html); --wandb: a W&B Report
    bench eval runs/masks/RUN_ID      # (re-)evaluate a run folder, or every run of a sweep folder
    bench health runs/masks           # health signals for runs trained before training logged them
    bench train -c my.yaml optim.lr=5e-4 --out runs/scratch/one   # one run, in this process
    bench list                        # the registered methods, backbones, datasets and executors

User mistakes (bad YAML, unknown keys, missing data) print one line on stderr and exit with 2.
A sweep whose runs did not all finish, when it ran them (--executor debug) or waited for them
(--wait), says so in one line and exits with 1. A Ctrl-C in `bench sweep` or `bench train` stops
the jobs it started (their runs resume on the next call) and exits with 130.

The commands parse their options, call the packages that decide (bench.launch, bench.results,
bench.evals) and print; each module imports what it needs when it runs, so that `bench --help`
stays quick.
"""
