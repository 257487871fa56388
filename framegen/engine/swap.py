"""Swap rules: what a frame takes from the anchor at one (step, layer).

A rule is a small frozen object, and applying it is a pure function of its inputs:
`rule(anchor, current, keep)` returns a tensor, so every case can be tested on plain
tensors:

- full:      the anchor's tensor replaces the current one;
- mask:      the anchor's values where `keep` is True; `keep` comes from the rule's
             mask source (masks.py, automask.py), which the hook asks per (step, grid);
- kv:        the anchor's keys and values of the image tokens, in place of the frame's,
             at the attention of the rule's layers (whole, or where `keep` is True when
             the rule has a mask); the hooks hand it each `to_k` / `to_v` output;
- threshold: the anchor's values where |anchor - current| < threshold, per element,
             or per spatial position on the channel mean of |anchor - current|;
             `relative` thresholds are a fraction of the anchor tensor's mean absolute
             value at that layer and step, so one number carries across layers and models.

`torch.where` picks values bit for bit, so an all-ones mask or an infinite threshold
gives exactly the anchor, and an all-zeros mask or a zero threshold exactly `current`.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import torch

from .layers import KV, KV_PROJECTIONS
from .masks import DrawnMask, MaskSource

MODES = ("full", "mask", "threshold", "kv")


@dataclass(frozen=True)
class SwapRule:
    mode: str  # full | mask | threshold | kv
    layers: frozenset[str]  # module paths or aliases (OUT3, D5, LATENTS): the hooks resolve them on the pipe
    steps: frozenset[int]  # 1-based denoising steps
    mask: MaskSource | None = None  # mask and kv rules: where `keep` comes from (a tensor is a DrawnMask)
    threshold: float = 0.0
    reduce: str = "element"  # element | position
    relative: bool = False

    def __post_init__(self):
        if self.mode not in MODES:
            raise ValueError(f"unknown swap mode '{self.mode}' (known: {', '.join(MODES)})")
        if torch.is_tensor(self.mask):
            object.__setattr__(self, "mask", DrawnMask(self.mask))
        if self.mode == "mask" and self.mask is None:
            raise ValueError("a mask rule needs a mask")
        if self.mode not in ("mask", "kv") and self.mask is not None:
            raise ValueError("only mask and kv rules take a mask")
        object.__setattr__(self, "layers", frozenset(self.layers))
        object.__setattr__(self, "steps", frozenset(self.steps))

    def on(self, layers) -> SwapRule:
        """This rule with its layer names resolved to `layers`' module paths (a LayerMap):
        for a kv rule, the key and value projections of each layer's attention."""
        return replace(self, layers=frozenset(path for name in self.names() for path in layers.resolve(name)))

    def names(self) -> list[str]:
        """Its layer names as `LayerMap.resolve` reads them: a kv rule's name its keys and values."""
        return [KV + name if self.mode == "kv" and not name.endswith(KV_PROJECTIONS) else name for name in self.layers]

    def applies(self, step: int, layer: str) -> bool:
        return step in self.steps and layer in self.layers

    def keep_for(self, step: int, tensor: torch.Tensor) -> torch.Tensor | None:
        """The mask source's keep-mask at the tensor's grid, (1, 1, H, W); None unless a mask rule."""
        return self.mask.keep(step, tensor.shape[-2:], tensor.device) if self.mask is not None else None

    def __call__(self, anchor: torch.Tensor, current: torch.Tensor, keep: torch.Tensor | None = None) -> torch.Tensor:
        if self.mode == "full" or (self.mode == "kv" and keep is None):
            return anchor
        if self.mode == "threshold":
            difference = (anchor - current).abs()
            if self.reduce == "position":
                difference = difference.mean(dim=1, keepdim=True)
            limit = self.threshold * anchor.abs().mean() if self.relative else self.threshold
            keep = difference < limit
        return torch.where(keep, anchor, current)


def choose(rules: list[SwapRule], step: int, layer: str) -> SwapRule | None:
    """The rule for (step, layer): the last one in the list that covers it."""
    for rule in reversed(rules):
        if rule.applies(step, layer):
            return rule
    return None


def swap(rules: list[SwapRule], anchor: torch.Tensor, current: torch.Tensor, step: int, layer: str) -> torch.Tensor:
    rule = choose(rules, step, layer)
    return current if rule is None else rule(anchor, current, rule.keep_for(step, current))


def needed_pairs(rules: list[SwapRule]) -> set[tuple[str, int]]:
    """The (layer, step) pairs whose anchor activations these rules read (a kv rule's
    layer as `kv:NAME` until resolved: `LayerMap.resolve` gives its projections)."""
    return {(layer, step) for rule in rules for layer in rule.names() for step in rule.steps}
