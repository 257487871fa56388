"""framegen from Python, one level below `render_storyboard`.

    python examples/api.py

Renders the anchor and one frame of the tiny storyboard with a `Renderer`, then shows
that a swap rule is a plain function of (anchor tensor, current tensor, step, layer).
"""

from pathlib import Path

import torch

from framegen.render import Renderer
from framegen.storyboard import load_storyboard
from framegen.swap import SwapRule, swap

board = load_storyboard(Path(__file__).parents[1] / "storyboards" / "tiny.yaml")
renderer = Renderer(board)  # loads the model, resolves layer names and rules
print("layers:", {rule.mode: sorted(r.layers) for rule, r in zip(board.frames[0].rules, renderer.rules[1])})

anchor = renderer.anchor()  # caches only the (layer, step) pairs the frames need
print(f"anchor cached {len(renderer.cache)} tensors, {renderer.cache.nbytes:,} bytes")

frame = renderer.frame(board.frames[0])
print(f"frame '{frame.plan.name}' ({frame.plan.prompt!r}) in {frame.seconds:.2f} s")
anchor.save("anchor.png")
frame.image.save("frame.png")

# The rules on their own: keep the anchor where the two differ by less than 0.5.
rule = SwapRule(mode="threshold", layers=frozenset({"mid_block"}), steps=frozenset({1}), threshold=0.5)
a, c = torch.zeros(2, 4, 8, 8), torch.linspace(0, 1, 512).reshape(2, 4, 8, 8)
out = swap([rule], a, c, step=1, layer="mid_block")
print(f"threshold 0.5 kept the anchor in {(out == a).float().mean():.0%} of the elements")
