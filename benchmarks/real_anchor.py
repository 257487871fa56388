"""A real image as the anchor on the demo models (issues #14, #24): how well the inversion
rebuilds drawn scenes the model never produced, and how edits of them keep the scene.

    python benchmarks/real_anchor.py [--scenes 20] [--first-seed 50000000] [--steps 30] [--guidance 3]
    python benchmarks/real_anchor.py --model demo-flow --steps 24 --guidance 1 --vital "D1, D2"

Each scene is drawn by the scene grammar (tools/demo/scenes.py) from a seed held apart from
training, tuning (30,000,000+) and the consistency pairs (20,000,000+), and is the anchor
image: inverted along the render's DDIM schedule, reconstructed, and edited (one garment's
colour, shirts and bottoms alternating, as benchmarks/consistency.py picks them) under
three settings: no swap; the sweep-found whole-tensor setting (IN8, OUT3-OUT6 for the first
40% of the steps, docs/demo-model.md); that plus local blending (LATENTS) outside an
attention mask for the remaining steps. Per inversion variant it prints the reconstruction's
PSNR against the drawn image (with the VAE's own round trip, the bound), and per setting the
edit success (the demo segmenter's person, its garment band's colour) and the background
MSE against the drawn image (what a report measures). On demo-flow (128x128 scenes) the
variants are inverse Euler along its flow schedule, with one fixed-point refinement, and
with Stable Flow's latent nudging (x1.15); the whole-tensor layers are `--vital`; the
last column is the inversion plus the reconstruction against one plain image of the prompt.
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
from PIL import Image

from framegen.engine.hooks import StepClock
from framegen.models import demo, demo_flow
from framegen.output.measure import compare, psnr
from framegen.output.segmenters import RembgSegmenter
from framegen.run.prepare import prepare
from framegen.storyboard import load_storyboard
from tools.demo.evaluate import edits, garment_colour
from tools.demo.scenes import draw_scene, sample_attributes

VARIANTS = {  # name -> anchor.inversion
    "negative-prompt (default)": {"method": "negative-prompt"},
    "negative-prompt, refine 1": {"method": "negative-prompt", "refine": 1},
    "ddim": {"method": "ddim"},
}
FLOW_VARIANTS = {  # demo-flow: inverse Euler, its refinement, Stable Flow's latent nudging
    "inverse Euler (default)": {},
    "inverse Euler, refine 1": {"refine": 1},
    "inverse Euler, nudge 1.15": {"nudge": 1.15},
}
MODELS = {  # --model -> (its storyboard's model block, size, inversion variants, whole-tensor layers)
    "demo": ({"id": "demo", "scheduler": "ddim"}, 64, VARIANTS, ["IN8", "OUT3", "OUT4", "OUT5", "OUT6"]),
    "demo-flow": ({"id": "demo-flow"}, 128, FLOW_VARIANTS, None),  # layers: --vital
}
SETTINGS = {  # name -> the frame's swap rules from (whole-tensor rule, its last step, steps)
    "no swap": lambda whole, phase, steps: [],
    "whole (composition)": lambda whole, phase, steps: [{**whole, "steps": f"1-{phase}"}],
    "whole + local blend (attention)": lambda whole, phase, steps: [
        {**whole, "steps": f"1-{phase}"},
        {"mode": "mask", "layers": ["LATENTS"], "steps": f"{phase + 1}-{steps}", "mask": {"auto": "attention"}},
    ],
}


def storyboard(edit, model: dict, inversion: dict, layers: list[str], steps: int, guidance: float) -> dict:
    phase, whole = round(0.4 * steps), {"mode": "full", "layers": layers}
    return {
        "version": 1,
        "model": model,
        "render": {"steps": steps, "guidance": guidance},
        "anchor": {"prompt": edit.anchor_prompt, "image": "scene.png", "inversion": inversion},
        "frames": [
            {"name": name, "prompt": edit.frame_prompt, "swap": rules(whole, phase, steps)}
            for name, rules in SETTINGS.items()
        ],
        "report": {"background": {"segmenter": "none"}},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scenes", type=int, default=20)
    parser.add_argument("--first-seed", type=int, default=50_000_000)
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--guidance", type=float, default=3.0)
    parser.add_argument("--model", choices=tuple(MODELS), default="demo")
    parser.add_argument("--vital", default="D1, D2", help="demo-flow: the blocks of the whole-tensor phase")
    args = parser.parse_args()

    start = time.perf_counter()
    model, size, variants, layers = MODELS[args.model]
    layers = layers or [name.strip() for name in args.vital.split(",")]
    pipe = (demo_flow if args.model == "demo-flow" else demo).load_pipeline()
    segmenter = RembgSegmenter("demo", demo.segmenter_path())
    recon = {name: [] for name in variants}
    bound, seconds, plain = [], {name: [] for name in variants}, []
    scores = {(v, s): [] for v in variants for s in SETTINGS}
    for edit in edits(args.scenes, args.first_seed):
        scene = draw_scene(sample_attributes(edit.seed), (size, size))
        image = scene.image
        image_person = segmenter.person(image)
        with tempfile.TemporaryDirectory() as folder:
            image.save(Path(folder) / "scene.png")
            for variant, inversion in variants.items():
                spec = storyboard(edit, model, inversion, layers, args.steps, args.guidance)
                board = load_storyboard(spec, folder=folder)
                prepared = prepare(board, pipe)
                renderer = prepared.renderer()
                began = time.perf_counter()
                inverted = renderer.invert(prepared.anchor_image, edit.anchor_prompt, how=board.spec.anchor.inversion)
                anchor = renderer.anchor(edit.anchor_prompt, None, inverted.trajectory, prepared.anchor_negative_prompt)
                seconds[variant].append(time.perf_counter() - began)
                recon[variant].append(psnr(image, anchor))
                for plan in board.frames:
                    frame = renderer.frame(*prepared.shot(plan)).image
                    person = segmenter.person(frame)
                    scores[(variant, plan.name)].append(
                        {
                            **compare(image, frame, image_person, person),
                            "edited": garment_colour(frame, person, edit.attribute) == edit.colour,
                        }
                    )
            began = time.perf_counter()
            renderer.generate([edit.anchor_prompt], None, StepClock(pipe.scheduler, args.steps))
            plain.append(time.perf_counter() - began)
        latents = pipe.vae.encode(pixels(image)).latent_dist.mean
        through_vae = pipe.image_processor.postprocess(pipe.vae.decode(latents).sample.detach(), output_type="pil")[0]
        bound.append(psnr(image, through_vae))
        print(f"scene {edit.seed}: " + ", ".join(f"{v} {recon[v][-1]:.1f} dB" for v in variants), flush=True)

    schedule = "flow" if args.model == "demo-flow" else "DDIM"
    print(
        f"\n{args.model}, {size}x{size}, {args.scenes} drawn scenes (seeds {args.first_seed}+), {args.steps} "
        f"{schedule} steps, guidance {args.guidance}, whole-tensor layers {', '.join(layers)}, CPU; "
        f"one plain image {statistics.mean(plain):.2f} s\n"
    )
    print("| reconstruction | PSNR min | median | mean | max | scenes >= 25 dB | inversion + anchor s | x plain |")
    print("|---|---|---|---|---|---|---|---|")
    for name, values in [("VAE round trip (the bound)", bound), *recon.items()]:
        took = "- | -"
        if name in seconds:
            mean = statistics.mean(seconds[name])
            took = f"{mean:.2f} | {mean / statistics.mean(plain):.2f}"
        print(
            f"| {name} | {min(values):.1f} | {statistics.median(values):.1f} | {statistics.mean(values):.1f} | "
            f"{max(values):.1f} | {sum(v >= 25 for v in values)}/{len(values)} | {took} |"
        )
    print("\n| inversion | setting | edit success | background MSE vs the image: median | mean |")
    print("|---|---|---|---|---|")
    for (variant, setting), rows in scores.items():
        mses = [row["background_mse"] for row in rows if row["background_mse"] is not None]
        print(
            f"| {variant} | {setting} | {sum(row['edited'] for row in rows) / len(rows):.0%} | "
            f"{statistics.median(mses):.0f} | {statistics.mean(mses):.0f} |"
        )
    print(f"\nwall {time.perf_counter() - start:.0f} s")


def pixels(image: Image.Image):
    import torch

    array = np.asarray(image.convert("RGB"), dtype=np.float32) / 127.5 - 1
    return torch.from_numpy(array).permute(2, 0, 1)[None]


if __name__ == "__main__":
    main()
