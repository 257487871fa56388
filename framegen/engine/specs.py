"""Rules as plain data, resolved but not yet compiled for a pipe: what a storyboard (or
any caller) hands to `compile.Compiler`. Importing this module does not import torch."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class MaskPlan:
    """A mask as a storyboard resolves it: one of `grid`, `image` (a path), `boxes` or
    `auto`; the other fields tune automatic masks (None: the kind's default)."""

    grid: tuple[str, ...] | None = None
    image: Path | None = None
    boxes: tuple[tuple[int, int, int, int], ...] | None = None
    auto: str | None = None  # attention | noise | control
    words: tuple[str, ...] | None = None
    layers: tuple[str, ...] | None = None
    threshold: float | None = None
    dilate: int | None = None

    @property
    def kind(self) -> str:
        return self.auto or next(k for k in ("grid", "image", "boxes") if getattr(self, k) is not None)


@dataclass(frozen=True)
class RuleSpec:
    mode: str  # full | mask | threshold
    layers: tuple[str, ...]  # as written: aliases (OUT3, in04, M00, LATENTS) or module paths
    steps: tuple[int, ...]  # 1-based denoising steps
    threshold: float | None = None
    reduce: str = "element"
    relative: bool = False
    mask: MaskPlan | None = None
    where: tuple = ()  # the rule's place in its storyboard, e.g. ("frames", 2, "swap", 0)


@dataclass(frozen=True)
class Edit:
    """What a frame changes, for automatic masks: both prompts, the words of the anchor
    prompt it replaces or removes and of its own prompt that replace or add, and both
    control images."""

    anchor_prompt: str
    prompt: str
    anchor_words: tuple[str, ...] = ()
    frame_words: tuple[str, ...] = ()
    anchor_control: tuple[Path, ...] = ()  # control images, one per ControlNet, for `auto: control` masks
    control: tuple[Path, ...] = ()
