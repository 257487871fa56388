"""The engine on a FLUX pipeline you already have: Stable Flow's way (the anchor's keys and
values in a few blocks) and KV-Edit's (only outside a mask).

    python examples/flux_api.py

Any diffusers FluxPipeline works, e.g. `FluxPipeline.from_pretrained("black-forest-labs/FLUX.1-dev")`
with Stable Flow's vital blocks D0, D1, D17, D18, S6, S9, S34, S35, S37; to run offline this
example brings framegen's tiny random one (blocks D0, D1, S0, S1). Writes anchor.png and frame.png.
"""

import torch

from framegen.engine import AnchorCache, SwapRule, needed_pairs, record, swapping
from framegen.models.tiny_dit import tiny_flux_pipeline

pipe, steps = tiny_flux_pipeline(), 8
right_half = torch.zeros(4, 4, dtype=torch.bool)  # any size: resized to the token grid
right_half[:, 2:] = True  # True = the token attends with the anchor's keys and values
rules = [
    SwapRule("kv", {"D0", "D1"}, range(1, steps + 1)),  # whole: every image token
    SwapRule("kv", {"S0", "S1"}, range(1, steps + 1), mask=right_half),  # inside the mask only
]
cache = AnchorCache(needed_pairs(rules))  # the named blocks' to_k / to_v outputs, image tokens only


def generate(prompt):
    generator = torch.Generator("cpu").manual_seed(1111)  # every image from the same noise
    return pipe(prompt, width=128, height=128, num_inference_steps=steps, generator=generator).images[0]


with record(pipe, steps, cache):
    generate("a cat on a red sofa").save("anchor.png")
with swapping(pipe, steps, cache, rules):
    generate("a dog on a red sofa").save("frame.png")
print(f"anchor cache: {len(cache)} tensors, {cache.nbytes:,} bytes")
