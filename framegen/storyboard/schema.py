"""The storyboard's schema (version 1), as pydantic models: what `load_storyboard`
validates a YAML file against. Every model forbids unknown keys."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, field_validator, model_validator

from ..engine.specs import MaskPlan
from .values import (
    MAX_BATCH,
    MAX_SEED,
    MAX_SIDE,
    NAME_PATTERN,
    SCHEDULERS,
    Box,
    ControlScale,
    LoraScale,
    PathText,
    StrictModel,
)


class LoraSpec(StrictModel):
    path: PathText  # a .safetensors LoRA, diffusers or kohya/A1111 format, relative to the storyboard
    scale: LoraScale = 1.0
    name: str | None = Field(None, min_length=1, pattern=NAME_PATTERN)  # how frames name it; default: the file's stem

    @property
    def key(self) -> str:
        return self.name or Path(self.path).stem


class ControlNetSpec(StrictModel):
    id: PathText  # a diffusers ControlNet folder, a .safetensors file or a hub id
    scale: ControlScale = 1.0  # controlnet_conditioning_scale


class ModelSpec(StrictModel):
    id: PathText
    scheduler: Literal[SCHEDULERS] | None = None  # None: the model's own
    dtype: Literal["auto", "float32", "float16", "bfloat16"] = "auto"
    device: str = "auto"
    revision: str | None = None
    variant: str | None = Field(None, pattern=r"^[A-Za-z0-9_]+$")  # weights saved as *.VARIANT.safetensors (fp16)
    lora: list[LoraSpec] = []
    controlnet: list[ControlNetSpec] = []  # one or more (diffusers' MultiControlNet); images: anchor/frames `control`
    config: PathText | None = None  # a single file's architecture: a diffusers folder or hub id
    prediction: Literal["epsilon", "v"] | None = None  # None: the model's own (a single file: see checkpoints.py)
    # a FLUX.1 / SD3.x transformer file's parts, as files of their own (models/dit_files.py)
    clip_l: PathText | None = None
    clip_g: PathText | None = None
    t5xxl: PathText | None = None
    vae: PathText | None = None
    t5: bool = True  # false: SD3.x without its T5 encoder (diffusers puts zeros in its place)

    @property
    def lora_scales(self) -> tuple[tuple[str, float], ...]:
        """(name, scale) of each LoRA as given here: the anchor's."""
        return tuple((lora.key, lora.scale) for lora in self.lora)

    @field_validator("device")
    @classmethod
    def _device(cls, value: str) -> str:
        if not re.fullmatch(r"auto|cpu|mps|cuda(:\d+)?", value):
            raise ValueError(f"unknown device '{value}' (use auto, cpu, cuda, cuda:N or mps)")
        return value


class RenderSpec(StrictModel):
    width: int | None = Field(None, gt=0, le=MAX_SIDE)  # None: the model's native size
    height: int | None = Field(None, gt=0, le=MAX_SIDE)
    steps: int = Field(50, ge=1, le=1000)
    guidance: float = Field(7.5, ge=0, allow_inf_nan=False)
    seed: int = Field(1111, ge=0, le=MAX_SEED)
    negative_prompt: str = ""
    cache: Literal["device", "cpu", "disk"] = "device"
    batch: int = Field(1, ge=1, le=MAX_BATCH)  # frames per denoiser batch

    @field_validator("width", "height")
    @classmethod
    def _multiple_of_8(cls, value: int | None) -> int | None:
        if value is not None and value % 8:
            raise ValueError(f"{value} is not a multiple of 8 (the VAE works on 8-pixel blocks)")
        return value


Steps = Literal["all"] | int | str | list[int]


class _RuleBase(StrictModel):
    layers: list[str] = Field(min_length=1)
    steps: Steps = "all"

    @field_validator("layers", mode="before")
    @classmethod
    def _comma_separated(cls, value):
        return [name.strip() for name in value.split(",") if name.strip()] if isinstance(value, str) else value


class FullRule(_RuleBase):
    mode: Literal["full"]


class MaskSpec(StrictModel):
    """1 = keep the anchor. Drawn (`grid`, `image`, `boxes`) or found by the model (`auto`)."""

    grid: list[str] | None = None
    image: PathText | None = None
    boxes: list[Box] | None = None
    auto: Literal["attention", "noise", "control"] | None = None
    # auto masks only: the delta's words unless given; attention layers (default: the
    # model's mid-resolution cross-attention layers); relative threshold; dilation in
    # latent cells (defaults per kind: automask.py)
    words: list[str] | None = None
    layers: list[str] | None = None
    threshold: float | None = Field(None, ge=0)
    dilate: int | None = Field(None, ge=0, le=MAX_SIDE)

    @model_validator(mode="after")
    def _exactly_one(self) -> MaskSpec:
        given = [k for k in ("grid", "image", "boxes", "auto") if getattr(self, k) is not None]
        if len(given) != 1:
            raise ValueError("give exactly one of grid, image, boxes or auto")
        tuning = [k for k in ("words", "layers", "threshold", "dilate") if k in self.model_fields_set]
        if self.auto is None and tuning:
            raise ValueError(f"{', '.join(tuning)} only apply to auto masks")
        if self.auto in ("noise", "control") and self.layers is not None:
            raise ValueError("layers only apply to auto: attention")
        if self.auto == "control" and self.words is not None:
            raise ValueError("words do not apply to auto: control (it compares control images)")
        return self

    def plan(self, folder: Path) -> MaskPlan:
        """The mask as the engine takes it; an image path resolved against `folder`."""
        return MaskPlan(
            grid=tuple(self.grid) if self.grid is not None else None,
            image=folder / self.image if self.image is not None else None,
            boxes=tuple(tuple(box) for box in self.boxes) if self.boxes is not None else None,
            auto=self.auto,
            words=tuple(self.words) if self.words is not None else None,
            layers=tuple(self.layers) if self.layers is not None else None,
            threshold=self.threshold,
            dilate=self.dilate,
        )

    @field_validator("words", mode="before")
    @classmethod
    def _word_list(cls, value):
        return [value] if isinstance(value, str) else value

    @field_validator("layers", mode="before")
    @classmethod
    def _layer_list(cls, value):
        return [name.strip() for name in value.split(",") if name.strip()] if isinstance(value, str) else value

    @field_validator("grid", mode="before")
    @classmethod
    def _grid(cls, rows):
        """One line for the whole grid, whatever is wrong with it."""
        if rows is None:
            return rows
        if not isinstance(rows, list) or any(not isinstance(r, str) for r in rows):
            raise ValueError(
                'a grid is a list of quoted rows of 0 and 1, e.g. ["1111", "1001"] (unquoted, 0101 is a number)'
            )
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


class KvRule(_RuleBase):
    """The attention's image keys and values from the anchor (U-Nets' attn1, FLUX/SD3's
    joint attention), whole or inside `mask` (1 = the token uses the anchor's)."""

    mode: Literal["kv"]
    mask: MaskSpec | None = None


Rule = Annotated[FullRule | MaskRule | ThresholdRule | KvRule, Field(discriminator="mode")]


class InversionSpec(StrictModel):
    """How a real image becomes the noise every pass starts from (engine/inversion.py, flow_inversion.py)."""

    # negative-prompt: the reconstruction takes the anchor's prompt as its negative (so follows the inversion)
    method: Literal["negative-prompt", "ddim"] = "negative-prompt"
    guidance: float = Field(1.0, ge=1.0, allow_inf_nan=False)  # classifier-free guidance while inverting (ddim)
    refine: int = Field(0, ge=0, le=10)  # fixed-point refinements per inversion step (each costs a denoiser call)
    nudge: float = Field(1.0, ge=1.0, le=2.0, allow_inf_nan=False)  # flow models: latents x this (Stable Flow: 1.15)


class Anchor(StrictModel):
    prompt: str
    image: PathText | None = None  # a real image, relative to the storyboard: the anchor's scene
    inversion: InversionSpec = InversionSpec()
    control: list[PathText] | None = None  # one control image per model.controlnet, relative to the storyboard

    @field_validator("prompt")
    @classmethod
    def _not_empty(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("the anchor prompt is empty: it describes the scene every frame starts from")
        return value


class Frame(StrictModel):
    name: str | None = Field(None, pattern=NAME_PATTERN)
    prompt: str | None = None
    replace: dict[str, str] = {}
    add: str | list[str] = []
    remove: str | list[str] = []
    swap: list[Rule] | None = None  # None: the storyboard's default rules
    hold: int = Field(1, ge=1, le=10_000)  # video frames this frame is shown for
    lora: dict[str, LoraScale] = {}  # LoRA name -> this frame's scale (0 turns it off); others keep model.lora's
    control: list[PathText] | None = None  # this frame's control images; None: the anchor's
    tween: int = Field(0, ge=0, le=100)  # in-between frames rendered before this one, from the previous frame

    @model_validator(mode="after")
    def _prompt_or_delta(self) -> Frame:
        if self.prompt is not None and (self.replace or self.add or self.remove):
            raise ValueError("give either a full prompt or a delta (replace/add/remove), not both")
        return self


class Video(StrictModel):
    fps: float = Field(8, gt=0, le=1000, allow_inf_nan=False)
    crf: int = Field(18, ge=0, le=51)


class Background(StrictModel):
    segmenter: Literal["rembg", "none"] = "rembg"
    model: str | None = None  # None: `demo` for the demo models, else rembg's u2net
    model_path: PathText | None = None


class ReportSpec(StrictModel):
    background: Background = Background()


class Checks(StrictModel):
    max_background_mse: float | None = Field(None, ge=0, allow_inf_nan=False)  # a gate fails closed
    max_flicker: float | None = Field(None, ge=0, allow_inf_nan=False)  # background MSE from the video frame before


class OutputSpec(StrictModel):
    path: PathText
    outside: bool = False  # consent to a folder outside the storyboard's folder tree


class StoryboardSpec(StrictModel):
    version: Literal[1]
    model: ModelSpec
    render: RenderSpec = RenderSpec()
    anchor: Anchor
    swap: list[Rule] = []
    frames: list[Frame] = Field(min_length=1)
    video: Video = Video()
    report: ReportSpec = ReportSpec()
    checks: Checks = Checks()
    output: PathText | OutputSpec | None = None  # a path relative to the storyboard, or {path, outside}


def json_schema() -> dict:
    """The storyboard's JSON Schema, from the models that validate it (for editors: a
    storyboard's first line `# yaml-language-server: $schema=storyboard.schema.json`).
    Checks that need files, the model or other fields (layer names, step ranges within
    render.steps, images) happen only in framegen; the schema covers keys and types."""
    schema = StoryboardSpec.model_json_schema()
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "framegen storyboard",
        "description": "A framegen storyboard: an anchor prompt and frames that change it (framegen schema).",
        **{key: value for key, value in schema.items() if key != "title"},
    }
