"""Launching: sweeps into runs, the one submitit Job, executors, SLURM, run states, cancel."""
