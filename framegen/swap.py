"""Swap rules: what a frame takes from the anchor at one (step, layer).

A rule is a small frozen object; `swap(rules, anchor, current, step, layer)` is a pure
function of its inputs, so every case can be tested on plain tensors:

- full:      the anchor's tensor replaces the current one;
- mask:      the anchor's values where the mask is 1 (1 = keep the anchor);
- threshold: the anchor's values where |anchor - current| < threshold, per element,
             or per spatial position on the channel mean of |anchor - current|;
             `relative` thresholds are a fraction of the anchor tensor's mean absolute
             value at that layer and step, so one number carries across layers and models.

`torch.where` picks values bit for bit, so an all-ones mask or an infinite threshold
gives exactly the anchor, and an all-zeros mask or a zero threshold exactly `current`.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F


class Mask:
    """An (h, w) bool mask at its own resolution (True = keep the anchor), resized with
    nearest-neighbour to each layer's grid on first use there."""

    kind = "drawn"

    def __init__(self, tensor: torch.Tensor | None = None, kind: str | None = None):
        self.tensor = tensor
        self.kind = kind or self.kind
        self._resized: dict = {}

    def at(self, size: tuple[int, int], device: torch.device) -> torch.Tensor:
        """The mask at a grid of `size`, shaped (1, 1, h, w) to broadcast."""
        key = (tuple(size), device)
        if key not in self._resized:
            grid = self.current()[None, None].float()
            self._resized[key] = F.interpolate(grid, size=key[0], mode="nearest-exact").to(device) > 0.5
        return self._resized[key]

    def current(self) -> torch.Tensor:
        return self.tensor


@dataclass(frozen=True)
class SwapRule:
    mode: str  # full | mask | threshold
    layers: frozenset[str]  # module paths
    steps: frozenset[int]  # 1-based denoising steps
    mask: Mask | torch.Tensor | None = None  # a tensor is wrapped in a Mask
    threshold: float = 0.0
    reduce: str = "element"  # element | position
    relative: bool = False

    def __post_init__(self):
        if torch.is_tensor(self.mask):
            object.__setattr__(self, "mask", Mask(self.mask))

    def applies(self, step: int, layer: str) -> bool:
        return step in self.steps and layer in self.layers

    def __call__(self, anchor: torch.Tensor, current: torch.Tensor) -> torch.Tensor:
        if self.mode == "full":
            return anchor
        if self.mode == "mask":
            keep = self.mask_for(current)
        else:
            difference = (anchor - current).abs()
            if self.reduce == "position":
                difference = difference.mean(dim=1, keepdim=True)
            limit = self.threshold * anchor.abs().mean() if self.relative else self.threshold
            keep = difference < limit
        return torch.where(keep, anchor, current)

    def mask_for(self, tensor: torch.Tensor) -> torch.Tensor:
        """The mask at the tensor's grid, shaped (1, 1, H, W) to broadcast."""
        return self.mask.at(tensor.shape[-2:], tensor.device)


def choose(rules: list[SwapRule], step: int, layer: str) -> SwapRule | None:
    """The rule for (step, layer): the last one in the list that covers it."""
    for rule in reversed(rules):
        if rule.applies(step, layer):
            return rule
    return None


def swap(rules: list[SwapRule], anchor: torch.Tensor, current: torch.Tensor, step: int, layer: str) -> torch.Tensor:
    rule = choose(rules, step, layer)
    return current if rule is None else rule(anchor, current)


def needed_pairs(rules: list[SwapRule]) -> set[tuple[str, int]]:
    """The (layer, step) pairs whose anchor activations these rules read."""
    return {(layer, step) for rule in rules for layer in rule.layers for step in rule.steps}
