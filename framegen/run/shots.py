"""Shots: every image a render makes (the anchor, each keyframe, each in-between) as
plain data, in the order the clip shows them.

    shots = shots_of(board)     # the anchor first, then the video order
    shots[1].prompt, shots[1].rules, shots[1].image

A shot holds what decides its pixels besides the model and the render settings: its
text conditioning (a prompt, or for an in-between the frame before's prompt, its own and
how far between them), its control images, its LoRA scales and its rules; and its place
in the clip: its image, its masks' images, its heat-map and how long the clip holds it.
Its key (identity.py) is filled in once the model's facts are known.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path

from ..engine.specs import RuleSpec
from ..storyboard import FramePlan, Storyboard


@dataclass(frozen=True, slots=True)
class Between:
    """An in-between's conditioning: the k-th of n before its keyframe, its text and
    control images `t` = k / (n + 1) of the way from the frame before's (the anchor's for
    the first keyframe) to its keyframe's."""

    prompt: str  # the frame before's
    control: tuple[str, ...]  # the frame before's control images
    k: int
    n: int

    @property
    def t(self) -> float:
        return self.k / (self.n + 1)


@dataclass(frozen=True, slots=True)
class Shot:
    kind: str  # anchor | frame | tween
    name: str  # a keyframe's name; an in-between is `name~k`
    index: int  # its keyframe's number, 1-based (the anchor: 0)
    image: str  # where it goes in the output folder
    prompt: str
    rules: tuple[RuleSpec, ...] = ()
    lora: tuple[tuple[str, float], ...] = ()  # (name, scale) of every LoRA of the model
    control: tuple[str, ...] = ()  # one control image per ControlNet
    hold: int = 1  # video frames the clip shows it for
    between: Between | None = None  # in-betweens only
    # what the edit changes, for attention masks: words of the anchor prompt it replaces
    # or removes, and of its own prompt that replace or add
    anchor_words: tuple[str, ...] = ()
    frame_words: tuple[str, ...] = ()
    key: str = ""  # identity.py

    @property
    def mask_images(self) -> list[str]:
        """Where its mask rules' masks go: masks/0001.png, masks/0001-2.png, ...; an
        in-between's: masks/0001~1.png, masks/0001~1-2.png, ..."""
        stem = f"{self.index:04d}" + (f"~{self.between.k}" if self.between else "")
        count = sum(rule.mask is not None for rule in self.rules)
        return [f"masks/{stem}{'' if n == 1 else f'-{n}'}.png" for n in range(1, count + 1)]

    @property
    def heatmap(self) -> str:
        """Where its heat-map goes: frames/0002-1.png -> heatmaps/0002-1.png."""
        return f"heatmaps/{Path(self.image).name}"

    @property
    def keyframe(self) -> str:
        """The name of the keyframe it belongs to (its own for a keyframe)."""
        return self.name.split("~")[0] if self.between else self.name


def anchor_shot(board: Storyboard) -> Shot:
    anchor = board.spec.anchor
    return Shot(
        "anchor", "anchor", 0, "anchor.png", anchor.prompt, lora=board.lora, control=tuple(anchor.control or ())
    )


def frame_shot(plan: FramePlan) -> Shot:
    return Shot(
        "frame", plan.name, plan.index, f"frames/{plan.index:04d}.png", plan.prompt, plan.rules, plan.lora,
        plan.control, plan.hold, None, plan.anchor_words, plan.frame_words,
    )  # fmt: skip


def tween_shot(plan: FramePlan, between: Between) -> Shot:
    """An in-between: its keyframe's prompt, rules, LoRA scales and control images, at `between`."""
    image = f"frames/{plan.index:04d}-{between.k}.png"
    return replace(
        frame_shot(plan), kind="tween", name=f"{plan.name}~{between.k}", image=image, hold=1, between=between
    )


def shots_of(board: Storyboard) -> list[Shot]:
    """The anchor, then frames and in-betweens as the clip shows them: each keyframe
    after its in-betweens, which start from the keyframe before it (the anchor for the
    first)."""
    shots, before = [anchor_shot(board)], (board.spec.anchor.prompt, tuple(board.spec.anchor.control or ()))
    for plan in board.frames:
        n = board.spec.frames[plan.index - 1].tween
        shots += [tween_shot(plan, Between(*before, k, n)) for k in range(1, n + 1)] + [frame_shot(plan)]
        before = (plan.prompt, plan.control)
    return shots


def output_names(shots: list[Shot]) -> Iterator[str]:
    """Every file the shots' images, masks and heat-maps take in the output folder."""
    return (name for shot in shots for name in (shot.image, *shot.mask_images, shot.heatmap))


def report_entry(shot: Shot, rules: list[dict], reused: bool) -> dict:
    """What the report says of a shot before its image is measured (`rules` as described
    for the report)."""
    kinds = [spec.mask.kind for spec in shot.rules if spec.mask is not None]
    between = shot.between
    return {
        "index": shot.index,
        "name": shot.name,
        **({"tween_of": shot.keyframe, "tween": [between.k, between.n]} if between else {}),
        "prompt": shot.prompt,
        "image": shot.image,
        "hold": shot.hold,
        **({"lora": dict(shot.lora)} if shot.lora else {}),  # every LoRA's scale in this shot
        "rules": rules,
        "masks": [{"kind": kind, "image": path} for kind, path in zip(kinds, shot.mask_images)],
        "heatmap": shot.heatmap,
        "reused": reused,
    }
