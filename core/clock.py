"""Where a run stands, as the methods see it: a `Clock` (fraction of the budget spent, optimizer
steps done, the recipe and the method's paper run length), passed to every method's `after_step`,
and the EMA momentum of a paper's schedule read from it.

Under `recipe: budget` (the default) every schedule reads the fraction of the budget spent: a
resumed run needs no fast-forward, a changed budget needs no new epoch count, and the schedule
ends exactly when the budget does. data2vec 2.0's EMA ramp over 100k of 375,300 updates is the
first 26.6 % of any run. An EMA momentum m is a time constant of 1/(1-m) updates; it keeps its
ratio to the paper's run length:

    tau_run = tau_paper x run_updates / paper_updates,  m_run = max(0, 1 - 1/tau_run)

(data2vec's 0.9998 is 5,000 of ViT-B's 375,300 updates, 1.3 %: in a 100-step run, 1.3 steps,
m = 0.25). Under `recipe: paper` the schedules read step / paper_updates — the run follows the
first steps of the paper's own schedule — and momenta are used as the paper gives them. The
learning-rate and weight-decay schedules that read the same clock are the harness's
(bench/train/schedules.py).
"""

from dataclasses import dataclass


@dataclass(frozen=True)
class Clock:
    """Where a run stands after `step` optimizer steps, `progress` of its budget spent."""

    progress: float
    step: int
    recipe: str = "budget"
    paper_updates: int = 1

    def position(self) -> float:
        """Where the paper's schedules are read: the fraction of this budget (budget), or of the
        paper's run (paper), in [0, 1]."""
        p = self.progress if self.recipe == "budget" else self.step / self.paper_updates
        return min(max(p, 0.0), 1.0)

    def run_updates(self) -> float:
        """The run's length in updates: exact for step budgets, the steps-per-progress estimate for
        FLOP and time budgets (their steps cost the same but for mask sizes; a device-hour budget's
        first steps also carry the FLOP counter's overhead, so its estimate starts low). Before the
        first step: the paper's length (no scaling)."""
        return self.step / self.progress if self.progress > 0 else float(self.paper_updates)

    def ema(self, start: float, end: float, horizon: float | None = 1.0) -> float:
        """The momentum of a paper's EMA schedule: linear from `start` to `end` over `horizon` of the
        paper's run (None: over the whole of this run), then held; under `recipe: budget` scaled
        through its time constant to this run's length."""
        p = self.progress if horizon is None else self.position() / horizon
        m = start + min(max(p, 0.0), 1.0) * (end - start)
        if self.recipe == "paper" or m >= 1.0:
            return m
        return scale_momentum(m, self.run_updates() / self.paper_updates)


def scale_momentum(m: float, ratio: float) -> float:
    """The momentum whose time constant 1/(1-m) is `ratio` times as long; 0 (the teacher is the
    student) once it is shorter than one update."""
    if m >= 1.0:
        return 1.0
    tau = ratio / (1.0 - m)
    return max(0.0, 1.0 - 1.0 / tau) if tau > 0 else 0.0
