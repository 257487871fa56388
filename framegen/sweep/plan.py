"""What a sweep renders: its runs, each a `swap:` block as a storyboard writes it.

`plan_runs` lays out one of the paper's protocols (the probe, whole-tensor subsets x
step ranges, a mask or threshold phase after them); `run_specs` resolves a run's block
through the storyboard's own schema and resolver, exactly as a pasted best.yaml would be.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from pydantic import TypeAdapter

from ..engine.digest import digest
from ..engine.specs import RuleSpec
from ..errors import InvalidInput
from ..storyboard import Storyboard, rule_spec
from ..storyboard.schema import Rule


@dataclass(frozen=True)
class Run:
    rules: tuple[dict, ...]  # the `swap:` block, as a storyboard writes it
    table: str  # which table of sweep.md holds it ("" for the no-swap baseline)
    row: str
    col: str

    @property
    def key(self) -> str:
        """Stable text of the rules: what sweep.csv rows are matched by on resume."""
        return json.dumps(self.rules, sort_keys=True, separators=(",", ":"))

    @property
    def slug(self) -> str:
        return digest(self.rules, 12)


def subsets(names: list[str], include_empty: bool) -> list[tuple[str, list[str]]]:
    """Every subset as (bit string, layers); bit i is `names[i]`, counted from 00..01."""
    out = []
    for number in range(0 if include_empty else 1, 2 ** len(names)):
        bits = format(number, f"0{len(names)}b")
        out.append((bits, [n for n, b in zip(names, bits) if b == "1"]))
    return out


def _full(layers: list[str], first: int, last: int) -> dict:
    return {"mode": "full", "layers": list(layers), "steps": f"{first}-{last}"}


def plan_runs(
    *,
    total_steps: int,
    probe: list[str] | None = None,
    probe_mode: str = "full",
    probe_steps: tuple[int, int] | None = None,
    layers: list[str] | None = None,
    ranges: list[tuple[int, int]] = (),
    use_subsets: bool = False,
    then: str | None = None,
    then_layers: list[str] | None = None,
    thresholds: list[float] = (),
    reduce: str = "element",
    relative: bool = False,
    mask: dict | None = None,
) -> list[Run]:
    """The no-swap baseline, then the runs of one protocol:

    - probe: each layer alone, full (or its keys and values: `probe_mode` kv), at every
      step or over `probe_steps`;
    - whole: `layers` (or each subset of them) full over each step range;
    - then mask / threshold: `layers` full over each range, then `then_layers` (or each
      subset, the empty one included) by mask or by each threshold for the rest."""
    runs = [Run((), "", "no swap", "")]
    if probe is not None:
        first, last = probe_steps or (1, total_steps)
        col = "all steps" if (first, last) == (1, total_steps) else f"steps {first}-{last}"
        rule = {"mode": probe_mode, "steps": f"{first}-{last}"}
        return runs + [Run(({**rule, "layers": [n]},), "probe", n, f"{probe_mode}, {col}") for n in probe]
    for first, last in ranges:
        col = f"{first}-{last}"
        if then is None:
            for bits, chosen in subsets(layers, False) if use_subsets else [("", layers)]:
                runs.append(Run((_full(chosen, first, last),), "whole", bits or "+".join(layers), col))
            continue
        if last >= total_steps:
            raise InvalidInput(f"--then {then}: the phase {col} leaves no later steps (render.steps is {total_steps})")
        later = f"{last + 1}-{total_steps}"
        for bits, chosen in subsets(then_layers, True) if use_subsets else [("", then_layers)]:
            second = {"layers": chosen, "steps": later}
            if then == "mask":
                rules = (_full(layers, first, last),) + (({"mode": "mask", **second, "mask": mask},) if chosen else ())
                runs.append(Run(rules, "mask", bits or "+".join(then_layers), col))
            else:
                for threshold in thresholds:
                    rule = {"mode": "threshold", **second, "threshold": threshold}
                    if reduce != "element":
                        rule["reduce"] = reduce
                    if relative:
                        rule["relative"] = True
                    rules = (_full(layers, first, last),) + ((rule,) if chosen else ())
                    table = f"threshold {bits}" if bits else "threshold"
                    runs.append(Run(rules, table, f"{threshold:g}", col))
    return list({run.key: run for run in runs}.values())  # the empty subset repeats per threshold


def run_specs(run: Run, board: Storyboard) -> list[RuleSpec]:
    """The run's rules resolved like a storyboard's (schema, then steps and mask paths)."""
    rules = TypeAdapter(list[Rule]).validate_python(list(run.rules))
    return [
        rule_spec(rule, board.spec.render.steps, board.folder, ("sweep", "run", "swap", i))
        for i, rule in enumerate(rules)
    ]


def describe(run: Run) -> str:
    """`full OUT3+OUT4 1-20; mask OUT3+OUT5 21-50` — a run's rules on one line."""
    parts = []
    for rule in run.rules:
        text = f"{rule['mode']} {'+'.join(rule['layers'])} {rule['steps']}"
        if rule["mode"] == "threshold":
            text += (
                f" < {rule['threshold']:g}"
                + (" relative" if rule.get("relative") else "")
                + (f" ({rule['reduce']})" if "reduce" in rule else "")
            )
        parts.append(text)
    return "; ".join(parts) or "no swap"
