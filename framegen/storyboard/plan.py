"""A storyboard resolved into a plan: every frame's prompt and rules, ready to render.

    board = load_storyboard("storyboard.yaml")   # load.py: a path, YAML text, or a mapping
    board.frames[0].prompt, board.frames[0].rules

Resolving checks what pydantic cannot: step ranges, prompt deltas, the files a storyboard
names (checks.py). What the model can do is checked against its config before loading
(`Storyboard.check_model`), by the same table a loaded model is checked with.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from ..engine.layers import LayerMap
from ..engine.specs import MaskPlan, RuleSpec
from ..errors import InvalidInput, shown
from .checks import anchor_image_problems, box_problem, controlnet_problems, image_problem, resolve_files
from .deltas import apply_delta, as_list, parse_steps, split_tags
from .model_fit import box_problems, family_problems, layer_problems, size_problems, weights_problems
from .schema import OutputSpec, StoryboardSpec
from .source import dotted, mark


@dataclass(frozen=True, slots=True)
class FramePlan:
    index: int  # 1-based, the frame's file number
    name: str
    prompt: str
    rules: tuple[RuleSpec, ...]
    hold: int
    # what the edit changes, for automatic masks: words of the anchor prompt that were
    # replaced or removed, and words of the frame prompt that replace them or were added
    anchor_words: tuple[str, ...] = ()
    frame_words: tuple[str, ...] = ()
    lora: tuple[tuple[str, float], ...] = ()  # (name, scale) of every LoRA of the model, for this frame
    control: tuple[str, ...] = ()  # its control images (the anchor's unless it has its own), one per ControlNet


@dataclass
class Storyboard:
    path: Path  # the file, or for YAML text and mappings `<storyboard>` in `folder`
    spec: StoryboardSpec
    frames: list[FramePlan]
    marks: Mapping[tuple, tuple[int, int]] = field(repr=False)  # source.Marks: positions, found when asked

    @property
    def folder(self) -> Path:
        """What the storyboard's relative paths (masks, output, segmenter) resolve against."""
        return self.path.parent

    @property
    def lora(self) -> tuple[tuple[str, float], ...]:
        """(name, scale) of the model's LoRAs as `model.lora` gives them: the anchor's."""
        return self.spec.model.lora_scales

    @property
    def output_dir(self) -> Path:
        output = self.spec.output
        written = output.path if isinstance(output, OutputSpec) else output
        return Path(os.path.normpath(self.folder / (written or f"out/{self.path.stem}")))

    def where(self, path: tuple) -> str:
        """`file:line:col` of the value at `path` (or its nearest parent)."""
        line, col = mark(self.marks, path)
        return f"{self.path}:{line}:{col}"

    def problem(self, path: tuple, message: str) -> str:
        return f"{self.where(path)}: {dotted(path)}: {message}"

    def check_layers(self, layers: LayerMap) -> None:
        """Raise InvalidInput for every layer name the model lacks."""
        _raise(layer_problems(self, layers))

    def check_model(self, config, scheduler: str | None = None) -> None:
        """Raise InvalidInput for everything the model (a ModelConfig, and the name of the
        scheduler it renders with when known) cannot do as asked: unknown layers, boxes
        outside the image, what its family cannot do (engine/families.py)."""
        render = self.spec.render
        width, height = render.width or config.native, render.height or config.native
        problems = layer_problems(self, config.layers) + box_problems(self, width, height)
        problems += size_problems(self, width, height, config.size_step, config.family.label)
        _raise(problems + family_problems(self, config.family, scheduler) + weights_problems(self, config))

    def rule_paths(self):
        yield [(("swap", i), r) for i, r in enumerate(self.spec.swap)]
        for f, frame in enumerate(self.spec.frames):
            yield [(("frames", f, "swap", i), r) for i, r in enumerate(frame.swap or [])]


def _raise(problems: list[str]) -> None:
    if problems:
        raise InvalidInput(list(dict.fromkeys(problems)))


def resolve(board: Storyboard) -> Storyboard:
    """Fill `board.frames`: each frame's prompt (its delta applied) and rules (steps parsed)."""
    spec, problems = board.spec, []

    def rules_for(rules: list, at: tuple) -> tuple[RuleSpec, ...]:
        resolved = []
        for i, rule in enumerate(rules):
            try:
                resolved.append(rule_spec(rule, spec.render.steps, board.folder, at + (i,)))
            except ValueError as error:
                problems.append(board.problem(at + (i, "steps"), str(error)))
                continue
            if getattr(rule, "mask", None) is not None and rule.mask.image is not None:
                problem = image_problem(board.folder / rule.mask.image)
                if problem:
                    problems.append(board.problem(at + (i, "mask", "image"), problem))
            if getattr(rule, "mask", None) is not None and rule.mask.boxes is not None:
                width, height = spec.render.width or 1 << 30, spec.render.height or 1 << 30  # unknown: any size
                problem = box_problem(rule.mask.boxes, width, height)
                if problem:
                    problems.append(board.problem(at + (i, "mask", "boxes"), problem))
        return tuple(resolved)

    problems += resolve_files(board)
    problems += anchor_image_problems(board)
    problems += controlnet_problems(board)
    default_rules = rules_for(spec.swap, ("swap",))
    names: dict[str, int] = {}
    for i, frame in enumerate(spec.frames):
        at = ("frames", i)
        name = frame.name or f"frame{i + 1}"
        if name in names:
            problems.append(
                board.problem(at + ("name",), f"duplicate frame name '{shown(name)}' (also frames[{names[name]}])")
            )
        names.setdefault(name, i)
        rules = default_rules if frame.swap is None else rules_for(frame.swap, at + ("swap",))
        problems += lora_problems(board, frame, at)
        lora = tuple((lora_name, frame.lora.get(lora_name, scale)) for lora_name, scale in board.lora)
        try:
            prompt, anchor_words, frame_words = edit(spec.anchor.prompt, frame)
        except KeyError as missing:
            word = missing.args[0]
            kind = "replace" if word in frame.replace else "remove"
            problems.append(board.problem(at + (kind,), f"'{shown(word)}' is not in the anchor prompt"))
            continue
        board.frames.append(
            FramePlan(
                index=i + 1, name=name, prompt=prompt, rules=rules, hold=frame.hold, lora=lora,
                control=tuple(frame.control if frame.control is not None else spec.anchor.control or ()),
                anchor_words=tuple(w.strip() for w in anchor_words if w.strip()),
                frame_words=tuple(w.strip() for w in frame_words if w.strip()),
            )
        )  # fmt: skip
    if problems:
        raise InvalidInput(problems)
    return board


def lora_problems(board: Storyboard, frame, at: tuple) -> list[str]:
    """A frame's `lora:` scales name LoRAs of `model.lora` (under their own names)."""
    known = ", ".join(dict(board.lora)) or "none: model.lora is empty"
    return [
        board.problem(at + ("lora", lora_name), f"no LoRA named '{shown(lora_name)}' (known: {known})")
        for lora_name in frame.lora
        if lora_name not in dict(board.lora)
    ]


def edit(anchor_prompt: str, frame) -> tuple[str, tuple[str, ...], tuple[str, ...]]:
    """A frame's (schema Frame) prompt, and what it changes for automatic masks: the words
    of the anchor prompt it replaces or removes, and of its own prompt that replace or add
    (for a whole new prompt, the tags that differ). KeyError: a word not in the anchor prompt."""
    if frame.prompt is None:
        prompt = apply_delta(anchor_prompt, frame.replace, as_list(frame.add), as_list(frame.remove))
        anchor_words = tuple(frame.replace) + tuple(as_list(frame.remove))
        frame_words = tuple(frame.replace.values()) + tuple(as_list(frame.add))
    else:
        prompt, anchor_tags, frame_tags = frame.prompt, split_tags(anchor_prompt), split_tags(frame.prompt)
        anchor_words = tuple(t for t in anchor_tags if t not in frame_tags)
        frame_words = tuple(t for t in frame_tags if t not in anchor_tags)
    return prompt, anchor_words, frame_words


def rule_spec(rule, total_steps: int, folder: Path, where: tuple = ()) -> RuleSpec:
    """A schema rule (FullRule, MaskRule, ThresholdRule, KvRule) resolved for the engine; raises
    ValueError for steps outside 1..total_steps."""
    return RuleSpec(
        mode=rule.mode,
        layers=tuple(rule.layers),
        steps=parse_steps(rule.steps, total_steps),
        threshold=getattr(rule, "threshold", None),
        reduce=getattr(rule, "reduce", "element"),
        relative=getattr(rule, "relative", False),
        mask=rule.mask.plan(folder) if getattr(rule, "mask", None) is not None else None,
        where=where,
    )


def mask_as_written(mask: MaskPlan, folder: Path) -> dict:
    """A resolved mask as a storyboard writes it (the keys given; an image path relative
    to `folder` as written, or absolute): for reports, keys and sweeps."""
    written = {k: list(v) if isinstance(v, tuple) else v for k, v in vars(mask).items() if v is not None}
    if mask.boxes is not None:
        written["boxes"] = [list(box) for box in mask.boxes]
    if mask.image is not None:
        written["image"] = str(mask.image.relative_to(folder) if mask.image.is_relative_to(folder) else mask.image)
    return written
