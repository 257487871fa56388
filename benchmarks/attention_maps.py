"""Where the demo model's cross-attention looks: the maps an attention mask is built from.

For each (seed, edit) pair the anchor is rendered once; for the tag the edit changes (e.g.
"red shirt") the sheet shows its modifier's and its head's maps per resolution level of the
cross-attention layers, summed over the steps before the mask phase and scaled to 0..1
(`AttentionStore.region`, the mask's own computation). Tuning pairs by default.

    OMP_NUM_THREADS=1 python benchmarks/attention_maps.py --pairs 8 --out docs/automask-maps.png
"""

from __future__ import annotations

import sys
from pathlib import Path

# tools/ is not installed: import it from the checkout root
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import argparse

import numpy as np
import torch
from PIL import Image

from framegen.engine.automask import AttentionStore, attention_modules, observing, token_positions
from framegen.engine.hooks import hooked
from framegen.engine.layers import LayerMap
from framegen.models.demo import load_pipeline
from framegen.output.files import contact_sheet
from framegen.storyboard import split_tags
from tools.demo.evaluate import edits


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pairs", type=int, default=8)
    parser.add_argument("--first-seed", type=int, default=30_000_000)
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--before-step", type=int, default=13, help="maps summed over the steps before this one")
    parser.add_argument("--guidance", type=float, default=3.0)
    parser.add_argument("--out", type=Path, default=Path("attention-maps.png"))
    args = parser.parse_args()

    pipe = load_pipeline()
    pipe.set_progress_bar_config(disable=True)
    layers = LayerMap.of(pipe.unet)
    levels: dict[int, list] = {}
    for layer in layers.cross_attention_layers():
        if layer.name != "MID":
            levels.setdefault(layer.level, []).append(layer)
    side = pipe.unet.config.sample_size
    tiles = []
    for edit in edits(args.pairs, first_seed=args.first_seed):
        prompt = edit.anchor_prompt
        tag = next(t for t in split_tags(prompt) if t not in split_tags(edit.frame_prompt))
        *modifiers, head = tag.split()
        words = [" ".join(modifiers), head]  # e.g. "red", "shirt"
        watched = {
            level: AttentionStore(
                {w: token_positions(pipe.tokenizer, prompt, w) for w in words},
                attention_modules(pipe, members, (side, side)),
                set(range(1, args.before_step)),
            )
            for level, members in sorted(levels.items())
        }
        with hooked(pipe, args.steps, set(), lambda *_: None) as clock, observing(pipe, clock, list(watched.values())):
            anchor = pipe(
                prompt, num_inference_steps=args.steps, guidance_scale=args.guidance,
                generator=torch.Generator("cpu").manual_seed(edit.seed),
            ).images[0]  # fmt: skip
        tiles.append((tag, anchor))
        for level, maps in watched.items():
            names = f"{levels[level][0].name}.. {maps.size[1]}x{maps.size[0]}"
            for word in words:
                region = maps.region(word, args.before_step)
                grey = np.zeros(maps.size) if region is None else region.numpy()
                image = (
                    Image.fromarray((grey * 255).astype(np.uint8)).resize(anchor.size, Image.BILINEAR).convert("RGB")
                )
                tiles.append((f"{word} {names}", image))
    contact_sheet(tiles, 1 + 2 * len(levels), tile_width=96).save(args.out)
    print(
        f"wrote {args.out}: {args.pairs} anchors; "
        "columns: the anchor, then the edited tag's modifier and head per level"
    )


if __name__ == "__main__":
    main()
