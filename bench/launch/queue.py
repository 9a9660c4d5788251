"""What SLURM's queue says about jobs, read lazily: the `QueueView` that bench/runstate.py's
`run_state` joins run folders with. No submitit here (bench/launch/slurm.py imports it only to submit).
"""

from bench.launch import slurm


class Queue:
    """What the cluster says about jobs: squeue asked once (lazily: a local sweep never asks),
    sacct only for jobs squeue has forgotten, and never again once it said accounting is off."""

    def __init__(self) -> None:
        self._jobs: dict[str, str] | None = None
        self.answered = True
        self._accounting = True

    def get(self, job_id: str | None) -> str | None:
        if job_id is None:
            return None
        if self._jobs is None:
            jobs = slurm.queue() if slurm.available() else None
            self.answered = jobs is not None
            self._jobs = jobs or {}
        return self._jobs.get(str(job_id))

    def active(self, job_id: str | None) -> bool:
        return slurm.is_active(self.get(job_id))

    def waiting(self, job_id: str | None) -> bool:
        return slurm.is_waiting(self.get(job_id))

    def final(self, job_id: str | None) -> str:
        """SLURM's last word on a job: squeue's while it remembers, then sacct's."""
        if job_id is None:
            return ""
        known = self.get(job_id)
        if known is None and self._accounting:
            states = slurm.accounted([str(job_id)])
            self._accounting = states is not None
            known = (states or {}).get(str(job_id))
        return known or ""
