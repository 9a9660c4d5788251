"""Launching: sweeps into runs (sweepfile.py, sweep.py), the one submitit Job (job.py), executors
(executors.py, slurm.py), submitting, waiting and cancelling (submit.py, stop.py), SLURM's queue
(queue.py). Run states live in bench/runstate.py, run folders in bench/rundir.py."""
