"""Motion with `demo-control` (issue #15): does the person land where the control image
says, and which swap setting keeps the background while the person moves?

    python benchmarks/walk.py [--pairs 20] [--first-seed 60000200] [--keyframes 3] [--steps 30] [--guidance 3]

Each (scene, path) pair is a scene of the grammar (seeds held apart from the demo model's
and the ControlNet's training, 0..7,999, and from the ControlNet's samples and the
shipped walk, 60,000,000-60,000,199) whose person walks from the left (the anchor) to the
right in `--keyframes` steps, each step's control image the person's silhouette there
(tools/demo/walk.py). Per setting it prints how well the person lands on the silhouette
(IoU of the demo segmenter's person with the silhouette) and the background MSE of each
frame against the anchor, over pixels that are background in both.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tools/ is not installed

import argparse
import statistics
import tempfile
import time

import numpy as np

from framegen.models.demo import segmenter_path
from framegen.models.load import load_pipeline
from framegen.output.measure import compare
from framegen.output.segmenters import RembgSegmenter
from framegen.run.anchor import render_anchor
from framegen.run.prepare import prepare
from framegen.storyboard import ModelSpec, load_storyboard
from tools.demo.walk import walk

MODEL = {"id": "demo", "scheduler": "ddim", "controlnet": [{"id": "demo-control"}]}
WHOLE = ["IN8", "OUT3", "OUT4", "OUT5", "OUT6"]
SETTINGS = {  # name -> a frame's swap rules; {phase}: the last step of the whole-tensor phase
    "no swap": lambda phase, steps: [],
    "whole IN8+OUT3-6": lambda phase, steps: [{"mode": "full", "layers": WHOLE, "steps": f"1-{phase}"}],
    "auto: control mask": lambda phase, steps: [
        {"mode": "mask", "layers": WHOLE, "steps": "all", "mask": {"auto": "control"}}
    ],
    "local blend, auto: control": lambda phase, steps: [
        {"mode": "mask", "layers": ["LATENTS"], "steps": "all", "mask": {"auto": "control"}}
    ],
}


def iou(a: np.ndarray, b: np.ndarray) -> float:
    union = (a | b).sum()
    return float((a & b).sum() / union) if union else 1.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pairs", type=int, default=20)
    parser.add_argument("--first-seed", type=int, default=60_000_200)
    parser.add_argument("--keyframes", type=int, default=3)
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--guidance", type=float, default=3.0)
    args = parser.parse_args()

    start = time.perf_counter()
    pipe = load_pipeline(ModelSpec(**MODEL, device="cpu"))
    segmenter = RembgSegmenter("demo", segmenter_path())
    phase = round(0.4 * args.steps)
    anchor_iou, lands, mse = [], {s: [] for s in SETTINGS}, {s: [] for s in SETTINGS}
    for seed in range(args.first_seed, args.first_seed + args.pairs):
        caption, silhouettes, scenes = walk(seed, args.keyframes)
        with tempfile.TemporaryDirectory() as folder:
            for i, image in enumerate(silhouettes):
                image.save(Path(folder) / f"{i:04d}.png")
            frames = [
                {"name": f"{name}-{k}", "control": [f"{k:04d}.png"], "swap": rules(phase, args.steps)}
                for name, rules in SETTINGS.items()
                for k in range(1, args.keyframes + 1)
            ]
            spec = {
                "version": 1, "model": MODEL, "render": {"steps": args.steps, "guidance": args.guidance, "seed": seed},
                "anchor": {"prompt": caption, "control": ["0000.png"]}, "frames": frames,
                "report": {"background": {"segmenter": "none"}},
            }  # fmt: skip
            prepared = prepare(load_storyboard(spec, folder=folder), pipe)
            renderer = prepared.renderer()
            anchor = render_anchor(prepared, renderer)
            anchor_person = segmenter.person(anchor)
            anchor_iou.append(iou(anchor_person, scenes[0].person_mask))
            for plan in prepared.board.frames:
                setting, k = plan.name.rsplit("-", 1)
                image = renderer.frame(*prepared.shot(plan), control=prepared.conditioning.images(plan.control)).image
                person = segmenter.person(image)
                lands[setting].append(iou(person, scenes[int(k)].person_mask))
                mse[setting].append(compare(anchor, image, anchor_person, person)["background_mse"])
        print(f"pair {seed}: " + ", ".join(f"{s} IoU {lands[s][-1]:.2f}" for s in SETTINGS), flush=True)

    print(
        f"\ndemo + demo-control, 64x64, {args.pairs} (scene, path) pairs (seeds {args.first_seed}+), "
        f"{args.keyframes} keyframes each, {args.steps} DDIM steps, guidance {args.guidance}, CPU"
    )
    print(
        f"anchor on its silhouette: IoU median {statistics.median(anchor_iou):.2f}, "
        f"mean {statistics.mean(anchor_iou):.2f}\n"
    )
    print("| frames' swaps | IoU with the silhouette: median | mean | frames with IoU >= 0.5 "
          "| background MSE vs the anchor: median | mean |")  # fmt: skip
    print("|---|---|---|---|---|---|")
    for setting in SETTINGS:
        values = [m for m in mse[setting] if m is not None]
        print(
            f"| {setting} | {statistics.median(lands[setting]):.2f} | {statistics.mean(lands[setting]):.2f} | "
            f"{sum(v >= 0.5 for v in lands[setting])}/{len(lands[setting])} | "
            f"{statistics.median(values):.0f} | {statistics.mean(values):.0f} |"
        )
    print(f"\nwall {time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
    main()
