"""Storyboard: the YAML file, its schema, and what it resolves to.

`load_storyboard(path)` reads the YAML with a safe loader, remembers where every value
stands (line, column), validates it with pydantic and then checks what pydantic cannot
(step ranges, prompt deltas, mask files). Every problem becomes one line:

    storyboard.yaml:12:7: frames[2].swap[0].steps: step 60 is outside 1..50

Layer names are checked later, against the model's layer map (`Storyboard.check_layers`).
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal, Union, get_args

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from .errors import InvalidInput

SCHEDULERS = ("ddim", "euler", "euler_a", "dpmpp_2m", "pndm", "lms")

# ---------------------------------------------------------------------------- schema


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ModelSpec(_Strict):
    id: str = Field(min_length=1)
    scheduler: Literal[SCHEDULERS] | None = None  # None: the model's own
    dtype: Literal["auto", "float32", "float16", "bfloat16"] = "auto"
    device: str = "auto"
    revision: str | None = None

    @field_validator("device")
    @classmethod
    def _device(cls, value: str) -> str:
        if not re.fullmatch(r"auto|cpu|mps|cuda(:\d+)?", value):
            raise ValueError(f"unknown device '{value}' (use auto, cpu, cuda, cuda:N or mps)")
        return value


class RenderSpec(_Strict):
    width: int | None = Field(None, gt=0)  # None: the model's native size
    height: int | None = Field(None, gt=0)
    steps: int = Field(50, ge=1, le=1000)
    guidance: float = Field(7.5, ge=0)
    seed: int = Field(1111, ge=0)
    negative_prompt: str = ""
    cache: Literal["device", "cpu", "disk"] = "device"
    batch: int = Field(1, ge=1)  # frames per U-Net batch

    @field_validator("width", "height")
    @classmethod
    def _multiple_of_8(cls, value: int | None) -> int | None:
        if value is not None and value % 8:
            raise ValueError(f"{value} is not a multiple of 8 (the VAE works on 8-pixel blocks)")
        return value


Steps = Union[Literal["all"], int, str, list[int]]


class _RuleBase(_Strict):
    layers: list[str] = Field(min_length=1)
    steps: Steps = "all"

    @field_validator("layers", mode="before")
    @classmethod
    def _comma_separated(cls, value):
        return [name.strip() for name in value.split(",") if name.strip()] if isinstance(value, str) else value


class FullRule(_RuleBase):
    mode: Literal["full"]


class MaskSpec(_Strict):
    """1 = keep the anchor. Drawn (`grid`, `image`, `boxes`) or found by the model (`auto`)."""

    grid: list[str] | None = None
    image: str | None = None
    boxes: list[tuple[int, int, int, int]] | None = None
    auto: Literal["attention", "noise"] | None = None
    # auto masks only: the delta's words unless given; attention layers (default: the
    # model's mid-resolution cross-attention layers); relative threshold; dilation in
    # latent cells (defaults per kind: automask.py)
    words: list[str] | None = None
    layers: list[str] | None = None
    threshold: float | None = Field(None, ge=0)
    dilate: int | None = Field(None, ge=0)

    @model_validator(mode="after")
    def _exactly_one(self) -> "MaskSpec":
        given = [k for k in ("grid", "image", "boxes", "auto") if getattr(self, k) is not None]
        if len(given) != 1:
            raise ValueError("give exactly one of grid, image, boxes or auto")
        tuning = [k for k in ("words", "layers", "threshold", "dilate") if k in self.model_fields_set]
        if self.auto is None and tuning:
            raise ValueError(f"{', '.join(tuning)} only apply to auto masks")
        if self.auto == "noise" and self.layers is not None:
            raise ValueError("layers only apply to auto: attention (noise masks come from the U-Net's output)")
        return self

    @property
    def kind(self) -> str:
        return next(k for k in ("grid", "image", "boxes") if getattr(self, k) is not None) if self.auto is None else self.auto

    @field_validator("words", mode="before")
    @classmethod
    def _word_list(cls, value):
        return [value] if isinstance(value, str) else value

    @field_validator("layers", mode="before")
    @classmethod
    def _layer_list(cls, value):
        return [name.strip() for name in value.split(",") if name.strip()] if isinstance(value, str) else value

    @field_validator("grid")
    @classmethod
    def _grid(cls, rows: list[str] | None) -> list[str] | None:
        if rows is None:
            return rows
        if not rows or any(not re.fullmatch(r"[01]+", r) for r in rows):
            raise ValueError("grid rows must be non-empty strings of 0 and 1")
        if len({len(r) for r in rows}) != 1:
            raise ValueError("grid rows must all have the same length")
        return rows

    @field_validator("boxes")
    @classmethod
    def _boxes(cls, boxes):
        for x0, y0, x1, y1 in boxes or []:
            if x1 <= x0 or y1 <= y0:
                raise ValueError(f"box [{x0}, {y0}, {x1}, {y1}] is empty (use [x0, y0, x1, y1])")
        return boxes


class MaskRule(_RuleBase):
    mode: Literal["mask"]
    mask: MaskSpec


class ThresholdRule(_RuleBase):
    mode: Literal["threshold"]
    threshold: float = Field(ge=0)
    reduce: Literal["element", "position"] = "element"
    relative: bool = False  # threshold x the anchor tensor's mean |value| at that layer and step


Rule = Annotated[Union[FullRule, MaskRule, ThresholdRule], Field(discriminator="mode")]


class Anchor(_Strict):
    prompt: str


class Frame(_Strict):
    name: str | None = None
    prompt: str | None = None
    replace: dict[str, str] = {}
    add: str | list[str] = []
    remove: str | list[str] = []
    swap: list[Rule] | None = None  # None: the storyboard's default rules
    hold: int = Field(1, ge=1)

    @model_validator(mode="after")
    def _prompt_or_delta(self) -> "Frame":
        if self.prompt is not None and (self.replace or self.add or self.remove):
            raise ValueError("give either a full prompt or a delta (replace/add/remove), not both")
        return self


class Video(_Strict):
    fps: float = Field(8, gt=0)
    crf: int = Field(18, ge=0, le=51)


class Background(_Strict):
    segmenter: Literal["rembg", "none"] = "rembg"
    model: str | None = None  # None: `demo` for the demo model, else rembg's u2net
    model_path: str | None = None


class ReportSpec(_Strict):
    background: Background = Background()


class Checks(_Strict):
    max_background_mse: float | None = Field(None, ge=0)


class StoryboardSpec(_Strict):
    version: Literal[1]
    model: ModelSpec
    render: RenderSpec = RenderSpec()
    anchor: Anchor
    swap: list[Rule] = []
    frames: list[Frame] = Field(min_length=1)
    video: Video = Video()
    report: ReportSpec = ReportSpec()
    checks: Checks = Checks()
    output: str | None = None


# ---------------------------------------------------------------- resolved storyboard


@dataclass(frozen=True)
class RulePlan:
    """One swap rule as written, with its steps resolved; `where` is its YAML path."""

    mode: str
    layers: tuple[str, ...]
    steps: tuple[int, ...]
    where: str
    threshold: float | None = None
    reduce: str = "element"
    relative: bool = False
    mask: MaskSpec | None = None


@dataclass(frozen=True)
class FramePlan:
    index: int  # 1-based, the frame's file number
    name: str
    prompt: str
    rules: tuple[RulePlan, ...]
    hold: int
    # what the edit changes, for automatic masks: words of the anchor prompt that were
    # replaced or removed, and words of the frame prompt that replace them or were added
    anchor_words: tuple[str, ...] = ()
    frame_words: tuple[str, ...] = ()


@dataclass
class Storyboard:
    path: Path
    spec: StoryboardSpec
    frames: list[FramePlan]
    marks: dict[tuple, tuple[int, int]] = field(repr=False)

    @property
    def output_dir(self) -> Path:
        return Path(os.path.normpath(self.path.parent / (self.spec.output or f"out/{self.path.stem}")))

    def where(self, path: tuple) -> str:
        """`file:line:col` of the value at `path` (or its nearest parent)."""
        while path and path not in self.marks:
            path = path[:-1]
        line, col = self.marks.get(path, (1, 1))
        return f"{self.path}:{line}:{col}"

    def problem(self, path: tuple, message: str) -> str:
        return f"{self.where(path)}: {dotted(path)}: {message}"

    def check_layers(self, known: set[str], listing: str) -> None:
        """Raise InvalidInput for every layer name not in `known`."""
        problems = []
        for frame_rules in self._rule_paths():
            for path, rule in frame_rules:
                named = [(path + ("layers",), rule.layers)]
                if getattr(rule, "mask", None) is not None and rule.mask.layers:
                    named.append((path + ("mask", "layers"), rule.mask.layers))
                for at, names in named:
                    for i, name in enumerate(names):
                        if name not in known:
                            problems.append(
                                f"{self.where(at + (i,))}: {dotted(at)}: unknown layer '{name}' (known: {listing})"
                            )
        if problems:
            raise InvalidInput(sorted(set(problems), key=problems.index))

    def _rule_paths(self):
        yield [(("swap", i), r) for i, r in enumerate(self.spec.swap)]
        for f, frame in enumerate(self.spec.frames):
            yield [(("frames", f, "swap", i), r) for i, r in enumerate(frame.swap or [])]


def dotted(path: tuple) -> str:
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


# --------------------------------------------------------------------- YAML + marks


def _read_yaml(path: Path) -> tuple[Any, dict[tuple, tuple[int, int]]]:
    """Parse YAML safely and record the 1-based (line, col) of every value, keyed by
    its path; a mapping key's own place is stored under path + ('<key>',)."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as error:
        raise InvalidInput(f"{path}: cannot read storyboard: {error.strerror or error}") from None
    loader = yaml.SafeLoader(text)
    try:
        node = loader.get_single_node()
        data = loader.construct_document(node) if node is not None else None
    except yaml.MarkedYAMLError as error:
        mark = error.problem_mark or error.context_mark
        place = f"{path}:{mark.line + 1}:{mark.column + 1}" if mark else str(path)
        raise InvalidInput(f"{place}: invalid YAML: {error.problem or error.context}") from None
    finally:
        loader.dispose()

    marks: dict[tuple, tuple[int, int]] = {}
    problems: list[str] = []

    def walk(node, at: tuple):
        marks[at] = (node.start_mark.line + 1, node.start_mark.column + 1)
        if isinstance(node, yaml.MappingNode):
            seen = set()
            for key_node, value_node in node.value:
                key = key_node.value
                if key in seen:
                    line, col = key_node.start_mark.line + 1, key_node.start_mark.column + 1
                    problems.append(f"{path}:{line}:{col}: {dotted(at + (key,))}: duplicate key '{key}'")
                seen.add(key)
                marks[at + (key, "<key>")] = (key_node.start_mark.line + 1, key_node.start_mark.column + 1)
                walk(value_node, at + (key,))
        elif isinstance(node, yaml.SequenceNode):
            for i, item in enumerate(node.value):
                walk(item, at + (i,))

    if node is not None:
        walk(node, ())
    if problems:
        raise InvalidInput(problems)
    return data, marks


# ------------------------------------------------------------------------- validation


def _data_path(loc: tuple, data: Any) -> tuple:
    """Map a pydantic error location onto the data, dropping the union tag it inserts
    after a rule's index (`('swap', 0, 'mask', 'grid')` -> `('swap', 0, 'grid')`)."""
    path, node, tag_dropped = [], data, False
    for part in loc:
        if isinstance(node, dict) and part == node.get("mode") and not tag_dropped:
            tag_dropped = True
        elif isinstance(node, dict) and part in node:
            node = node[part]
            path.append(part)
        elif isinstance(node, list) and isinstance(part, int) and part < len(node):
            node = node[part]
            path.append(part)
        else:  # a missing key: name it, and point at its parent
            path.append(part)
            break
    return tuple(path)


def _model_at(path: tuple):
    """The pydantic model class that validates the mapping at `path` (for key hints)."""
    model: Any = StoryboardSpec
    for part in path:
        if isinstance(part, int):
            continue
        if model is None or part not in model.model_fields:
            return None
        annotation = model.model_fields[part].annotation
        model = next((c for c in _classes(annotation) if issubclass(c, BaseModel)), None)
    return model


def _classes(annotation) -> list[type]:
    found, stack = [], [annotation]
    while stack:
        a = stack.pop()
        if isinstance(a, type):
            found.append(a)
        stack.extend(get_args(a))
    return found


def _pydantic_problem(error: dict, data: Any) -> tuple[tuple, str]:
    loc, kind, message = tuple(error["loc"]), error["type"], error["msg"]
    path = _data_path(loc, data)
    if kind == "extra_forbidden":
        parent = path[:-1]
        model = _model_at(parent)
        mapping = data_at(data, parent)
        if isinstance(mapping, dict) and "mode" in mapping:  # a rule: its mode's fields
            model = {"full": FullRule, "mask": MaskRule, "threshold": ThresholdRule}.get(mapping["mode"], model)
        known = ", ".join(model.model_fields) if model else ""
        return path + ("<key>",), f"unknown key '{path[-1]}'" + (f" (known: {known})" if known else "")
    if kind == "missing":
        return path, "required"
    if kind == "union_tag_invalid":
        return path + ("mode",), f"unknown mode '{error['ctx']['tag']}' (known: full, mask, threshold)"
    if kind == "union_tag_not_found":
        return path, "a rule needs 'mode' (full, mask or threshold)"
    if kind == "too_short" and path == ("frames",):
        return path, "a storyboard needs at least one frame"
    if kind == "literal_error":
        return path, f"'{error['input']}' is not one of {error['ctx']['expected']}"
    return path, message.removeprefix("Value error, ")


def data_at(data: Any, path: tuple) -> Any:
    for part in path:
        try:
            data = data[part]
        except (KeyError, IndexError, TypeError):
            return None
    return data


def parse_steps(value: Steps, total: int) -> tuple[int, ...]:
    """`"1-20"`, `"1-5,10,15"`, `[1, 2, 3]`, `7` or `all`: 1-based, inclusive."""
    if value == "all":
        return tuple(range(1, total + 1))
    if isinstance(value, bool):
        raise ValueError("steps must be a range like '1-20', a list of ints, or 'all'")
    if isinstance(value, int):
        parts: list[tuple[int, int]] = [(value, value)]
    elif isinstance(value, list):
        parts = [(v, v) for v in value]
    else:
        parts = []
        for piece in str(value).split(","):
            match = re.fullmatch(r"\s*(\d+)\s*(?:-\s*(\d+)\s*)?", piece)
            if not match:
                raise ValueError(f"cannot read steps '{value}' (use '1-20', '1-5,10,15', a list, or 'all')")
            first = int(match[1])
            parts.append((first, int(match[2]) if match[2] else first))
    steps: set[int] = set()
    for first, last in parts:
        if last < first:
            raise ValueError(f"reversed step range {first}-{last}")
        for step in (first, last):
            if not 1 <= step <= total:
                raise ValueError(f"step {step} is outside 1..{total} (render.steps)")
        steps.update(range(first, last + 1))
    if not steps:
        raise ValueError("no steps given")
    return tuple(sorted(steps))


# ---------------------------------------------------------------------- prompt deltas


def split_tags(prompt: str) -> list[str]:
    return [t.strip() for t in prompt.split(",") if t.strip()]


def apply_delta(anchor: str, replace: dict[str, str], add: list[str], remove: list[str]) -> str:
    """The frame's prompt: `replace` substrings, then `remove` tags (or substrings),
    then `add` tags at the end. Raises KeyError(word) for a word the prompt lacks."""
    prompt = anchor
    for old, new in replace.items():
        if old not in prompt:
            raise KeyError(old)
        prompt = prompt.replace(old, new)
    for word in remove:
        tags = split_tags(prompt)
        if word.strip() in tags:
            tags.remove(word.strip())
        elif word in prompt:
            tags = split_tags(prompt.replace(word, ""))
        else:
            raise KeyError(word)
        prompt = ", ".join(tags)
    return ", ".join(split_tags(prompt) + [w.strip() for w in add if w.strip()])


def _as_list(value: str | list[str]) -> list[str]:
    return [value] if isinstance(value, str) else list(value)


# --------------------------------------------------------------------------- loading


def load_storyboard(path: str | Path) -> Storyboard:
    """Read, validate and resolve a storyboard; raise InvalidInput with every problem."""
    path = Path(path)
    data, marks = _read_yaml(path)
    if not isinstance(data, dict):
        raise InvalidInput(f"{path}:1:1: storyboard: expected a mapping with version, model, anchor, frames")
    try:
        spec = StoryboardSpec.model_validate(data)
    except ValidationError as error:
        problems = []
        for e in error.errors():
            where, message = _pydantic_problem(e, data)
            shown = tuple(p for p in where if p != "<key>")
            loc = f"{path}:{':'.join(map(str, _mark(marks, where)))}"
            problems.append(f"{loc}: {dotted(shown) or 'storyboard'}: {message}")
        raise InvalidInput(list(dict.fromkeys(problems))) from None

    board = Storyboard(path=path, spec=spec, frames=[], marks=marks)
    problems: list[str] = []

    def rules_for(rules: list, at: tuple) -> tuple[RulePlan, ...]:
        plans = []
        for i, rule in enumerate(rules):
            try:
                steps = parse_steps(rule.steps, spec.render.steps)
            except ValueError as error:
                problems.append(board.problem(at + (i, "steps"), str(error)))
                continue
            if isinstance(rule, MaskRule) and rule.mask.image is not None:
                image = path.parent / rule.mask.image
                if not image.is_file():
                    problems.append(board.problem(at + (i, "mask", "image"), f"no such file '{image}'"))
            plans.append(
                RulePlan(
                    mode=rule.mode,
                    layers=tuple(rule.layers),
                    steps=steps,
                    where=dotted(at + (i,)),
                    threshold=getattr(rule, "threshold", None),
                    reduce=getattr(rule, "reduce", "element"),
                    relative=getattr(rule, "relative", False),
                    mask=getattr(rule, "mask", None),
                )
            )
        return tuple(plans)

    default_rules = rules_for(spec.swap, ("swap",))
    names: dict[str, int] = {}
    for i, frame in enumerate(spec.frames):
        at = ("frames", i)
        name = frame.name or f"frame{i + 1}"
        if name in names:
            problems.append(board.problem(at + ("name",), f"duplicate frame name '{name}' (also frames[{names[name]}])"))
        names.setdefault(name, i)
        rules = default_rules if frame.swap is None else rules_for(frame.swap, at + ("swap",))
        prompt = frame.prompt
        if prompt is None:
            try:
                prompt = apply_delta(spec.anchor.prompt, frame.replace, _as_list(frame.add), _as_list(frame.remove))
            except KeyError as missing:
                word = missing.args[0]
                kind = "replace" if word in frame.replace else "remove"
                problems.append(board.problem(at + (kind,), f"'{word}' is not in the anchor prompt"))
                continue
            anchor_words = tuple(frame.replace) + tuple(_as_list(frame.remove))
            frame_words = tuple(frame.replace.values()) + tuple(_as_list(frame.add))
        else:  # a whole new prompt: the tags that differ
            anchor_tags, frame_tags = split_tags(spec.anchor.prompt), split_tags(prompt)
            anchor_words = tuple(t for t in anchor_tags if t not in frame_tags)
            frame_words = tuple(t for t in frame_tags if t not in anchor_tags)
        board.frames.append(
            FramePlan(
                index=i + 1, name=name, prompt=prompt, rules=rules, hold=frame.hold,
                anchor_words=tuple(w.strip() for w in anchor_words if w.strip()),
                frame_words=tuple(w.strip() for w in frame_words if w.strip()),
            )
        )  # fmt: skip
    if problems:
        raise InvalidInput(problems)
    return board


def _mark(marks: dict, path: tuple) -> tuple[int, int]:
    while path and path not in marks:
        path = path[:-1]
    return marks.get(path, (1, 1))
