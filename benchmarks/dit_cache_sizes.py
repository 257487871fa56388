"""Anchor-cache sizes of the consistency methods' settings on FLUX.1-dev and SD3.5-large at
1024x1024 in bfloat16, from the layer table (engine/placement.cache_bytes on the published
configs, the models built on the meta device: no weights, no memory).

    python benchmarks/dit_cache_sizes.py [--size 1024] [--steps 28]

For each setting: the whole cache (what `cache: cpu` keeps in host memory, or `cache: disk`
on disk), the largest step's share, and what `cache: cpu` holds on a CUDA device at most:
the step in use and the one copied ahead (engine/cache.AnchorCache), so two steps' worth.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from types import SimpleNamespace

import torch

from framegen.engine.placement import cache_bytes
from framegen.engine.swap import SwapRule, needed_pairs
from framegen.models.published import folder

FLUX_ALL = [f"D{i}" for i in range(19)] + [f"S{i}" for i in range(38)]
VITAL = ["D0", "D1", "D17", "D18", "S6", "S9", "S34", "S35", "S37"]  # Stable Flow's, found on FLUX.1-dev
SETTINGS = {  # name -> (model, mode, layers, steps: a fraction of the schedule, or a count from the start)
    "Stable Flow's vital blocks, kv, every step": ("flux-dev", "kv", VITAL, (0, 1)),
    "KV-Edit's bank: every block, kv, every step": ("flux-dev", "kv", FLUX_ALL, (0, 1)),
    "RF-Edit / FireFlow: single blocks 20-37, kv, first 2 steps": ("flux-dev", "kv", FLUX_ALL[39:], (0, 2)),
    "the paper's shape: 4 blocks' tokens, first 40%": ("flux-dev", "full", ["D8", "D9", "D10", "D11"], (0, 0.4)),
    "SD3.5-large, every block, kv, every step": ("sd35-large", "kv", [f"D{i}" for i in range(38)], (0, 1)),
}


def meta_pipe(where: Path):
    """A pipe-like object of a diffusers folder (a published family's, or a saved pipeline)
    with its transformer on the meta device in bfloat16: what cache_bytes reads, no weights."""
    import diffusers

    config = json.loads((where / "transformer" / "config.json").read_text())
    torch.set_default_dtype(torch.bfloat16)
    try:
        with torch.device("meta"):
            model = getattr(diffusers, config.pop("_class_name")).from_config(config)
    finally:
        torch.set_default_dtype(torch.float32)
    scheduler = json.loads((where / "scheduler" / "scheduler_config.json").read_text())
    scheduler = getattr(diffusers, scheduler.pop("_class_name")).from_config(scheduler)
    return SimpleNamespace(transformer=model, scheduler=scheduler, vae_scale_factor=8)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", type=int, default=1024)
    parser.add_argument("--steps", type=int, default=28)
    args = parser.parse_args()
    from framegen.engine import LayerMap

    print(f"{args.size}x{args.size}, {args.steps} steps, bfloat16; guidance 3.5 (FLUX: one row), 4.5 (SD3: two)")
    print("| setting | whole cache GB | one step GB | `cache: cpu` on the device, at most GB |")
    print("|---|---|---|---|")
    pipes = {}
    for name, (family, mode, layers, (start, end)) in SETTINGS.items():
        if family not in pipes:
            pipes[family] = meta_pipe(folder(family))
        pipe = pipes[family]
        model = pipe.transformer
        first = 1 + int(start * args.steps) if start < 1 else start + 1
        last = int(end * args.steps) if end <= 1 else end
        rule = SwapRule(mode, frozenset(layers), frozenset(range(first, last + 1)))
        layer_map = LayerMap.of(model)
        needed = {(path, step) for name_, step in needed_pairs([rule]) for path in layer_map.resolve(name_)}
        guidance = 3.5 if family.startswith("flux") else 4.5
        whole = cache_bytes(pipe, needed, args.size, args.size, args.steps, guidance)
        one = cache_bytes(pipe, {(path, first) for path, _ in needed}, args.size, args.size, args.steps, guidance)
        print(f"| {name} | {whole / 1e9:.1f} | {one / 1e9:.2f} | {2 * one / 1e9:.2f} |")


if __name__ == "__main__":
    main()
