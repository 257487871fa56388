"""A storyboard resolved into a plan: every frame's prompt and rules, ready to render.

    board = load_storyboard("storyboard.yaml")   # a path, YAML text, or a mapping
    board.frames[0].prompt, board.frames[0].rules

Loading reads the YAML with a safe loader (source.py), validates it against the schema
(schema.py) and then resolves what pydantic cannot check: step ranges, prompt deltas,
mask files. Every problem becomes one positioned line (InvalidInput holds them all).
Layer names are checked against a model's layer map (`Storyboard.check_layers`).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from pydantic import ValidationError

from ..engine.layers import LayerMap
from ..engine.specs import Edit, MaskPlan, RuleSpec
from ..errors import InvalidInput
from .checks import anchor_image_problems, box_problem, controlnet_problems, image_problem, resolve_files
from .deltas import apply_delta, as_list, parse_steps, split_tags
from .schema import MaskRule, OutputSpec, StoryboardSpec
from .source import dotted, mark, pydantic_problem, read_yaml


@dataclass(frozen=True)
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

    def edit(self, anchor_prompt: str, anchor_control: tuple = (), folder: Path = Path(".")) -> Edit:
        control = tuple(folder / path for path in self.control)
        anchor = tuple(folder / path for path in anchor_control)
        return Edit(anchor_prompt, self.prompt, self.anchor_words, self.frame_words, anchor, control)

    @property
    def keyframe(self) -> FramePlan:
        return self

    @property
    def image(self) -> str:
        """Where the frame goes in the output folder."""
        return f"frames/{self.index:04d}.png"

    @property
    def mask_images(self) -> list[str]:
        """Where its mask rules' masks go: masks/0001.png, then masks/0001-2.png, ..."""
        count = sum(rule.mode == "mask" for rule in self.rules)
        return [f"masks/{self.index:04d}{'' if n == 1 else f'-{n}'}.png" for n in range(1, count + 1)]


@dataclass(frozen=True)
class TweenPlan:
    """The k-th of n in-between frames before `frame`, from the previous frame (or the
    anchor): its text conditioning and control images `t` = k / (n + 1) of the way from
    that frame's to this one's, under this frame's rules. Shown once each."""

    frame: FramePlan
    k: int
    n: int
    from_prompt: str
    from_control: tuple[str, ...]
    hold: int = 1

    @property
    def keyframe(self) -> FramePlan:
        return self.frame

    @property
    def t(self) -> float:
        return self.k / (self.n + 1)

    @property
    def name(self) -> str:
        return f"{self.frame.name}~{self.k}"

    @property
    def index(self) -> tuple[int, int]:
        return (self.frame.index, self.k)

    @property
    def prompt(self) -> str:
        return self.frame.prompt

    @property
    def image(self) -> str:
        return f"frames/{self.frame.index:04d}-{self.k}.png"

    @property
    def mask_images(self) -> list[str]:
        return []


@dataclass
class Storyboard:
    path: Path  # the file, or for YAML text and mappings `<storyboard>` in `folder`
    spec: StoryboardSpec
    frames: list[FramePlan]
    marks: dict[tuple, tuple[int, int]] = field(repr=False)

    @property
    def folder(self) -> Path:
        """What the storyboard's relative paths (masks, output, segmenter) resolve against."""
        return self.path.parent

    def video_order(self) -> list[FramePlan | TweenPlan]:
        """Frames and in-betweens as the clip shows them: each frame after its in-betweens,
        which start from the frame before it (the anchor for the first)."""
        order, before = [], (self.spec.anchor.prompt, tuple(self.spec.anchor.control or ()))
        for plan in self.frames:
            n = self.spec.frames[plan.index - 1].tween
            order += [TweenPlan(plan, k, n, *before) for k in range(1, n + 1)] + [plan]
            before = (plan.prompt, plan.control)
        return order

    @property
    def tweens(self) -> list[TweenPlan]:
        """Every in-between frame, in video order."""
        return [plan for plan in self.video_order() if isinstance(plan, TweenPlan)]

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
        """Raise InvalidInput for every layer name the model lacks. A layer map read from
        a config alone (no modules) lets raw paths below a block through: those are
        checked when the rules are compiled for the loaded U-Net."""
        known = layers.known_names()
        problems = []
        for frame_rules in self.rule_paths():
            for path, rule in frame_rules:
                named = [(path + ("layers",), rule.layers)]
                if getattr(rule, "mask", None) is not None and rule.mask.layers:
                    named.append((path + ("mask", "layers"), rule.mask.layers))
                for at, names in named:
                    for i, name in enumerate(names):
                        if name not in known and not (layers.config_only and name.startswith(_BLOCKS)):
                            message = f"unknown layer '{name}' (known: {layers.listing()})"
                            problems.append(f"{self.where(at + (i,))}: {dotted(at)}: {message}")
        if problems:
            raise InvalidInput(list(dict.fromkeys(problems)))

    def check_boxes(self, width: int, height: int) -> None:
        """Raise InvalidInput for every box that lies wholly outside a width x height image."""
        problems = []
        for frame_rules in self.rule_paths():
            for path, rule in frame_rules:
                boxes = getattr(getattr(rule, "mask", None), "boxes", None)
                problem = box_problem(boxes, width, height) if boxes else None
                if problem:
                    problems.append(self.problem(path + ("mask", "boxes"), problem))
        if problems:
            raise InvalidInput(list(dict.fromkeys(problems)))

    def check_no_noise_masks(self, why: str) -> None:
        """Raise InvalidInput at every `mask: {auto: noise}` (the model cannot make them)."""
        problems = [
            self.problem(path + ("mask", "auto"), why)
            for frame_rules in self.rule_paths()
            for path, rule in frame_rules
            if getattr(getattr(rule, "mask", None), "auto", None) == "noise"
        ]
        if problems:
            raise InvalidInput(problems)

    def check_sd_pipeline_for_real_anchor(self) -> None:
        """Raise InvalidInput at `anchor.image` on an SDXL pipeline (its inversion would need
        the pooled text and size conditioning; not built yet)."""
        if self.spec.anchor.image is not None:
            raise InvalidInput(self.problem(("anchor", "image"), "a real-image anchor supports SD1.x/2.x pipelines"))

    def rule_paths(self):
        yield [(("swap", i), r) for i, r in enumerate(self.spec.swap)]
        for f, frame in enumerate(self.spec.frames):
            yield [(("frames", f, "swap", i), r) for i, r in enumerate(frame.swap or [])]


_BLOCKS = ("down_blocks.", "up_blocks.", "mid_block.", "conv_in.")


# --------------------------------------------------------------------------- loading


def load_storyboard(source: str | os.PathLike | Mapping, folder: str | os.PathLike | None = None) -> Storyboard:
    """Read, validate and resolve a storyboard; raise InvalidInput with every problem.

    `source` is a path (a `Path`, or a string without a line break), YAML text (a string
    with line breaks) or a mapping. Text and mappings resolve relative paths against
    `folder` (default: the working directory); error lines then name `<storyboard>` and,
    for text, the line and column."""
    if isinstance(source, Mapping):
        path, data, marks = _unnamed(folder), dict(source), {}
    elif isinstance(source, str) and "\n" in source:
        path = _unnamed(folder)
        data, marks = read_yaml(source, str(path))
    else:
        path = Path(source)
        data, marks = read_yaml(read_text(path), str(path))
    if not isinstance(data, dict):
        raise InvalidInput(f"{path}:1:1: storyboard: expected a mapping with version, model, anchor, frames")
    try:
        spec = StoryboardSpec.model_validate(data)
    except ValidationError as error:
        problems = []
        for e in error.errors():
            where, message = pydantic_problem(e, data)
            shown = tuple(p for p in where if p != "<key>")
            problems.append(
                f"{path}:{':'.join(map(str, mark(marks, where)))}: {dotted(shown) or 'storyboard'}: {message}"
            )
        raise InvalidInput(list(dict.fromkeys(problems))) from None
    return resolve(Storyboard(path=path, spec=spec, frames=[], marks=marks))


def read_text(path: Path) -> str:
    """The storyboard file as text: UTF-8 (a byte-order mark is allowed), else one line that says why not."""
    try:
        raw = path.read_bytes()
    except OSError as error:
        raise InvalidInput(f"{path}: cannot read storyboard: {error.strerror or error}") from None
    if raw.startswith((b"\xff\xfe", b"\xfe\xff")):
        raise InvalidInput(f"{path}: the storyboard is UTF-16 text; save it as UTF-8")
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        raise InvalidInput(
            f"{path}: the storyboard is not UTF-8 text (byte 0x{raw[error.start]:02x} at offset {error.start}); "
            "save it as UTF-8"
        ) from None
    if "\x00" in text:
        raise InvalidInput(f"{path}: the storyboard holds NUL bytes: a binary file, not YAML")
    return text


def _unnamed(folder) -> Path:
    return Path(folder if folder is not None else ".") / "<storyboard>"


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
            if isinstance(rule, MaskRule) and rule.mask.image is not None:
                problem = image_problem(board.folder / rule.mask.image)
                if problem:
                    problems.append(board.problem(at + (i, "mask", "image"), problem))
            if isinstance(rule, MaskRule) and rule.mask.boxes is not None:
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
                board.problem(at + ("name",), f"duplicate frame name '{name}' (also frames[{names[name]}])")
            )
        names.setdefault(name, i)
        rules = default_rules if frame.swap is None else rules_for(frame.swap, at + ("swap",))
        for name in frame.lora:
            if name not in dict(board.lora):
                known = ", ".join(dict(board.lora)) or "none: model.lora is empty"
                problems.append(board.problem(at + ("lora", name), f"no LoRA named '{name}' (known: {known})"))
        lora = tuple((name, frame.lora.get(name, scale)) for name, scale in board.lora)
        prompt = frame.prompt
        if prompt is None:
            try:
                prompt = apply_delta(spec.anchor.prompt, frame.replace, as_list(frame.add), as_list(frame.remove))
            except KeyError as missing:
                word = missing.args[0]
                kind = "replace" if word in frame.replace else "remove"
                problems.append(board.problem(at + (kind,), f"'{word}' is not in the anchor prompt"))
                continue
            anchor_words = tuple(frame.replace) + tuple(as_list(frame.remove))
            frame_words = tuple(frame.replace.values()) + tuple(as_list(frame.add))
        else:  # a whole new prompt: the tags that differ
            anchor_tags, frame_tags = split_tags(spec.anchor.prompt), split_tags(prompt)
            anchor_words = tuple(t for t in anchor_tags if t not in frame_tags)
            frame_words = tuple(t for t in frame_tags if t not in anchor_tags)
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


def rule_spec(rule, total_steps: int, folder: Path, where: tuple = ()) -> RuleSpec:
    """A schema rule (FullRule, MaskRule, ThresholdRule) resolved for the engine; raises
    ValueError for steps outside 1..total_steps."""
    return RuleSpec(
        mode=rule.mode,
        layers=tuple(rule.layers),
        steps=parse_steps(rule.steps, total_steps),
        threshold=getattr(rule, "threshold", None),
        reduce=getattr(rule, "reduce", "element"),
        relative=getattr(rule, "relative", False),
        mask=rule.mask.plan(folder) if isinstance(rule, MaskRule) else None,
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
