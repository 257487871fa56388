"""`framegen sweep`: the paper's search for what to swap, automated for any model.

The paper found its settings by hand for one model (probe each layer alone, then every
subset of the composition layers over a few step ranges, then a mask or threshold
phase). A sweep renders one anchor, caches the union of every run's (layer, step)
pairs once, and renders the chosen frame under each run's rules:

    plan.plan_runs(...)        -> the runs, each a `swap:` block plus its place in a table
    run.Sweep(...).run()       -> anchor pass, then every run not already in sweep.csv
    summary.write_summary(...) -> sweep.md, contact sheets, best.yaml (renders the same numbers)
"""

from .plan import Run, describe, plan_runs, subsets
from .run import Sweep
from .summary import write_summary

__all__ = ["Run", "Sweep", "describe", "plan_runs", "subsets", "write_summary"]
