"""Render: the anchor with its activations cached, then every frame with swaps.

    board = load_storyboard("storyboards/demo.yaml")
    renderer = Renderer(board)            # loads the model, resolves layers and rules
    anchor = renderer.anchor()            # fills the cache with the needed pairs only
    image = renderer.frame(board.frames[0])
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch
from PIL import Image

from .automask import (
    ATTENTION_DILATE, ATTENTION_THRESHOLD, NOISE_DILATE, NOISE_THRESHOLD, AttentionMaps, AttentionMask, NoiseMask, attention_modules,
    mid_resolution_layers, tag_heads, token_positions, watching,
)  # fmt: skip
from .errors import InvalidInput, RenderFailure
from .cache import AnchorCache
from .hooks import StepClock, record, swapping
from .layers import LayerMap
from . import __version__
from .models import load_pipeline, weights_fingerprint
from .storyboard import FramePlan, MaskSpec, RulePlan, Storyboard
from .swap import Mask, SwapRule, needed_pairs

OnStep = Callable[[int], None]  # called with the 1-based step just finished


def mask_tensor(spec: MaskSpec, width: int, height: int, folder) -> torch.Tensor:
    """A rule's mask as an (h, w) bool tensor at its own resolution (True = keep anchor)."""
    if spec.grid is not None:
        return torch.tensor([[c == "1" for c in row] for row in spec.grid])
    if spec.image is not None:
        image = Image.open(folder / spec.image).convert("L")
        return torch.from_numpy(np.asarray(image) > 127)
    mask = torch.zeros(height, width, dtype=torch.bool)
    for x0, y0, x1, y1 in spec.boxes:
        mask[max(y0, 0) : max(y1, 0), max(x0, 0) : max(x1, 0)] = True
    return mask


def compact_steps(steps) -> str:
    """(1, 2, 3, 7, 9, 10) -> '1-3,7,9-10'."""
    runs: list[list[int]] = []
    for step in sorted(steps):
        if runs and step == runs[-1][1] + 1:
            runs[-1][1] = step
        else:
            runs.append([step, step])
    return ",".join(f"{a}-{b}" if a != b else f"{a}" for a, b in runs)


@dataclass
class FrameImage:
    plan: FramePlan
    image: Image.Image
    seconds: float
    masks: list[tuple[str, torch.Tensor]]  # (kind, keep-the-anchor mask) of each mask rule


class Renderer:
    """The anchor cache holds exactly the pairs the storyboard's frames need, where its
    `render.cache` says; a caller may replace `renderer.cache` before `anchor()`
    (the sweep caches the union of its runs' pairs, possibly on disk)."""

    def __init__(self, board: Storyboard, pipe=None):
        self.board = board
        spec = board.spec
        self.pipe = pipe if pipe is not None else load_pipeline(spec.model)
        self.device, self.dtype = self.pipe.device, self.pipe.unet.dtype
        self.layers = LayerMap.of(self.pipe.unet)
        board.check_layers(self.layers.known_names(), self.layers.listing())

        native = self.pipe.unet.config.sample_size * self.pipe.vae_scale_factor
        native = native if isinstance(native, int) else native[0]
        self.width = spec.render.width or native
        self.height = spec.render.height or native
        self.steps = spec.render.steps

        self.anchor_watch: list = []  # attention maps the anchor pass collects for auto masks
        self.anchor_latents = None  # the anchor's final latents (noise masks start from them)
        self.rules = {plan.index: self.swap_rules(plan.rules, plan) for plan in board.frames}
        needed = set().union(*(needed_pairs(rules) for rules in self.rules.values()))
        self.cache = AnchorCache(needed, offload=spec.render.cache == "cpu")

    def swap_rules(self, rules, plan: FramePlan) -> list[SwapRule]:
        return [self.swap_rule(rule, plan) for rule in rules]

    def swap_rule(self, rule: RulePlan, plan: FramePlan) -> SwapRule:
        mask = None
        if rule.mode == "mask" and rule.mask.auto is not None:
            mask = self.auto_mask(rule, plan)
        elif rule.mode == "mask":
            mask = Mask(mask_tensor(rule.mask, self.width, self.height, self.board.path.parent), rule.mask.kind)
        return SwapRule(
            mode=rule.mode,
            layers=frozenset(self.layers.module_path(name) for name in rule.layers),
            steps=frozenset(rule.steps),
            mask=mask,
            threshold=rule.threshold or 0.0,
            reduce=rule.reduce,
            relative=rule.relative,
        )

    def auto_mask(self, rule: RulePlan, plan: FramePlan):
        """An automatic mask for `plan` (see automask.py); attention masks register the
        anchor maps they need, so build them before `anchor()`."""
        spec = rule.mask
        if spec.auto == "noise":
            if getattr(self.pipe, "text_encoder_2", None) is not None:
                raise InvalidInput(f"{self.board.path}: {rule.where}.mask.auto: noise masks support SD1.x/2.x pipelines; use auto: attention")
            return NoiseMask(
                spec.threshold if spec.threshold is not None else NOISE_THRESHOLD, spec.dilate if spec.dilate is not None else NOISE_DILATE
            )
        layers = mid_resolution_layers(self.layers)
        if spec.layers:
            layers = []
            for name in spec.layers:
                layer = self.layers.by_module.get(self.layers.module_path(name))
                if layer is None or not layer.cross_attention:
                    raise InvalidInput(f"{self.board.path}: {rule.where}.mask.layers: '{name}' has no cross-attention (attention masks read cross-attention maps)")
                layers.append(layer)
        latent_width, latent_height = self.width // self.pipe.vae_scale_factor, self.height // self.pipe.vae_scale_factor
        grids = attention_modules(self.pipe, layers, (latent_width, latent_height))
        tokenizer, anchor_prompt = self.pipe.tokenizer, self.board.spec.anchor.prompt
        if spec.words:
            anchor_words = frame_words = spec.words
        else:  # the delta's words, narrowed to the objects they change
            anchor_words, frame_words = tag_heads(anchor_prompt, plan.anchor_words), tag_heads(plan.prompt, plan.frame_words)
        anchor_positions = sorted({p for w in anchor_words for p in token_positions(tokenizer, anchor_prompt, w)})
        frame_positions = sorted({p for w in frame_words for p in token_positions(tokenizer, plan.prompt, w)})
        # the anchor's maps over the same steps as the frame's (all of them for a mask from step 1)
        first = min(rule.steps)
        steps = set(range(1, first)) if first > 1 else set(range(1, self.steps + 1))
        anchor_maps = AttentionMaps({"anchor": anchor_positions}, grids, steps)
        self.anchor_watch.append(anchor_maps)
        threshold = spec.threshold if spec.threshold is not None else ATTENTION_THRESHOLD
        dilate = spec.dilate if spec.dilate is not None else ATTENTION_DILATE
        return AttentionMask(anchor_maps, frame_positions, first, threshold, dilate, (latent_height, latent_width))

    def anchor_fields(self) -> dict:
        """Everything that decides the anchor pass and its cache: the disk cache's key."""
        spec, render = self.board.spec, self.board.spec.render
        return {
            "framegen": __version__,
            "model": weights_fingerprint(spec.model),
            "scheduler": {k: v for k, v in self.pipe.scheduler.config.items() if not k.startswith("_")},
            "size": [self.width, self.height],
            "steps": self.steps,
            "guidance": render.guidance,
            "seed": render.seed,
            "prompt": spec.anchor.prompt,
            "negative_prompt": render.negative_prompt,
            "pairs": sorted(self.cache.needed),
            "dtype": str(self.dtype),
            "device": self.device.type,
            "attention": [[sorted(m.positions.items()), sorted(m.grids.items())] for m in self.anchor_watch],
        }

    def anchor_extras(self) -> dict[str, torch.Tensor]:
        """What frames need from the anchor pass besides the cache: its final latents
        (noise masks) and attention maps (attention masks)."""
        extras = {"latents": self.anchor_latents}
        for i, maps in enumerate(self.anchor_watch):
            for (group, step), grid in maps.maps.items():
                extras[f"maps.{i}.{group}.{step}"] = grid
        return extras

    def restore_anchor(self, extras: dict[str, torch.Tensor]) -> None:
        """The state `anchor()` leaves behind, from a reused cache's extras."""
        self.anchor_latents = extras["latents"].to(self.device, self.dtype)
        for name, grid in extras.items():
            if name.startswith("maps."):
                _, i, group, step = name.split(".")
                self.anchor_watch[int(i)].maps[(group, int(step))] = grid

    def describe_rules(self, plan: FramePlan) -> list[dict]:
        """The frame's rules as resolved: module paths and step ranges, for the report."""
        described = []
        for rule, swap_rule in zip(plan.rules, self.rules[plan.index]):
            entry = {
                "mode": rule.mode,
                "layers": list(rule.layers),
                "modules": sorted(swap_rule.layers),
                "steps": compact_steps(rule.steps),
            }
            if rule.mode == "threshold":
                entry.update(threshold=rule.threshold, reduce=rule.reduce, relative=rule.relative)
            if rule.mode == "mask":
                entry["mask"] = rule.mask.model_dump(exclude_unset=True)
            described.append(entry)
        return described

    def generate(self, prompt: str | list[str], on_step: OnStep | None = None, clock: StepClock | None = None) -> Image.Image | list[Image.Image]:
        """One image (or one per prompt of a list, in one batch) with the storyboard's
        seed and settings; every image starts from the same noise. Hooks are the caller's;
        `clock` (theirs) sees each step's latents (the LATENTS layer)."""
        render = self.board.spec.render

        def step_done(pipe, i, t, callback_kwargs):
            if clock is not None:
                callback_kwargs["latents"] = clock.step_end(callback_kwargs["latents"])
            self.last_latents = callback_kwargs["latents"]
            if on_step is not None:
                on_step(min(i + 1, self.steps))
            return callback_kwargs

        prompts = [prompt] if isinstance(prompt, str) else prompt
        try:
            images = self.pipe(
                prompt=prompts,
                negative_prompt=[render.negative_prompt] * len(prompts) if render.negative_prompt else None,
                width=self.width,
                height=self.height,
                num_inference_steps=self.steps,
                guidance_scale=render.guidance,
                generator=[torch.Generator("cpu").manual_seed(render.seed) for _ in prompts],
                callback_on_step_end=step_done,
            ).images
            return images[0] if isinstance(prompt, str) else images
        except torch.OutOfMemoryError:
            raise RenderFailure(
                f"out of memory on {self.device} at {self.width}x{self.height}; "
                "try `render: {cache: cpu}`, fewer swapped layers/steps, or a smaller size"
            ) from None

    def anchor(self, on_step: OnStep | None = None) -> Image.Image:
        """The anchor image; fills `self.cache` with exactly the pairs the frames need."""
        self.cache.clear()
        for maps in self.anchor_watch:
            maps.maps.clear()
        with record(self.pipe, self.steps, self.cache) as clock, watching(self.pipe, clock, self.anchor_watch):
            image = self.generate(self.board.spec.anchor.prompt, on_step, clock)
        self.anchor_latents = self.last_latents
        return image

    def frame(self, plan: FramePlan, on_step: OnStep | None = None, rules: list[SwapRule] | None = None) -> FrameImage:
        """The frame, swapped by its own rules or by `rules` (e.g. one sweep run's)."""
        return self.frames([plan], on_step, None if rules is None else [rules])[0]

    def frames(self, plans: list[FramePlan], on_step: OnStep | None = None, rules=None) -> list[FrameImage]:
        """Frames in one U-Net batch, each under its own rules. Attention masks read
        one frame's maps, so a frame with one renders alone (see `batches`)."""
        if self.cache.needed and not len(self.cache):
            raise RuntimeError("render the anchor first: the frames swap in its activations")
        start = time.perf_counter()
        rules = [self.rules[plan.index] for plan in plans] if rules is None else rules
        watch = []
        for plan, frame_rules in zip(plans, rules):
            for rule in frame_rules:
                if isinstance(rule.mask, AttentionMask):
                    if len(plans) > 1:
                        raise ValueError("a frame with an attention mask renders alone")
                    watch.append(rule.mask.start_frame())
                elif isinstance(rule.mask, NoiseMask):
                    rule.mask.compute(self.pipe, self.anchor_latents, self.board.spec.anchor.prompt, plan.prompt, self.board.spec.render.seed)
        with swapping(self.pipe, self.steps, self.cache, rules) as clock, watching(self.pipe, clock, watch):
            images = self.generate([plan.prompt for plan in plans], on_step, clock)
        seconds = (time.perf_counter() - start) / len(plans)
        return [
            FrameImage(plan, image, seconds, [(rule.mask.kind, rule.mask.current()) for rule in frame_rules if rule.mode == "mask"])
            for plan, image, frame_rules in zip(plans, images, rules)
        ]

    def batches(self, plans: list[FramePlan], size: int) -> list[list[FramePlan]]:
        """`plans` in order, in groups of up to `size`; a frame with an attention mask alone."""
        return batched(plans, size, alone=lambda plan: any(isinstance(r.mask, AttentionMask) for r in self.rules[plan.index]))


def batched(items: list, size: int, alone) -> list[list]:
    """`items` in order, in groups of up to `size`; an item for which `alone(item)` is
    true gets a group of its own."""
    groups: list[list] = []
    current: list = []
    for item in items:
        if alone(item):
            groups += [current, [item]] if current else [[item]]
            current = []
            continue
        current.append(item)
        if len(current) == size:
            groups.append(current)
            current = []
    return groups + ([current] if current else [])


def check_known_layers(board: Storyboard, config) -> None:
    """Validate layer names before loading weights, when the U-Net config is known."""
    layers = LayerMap(config, modules=None)
    known = layers.known_names()
    deep = {n for rules in board.frames for r in rules.rules for n in r.layers if "." in n}
    # raw paths below a layer (e.g. ...attentions.0.transformer_blocks.0) are checked
    # after loading, against the U-Net's real modules
    known |= {n for n in deep if n.split(".")[0] in {"down_blocks", "up_blocks", "mid_block", "conv_in"}}
    board.check_layers(known, layers.listing())

