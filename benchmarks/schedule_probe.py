"""How much of a demo-shaped model's layout do whole-tensor swaps hold? (issue #3 probes)

    python benchmarks/schedule_probe.py WEIGHTS_DIR [PAIRS]

For (seed, edit) pairs from the scene grammar (seeds 20,000,000+, like
benchmarks/consistency.py): background MSE and edit success with no swap, whole OUT3+OUT4
and whole IN8+OUT3-6 for the first 40% of steps, and every cross-attention layer for the
first 20% / 40% of steps (the most any whole-tensor phase that short can hold). Used to
compare noise schedules (`python -m tools.demo.finetune --shift S`) in docs/demo-model.md.
"""

import sys
from pathlib import Path

# tools/ is not installed: import it from the checkout root
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import statistics
import time

from diffusers import StableDiffusionPipeline

from tools.demo.evaluate import SETTINGS, Evaluator, edits

TEXT = "IN1, IN2, IN4, IN5, IN7, IN8, MID, OUT3, OUT4, OUT5, OUT6, OUT7, OUT8, OUT9, OUT10, OUT11"
SETTINGS["all text 1-6"] = "[{{mode: full, layers: [" + TEXT + '], steps: "1-6"}}]'
SETTINGS["all text 1-12"] = "[{{mode: full, layers: [" + TEXT + '], steps: "1-{phase}"}}]'
NAMES = ["no swap", "whole OUT3+OUT4", "whole IN8+OUT3-6", "all text 1-6", "all text 1-12"]


def main() -> None:
    weights, pairs = sys.argv[1], int(sys.argv[2]) if len(sys.argv) > 2 else 8
    pipe = StableDiffusionPipeline.from_pretrained(weights, local_files_only=True)
    pipe.set_progress_bar_config(disable=True)
    evaluator = Evaluator(pipe, settings=NAMES)
    background = {name: [] for name in NAMES}
    edited = {name: 0 for name in NAMES}
    start = time.perf_counter()
    for edit in edits(pairs):
        scored = evaluator.score(edit)
        for name in NAMES:
            background[name].append(scored[name]["background_mse"])
            edited[name] += scored[name]["edited"]
    base = statistics.fmean(background["no swap"])
    for name in NAMES:
        mean = statistics.fmean(background[name])
        print(f"{name:20s} {mean:8.1f} {base / mean:5.2f}x edit {edited[name]}/{pairs}")
    print(f"wall time {time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
    main()
