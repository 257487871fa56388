"""framegen from Python: the engine on a pipeline you already have, then a whole storyboard.

    python examples/api.py

Any diffusers Stable Diffusion pipeline works, e.g. `StableDiffusionPipeline.from_pretrained(...)`;
to run offline this example brings framegen's tiny random one. Writes anchor.png and frame.png.
"""

import torch

from framegen import load_storyboard, render_storyboard
from framegen.engine import AnchorCache, SwapRule, needed_pairs, record, swapping
from framegen.models.tiny import tiny_pipeline

# -- 1. bring your own pipe: record the anchor, swap into a frame
pipe, steps = tiny_pipeline(), 20
# layers by LDM name (IN4, MID, OUT3, LATENTS) or by module path (up_blocks.1.attentions.0); 1-based steps
layout = SwapRule("full", {"OUT3", "OUT4"}, range(1, 9))
left_half = torch.zeros(8, 8, dtype=torch.bool)
left_half[:, :4] = True  # True = keep the anchor
# LATENTS in a mask: prompt-to-prompt's local blend, through the clock's diffusers PipelineCallback
blend = SwapRule("mask", {"LATENTS"}, range(9, steps + 1), mask=left_half)
rules = [layout, blend]
cache = AnchorCache(needed_pairs(rules))  # exactly the (layer, step) pairs the rules read


def generate(prompt, clock):
    generator = torch.Generator("cpu").manual_seed(1111)  # every image from the same noise
    options = dict(width=64, height=64, num_inference_steps=steps, generator=generator)
    return pipe(prompt, callback_on_step_end=clock.callback, **options).images[0]


with record(pipe, steps, cache) as clock:
    generate("girl, white hair, red shirt", clock).save("anchor.png")
with swapping(pipe, steps, cache, rules) as clock:
    generate("girl, white hair, blue shirt", clock).save("frame.png")
print(f"anchor cache: {len(cache)} tensors, {cache.nbytes:,} bytes")

# -- 2. a rule on its own is a pure function of (anchor, current, keep)
threshold = SwapRule("threshold", frozenset({"mid_block"}), frozenset({1}), threshold=0.5)
anchor, current = torch.zeros(2, 4, 8, 8), torch.linspace(0, 1, 512).reshape(2, 4, 8, 8)
print(f"threshold 0.5 kept the anchor in {(threshold(anchor, current) == anchor).float().mean():.0%} of the elements")

# -- 3. a whole storyboard, from a mapping (a path or YAML text work too)
board = load_storyboard(
    {
        "version": 1,
        "model": {"id": "tiny-random"},
        "render": {"width": 64, "height": 64, "steps": 8},
        "anchor": {"prompt": "girl, white hair, red shirt"},
        "swap": [{"mode": "full", "layers": "OUT3, OUT4", "steps": "1-3"}],
        "frames": [{"name": "blue", "replace": {"red shirt": "blue shirt"}}],
        "report": {"background": {"segmenter": "none"}},
        "checks": {"max_background_mse": 10000},
    }
)
result = render_storyboard(board, output="out/api")
print(f"storyboard: passed={result.passed}, frame 'blue' background MSE {result.frames[0]['background_mse']:.1f}")
