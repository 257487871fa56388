"""Tune automatic masks on the demo model, on pairs kept apart from the evaluation.

Each `--variant NAME=SPEC` is a mask rule's `mask:` value (YAML flow mapping), rendered
as the second phase after the whole-tensor phase, beside the hand mask (the anchor's
person, inverted), the absolute threshold and the whole-tensor phase alone. The evaluation in
`benchmarks/consistency.py` uses seeds from 20,000,000; tuning defaults to 30,000,000+.

    OMP_NUM_THREADS=1 python benchmarks/automask_tuning.py --pairs 20 --second-phase LATENTS \\
        --variant "mid=auto: attention" --variant "fine=auto: attention, layers: [IN1, IN2, OUT9, OUT10, OUT11]"
"""

from __future__ import annotations

import sys
from pathlib import Path

# tools/ is not installed: import it from the checkout root
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import argparse
import statistics
import time

from framegen.models.demo import load_pipeline
from tools.demo.evaluate import Evaluator, edits

PHASES = (
    '[{{mode: full, layers: [{first}], steps: "1-{phase}"}}, '
    '{{mode: mask, layers: [{second}], steps: "{after}-{steps}", mask: {{%s}}}}]'
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pairs", type=int, default=20)
    parser.add_argument("--first-seed", type=int, default=30_000_000)
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--first-phase", default="IN8, OUT3, OUT4, OUT5, OUT6")
    parser.add_argument("--second-phase", default="LATENTS")
    parser.add_argument("--threshold", type=float, default=0.13, help="the absolute threshold row's (the paper's 0.13)")
    parser.add_argument(
        "--variant", action="append", default=[], help="NAME=MASK, e.g. 't3=auto: attention, threshold: 0.3'"
    )
    args = parser.parse_args()

    start = time.perf_counter()
    templates = {"whole": '[{{mode: full, layers: [{first}], steps: "1-{phase}"}}]'}
    specs = {
        "whole": "(none)",
        "whole + hand mask": "image: mask.png",
        "whole + threshold": f"(threshold {args.threshold})",
    }
    for variant in args.variant:
        name, spec = variant.split("=", 1)
        templates[name], specs[name] = PHASES % spec.replace("{", "{{").replace("}", "}}"), spec
    evaluator = Evaluator(
        load_pipeline(), steps=args.steps, threshold=args.threshold,
        first_phase=args.first_phase, second_phase=args.second_phase,
        templates=templates, settings=list(specs),
    )  # fmt: skip
    rows = {name: [] for name in specs}
    for edit in edits(args.pairs, first_seed=args.first_seed):
        scored = evaluator.score(edit)
        for name in specs:
            rows[name].append(scored[name])

    def mean(values):
        values = [v for v in values if v is not None]
        return statistics.fmean(values) if values else float("nan")

    print(
        f"demo model, {args.pairs} pairs from seed {args.first_seed}, {args.steps} steps, "
        f"whole {args.first_phase} for steps 1-{evaluator.phase}, then a mask on {args.second_phase}"
    )
    print("| setting | mask | background MSE | foreground MSE | edit success |")
    print("|---|---|---|---|---|")
    for name, results in rows.items():
        print(
            f"| {name} | `{specs[name]}` | {mean(r['background_mse'] for r in results):.1f} "
            f"| {mean(r['foreground_mse'] for r in results):.1f} "
            f"| {sum(r['edited'] for r in results) / len(results):.0%} |"
        )
    print(f"wall time {time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
    main()
