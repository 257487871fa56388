"""A real image as the anchor on the demo model (issue #14): how well the inversion
rebuilds drawn scenes the model never produced, and how edits of them keep the scene.

    python benchmarks/real_anchor.py [--scenes 20] [--first-seed 50000000] [--steps 30] [--guidance 3]

Each scene is drawn by the scene grammar (tools/demo/scenes.py) from a seed held apart from
training, tuning (30,000,000+) and the consistency pairs (20,000,000+), and is the anchor
image: inverted along the render's DDIM schedule, reconstructed, and edited (one garment's
colour, shirts and bottoms alternating, as benchmarks/consistency.py picks them) under
three settings: no swap; the sweep-found whole-tensor setting (IN8, OUT3-OUT6 for the first
40% of the steps, docs/demo-model.md); that plus local blending (LATENTS) outside an
attention mask for the remaining steps. Per inversion variant it prints the reconstruction's
PSNR against the drawn image (with the VAE's own round trip, the bound), and per setting the
edit success (the demo segmenter's person, its garment band's colour) and the background
MSE against the drawn image (what a report measures).
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

from framegen.models.demo import load_pipeline, segmenter_path
from framegen.output.report import compare, psnr
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
WHOLE = {"mode": "full", "layers": ["IN8", "OUT3", "OUT4", "OUT5", "OUT6"]}
SETTINGS = {  # name -> the frame's swap rules; {phase} = last step of the whole-tensor phase
    "no swap": lambda phase, steps: [],
    "whole IN8+OUT3-6": lambda phase, steps: [{**WHOLE, "steps": f"1-{phase}"}],
    "whole + local blend (attention)": lambda phase, steps: [
        {**WHOLE, "steps": f"1-{phase}"},
        {"mode": "mask", "layers": ["LATENTS"], "steps": f"{phase + 1}-{steps}", "mask": {"auto": "attention"}},
    ],
}


def storyboard(edit, inversion: dict, steps: int, guidance: float) -> dict:
    phase = round(0.4 * steps)
    return {
        "version": 1,
        "model": {"id": "demo", "scheduler": "ddim"},
        "render": {"steps": steps, "guidance": guidance},
        "anchor": {"prompt": edit.anchor_prompt, "image": "scene.png", "inversion": inversion},
        "frames": [
            {"name": name, "prompt": edit.frame_prompt, "swap": rules(phase, steps)} for name, rules in SETTINGS.items()
        ],
        "report": {"background": {"segmenter": "none"}},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scenes", type=int, default=20)
    parser.add_argument("--first-seed", type=int, default=50_000_000)
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--guidance", type=float, default=3.0)
    args = parser.parse_args()

    start = time.perf_counter()
    pipe = load_pipeline()
    segmenter = RembgSegmenter("demo", segmenter_path())
    recon = {name: [] for name in VARIANTS}
    bound, seconds = [], {name: [] for name in VARIANTS}
    scores = {(v, s): [] for v in VARIANTS for s in SETTINGS}
    for edit in edits(args.scenes, args.first_seed):
        scene = draw_scene(sample_attributes(edit.seed))
        image = scene.image
        image_person = segmenter.person(image)
        with tempfile.TemporaryDirectory() as folder:
            image.save(Path(folder) / "scene.png")
            for variant, inversion in VARIANTS.items():
                board = load_storyboard(storyboard(edit, inversion, args.steps, args.guidance), folder=folder)
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
        latents = pipe.vae.encode(pixels(image)).latent_dist.mean
        through_vae = pipe.image_processor.postprocess(pipe.vae.decode(latents).sample.detach(), output_type="pil")[0]
        bound.append(psnr(image, through_vae))
        print(f"scene {edit.seed}: " + ", ".join(f"{v} {recon[v][-1]:.1f} dB" for v in VARIANTS), flush=True)

    print(
        f"\ndemo model, 64x64, {args.scenes} drawn scenes (seeds {args.first_seed}+), {args.steps} DDIM steps, "
        f"guidance {args.guidance}, CPU\n"
    )
    print("| reconstruction | PSNR min | median | mean | max | scenes >= 25 dB | inversion + anchor s |")
    print("|---|---|---|---|---|---|---|")
    for name, values in [("VAE round trip (the bound)", bound), *recon.items()]:
        time_column = f"{statistics.mean(seconds[name]):.1f}" if name in seconds else "-"
        print(
            f"| {name} | {min(values):.1f} | {statistics.median(values):.1f} | {statistics.mean(values):.1f} | "
            f"{max(values):.1f} | {sum(v >= 25 for v in values)}/{len(values)} | {time_column} |"
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
