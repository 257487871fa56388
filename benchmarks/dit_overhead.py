"""Overhead of framegen's hooks on a transformer against the plain diffusers pipeline, in one run.

    OMP_NUM_THREADS=2 python benchmarks/dit_overhead.py [--model flux-dev] [--blocks 1,2] [--size 256] [--steps 4]
                                                       [--repeats 3] [--dtype bfloat16]

Builds the published architecture (framegen/models/configs/) at its real width with random
weights and `--blocks` double,single blocks (FLUX.1) or joint blocks (SD3.x: one number),
then times, interleaved, the plain pipeline, the anchor with caching, and a frame for each
rule kind (a whole-tensor or kv phase on every block, then a mask, threshold, kv mask or
local blend on the later blocks) as ratios to plain; then the anchor cache's bytes against
the minimum computed from the layer table. Goals (transformers issue): every frame <= 1.03x,
the anchor <= 1.02x; auto-noise costs 2 x 4 extra transformer evaluations by design.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # benchmarks/, beside framegen/
from benchmarks.gpu import interleaved  # noqa: E402
from framegen.engine import LayerMap
from framegen.engine.families import denoiser
from framegen.engine.placement import cache_bytes
from framegen.models.published import random_pipeline
from framegen.run.prepare import prepare
from framegen.storyboard import load_storyboard

KINDS = {  # frame name -> its second-phase rule (the first: the paper's whole tensors)
    "full": None,
    "mask": {"mode": "mask", "mask": {"grid": ["1111", "1001", "1001", "1111"]}},
    "threshold": {"mode": "threshold", "threshold": 0.13, "relative": True},
    "threshold-position": {"mode": "threshold", "threshold": 0.13, "relative": True, "reduce": "position"},
    "kv": {"mode": "kv"},
    "kv-mask": {"mode": "kv", "mask": {"grid": ["1111", "1001", "1001", "1111"]}},
    "auto-attention": {"mode": "mask", "mask": {"auto": "attention"}},
    "local-blend": {"mode": "mask", "mask": {"auto": "attention"}, "layers": ["LATENTS"]},
    "auto-noise": {"mode": "mask", "mask": {"auto": "noise"}},
}


def board(model: str, layers: list[str], late: list[str], size: int, steps: int) -> dict:
    phase = max(1, round(steps * 0.4))
    frames = []
    for name, rule in KINDS.items():
        swap = [{"mode": "full", "layers": layers, "steps": f"1-{phase}"}]
        if rule is not None:
            swap.append({"layers": late, "steps": f"{phase + 1}-{steps}", **rule})
        frames.append({"name": name, "replace": {"blue skirt": "red pants"}, "swap": swap})
    return {
        "version": 1,
        "model": {"id": model},
        "render": {"width": size, "height": size, "steps": steps, "guidance": 3.5, "seed": 1111},
        "anchor": {"prompt": "girl, white hair, school uniform, blue skirt, outdoor"},
        "frames": frames,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="flux-dev", help="a published transformer family (configs/)")
    parser.add_argument("--blocks", default="1,2", help="FLUX: double,single blocks; SD3: joint blocks")
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--steps", type=int, default=4)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--dtype", default="bfloat16")
    parser.add_argument("--frames", help="only these frames, comma-separated (default: all)")
    args = parser.parse_args()
    counts = [int(n) for n in args.blocks.split(",")]
    flux = args.model.startswith("flux")
    changes = {"transformer": {"num_layers": counts[0], **({"num_single_layers": counts[1]} if flux else {})}}
    changes |= {"text_encoder_2": {"num_layers": 2}} if flux else {"text_encoder_3": None}
    pipe = random_pipeline(args.model, dtype=getattr(torch, args.dtype), changes=changes)
    pipe.set_progress_bar_config(disable=True)
    names = [layer.name for layer in LayerMap.of(denoiser(pipe)).cross_attention_layers()]
    spec = board(f"random/{args.model}", names, names[len(names) // 2 :], args.size, args.steps)
    prepared = prepare(load_storyboard(yaml.safe_dump(spec)), pipe)
    renderer, settings, prompt = prepared.renderer(), prepared.settings, spec["anchor"]["prompt"]

    def plain():
        pipe(prompt, width=settings.width, height=settings.height, num_inference_steps=settings.steps,
             guidance_scale=settings.guidance, generator=torch.Generator("cpu").manual_seed(settings.seed))  # fmt: skip

    variants = {"plain diffusers": plain, "anchor + caching": lambda: renderer.anchor(prompt)}
    for plan in prepared.board.frames:
        if args.frames is None or plan.name in args.frames.split(","):
            variants[f"frame: {plan.name}"] = lambda plan=plan: renderer.frame(*prepared.shot(plan))
    plain()  # warm-up: first calls allocate
    renderer.anchor(prompt)
    medians = interleaved(variants, args.repeats, synchronize=lambda: None)  # CPU: nothing queued to wait for
    base = medians["plain diffusers"]
    blocks = f"{counts[0]} double + {counts[1]} single" if flux else f"{counts[0]} joint"
    threads = torch.get_num_threads()
    print(f"{args.model} at its real width, {blocks} blocks (random weights, {args.dtype}), {args.size}x{args.size}, "
          f"{args.steps} steps, CPU, torch threads {threads}, median of {args.repeats} interleaved runs")  # fmt: skip
    print(f"{'variant':<32}{'median s':>10}{'ratio':>8}")
    worst_frame = 0.0
    for name, median in medians.items():
        print(f"{name:<32}{median:>10.3f}{median / base:>8.3f}")
        if name.startswith("frame") and name != "frame: auto-noise":
            worst_frame = max(worst_frame, median / base)
    anchor = medians["anchor + caching"] / base
    cache = renderer.cache
    minimum = cache_bytes(pipe, cache.needed, settings.width, settings.height, settings.steps, settings.guidance)
    print(f"cache bytes {cache.nbytes:,} vs minimum {minimum:,} ({'equal' if cache.nbytes == minimum else 'DIFFER'}); "
          f"{len(cache)} tensors for {len(cache.needed)} (module, step) pairs")  # fmt: skip
    print(
        f"worst frame {worst_frame:.3f} (goal 1.03: {'met' if worst_frame <= 1.03 else 'MISSED'}), "
        f"anchor {anchor:.3f} (goal 1.02: {'met' if anchor <= 1.02 else 'MISSED'})"
    )


if __name__ == "__main__":
    main()
