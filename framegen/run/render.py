"""Render passes: the anchor with its activations cached, then frames with swaps.

The renderer runs passes and nothing else: it is given its pipe, its settings, its
anchor cache and the anchor's other state, and frames come with their compiled rules
(rules.py compiles a storyboard's) and their conditioning (conditioning.py):

    renderer = Renderer(pipe, settings, AnchorCache(needed), AnchorState())
    anchor = renderer.anchor("girl, red shirt")
    frame = renderer.frame("girl, blue shirt", rules)
"""

from __future__ import annotations

import time
from collections.abc import Callable
from contextvars import ContextVar
from dataclasses import dataclass

import torch
from PIL import Image

from ..engine.anchor import AnchorState
from ..engine.cache import AnchorCache
from ..engine.encoding import text_length
from ..engine.families import denoiser, family_of
from ..engine.flow_inversion import flow_latents, invert_flow
from ..engine.hooks import StepClock, record, swapping
from ..engine.inversion import Inversion, encode, invert
from ..engine.swap import SwapRule
from ..errors import Cancelled, RenderFailure
from ..storyboard.schema import InversionSpec

# `render --watch` sets a check that gives a pass up between steps when the inputs changed
CANCEL: ContextVar[Callable[[], bool] | None] = ContextVar("framegen_cancel", default=None)

OnStep = Callable[[int], None]  # called with the 1-based step just finished


@dataclass(frozen=True)
class RenderSettings:
    """What every image of a render shares; every image starts from the seed's noise."""

    width: int
    height: int
    steps: int
    guidance: float
    seed: int
    negative_prompt: str = ""
    control_scales: tuple[float, ...] = ()  # one per ControlNet of the pipe

    @classmethod
    def of(cls, spec, native: int) -> RenderSettings:
        """A storyboard's (StoryboardSpec) on a model trained at `native` pixels."""
        render = spec.render
        return cls(
            render.width or native, render.height or native, render.steps, render.guidance, render.seed,
            render.negative_prompt, tuple(controlnet.scale for controlnet in spec.model.controlnet),
        )  # fmt: skip


@dataclass
class FrameImage:
    image: Image.Image
    seconds: float
    masks: list[tuple[str, torch.Tensor]]  # (kind, keep-the-anchor mask) of each mask rule


class Renderer:
    def __init__(self, pipe, settings: RenderSettings, cache: AnchorCache, anchor_state: AnchorState):
        self.pipe, self.settings = pipe, settings
        self.cache, self.anchor_state = cache, anchor_state

    def invert(self, image: Image.Image, prompt: str, on_step: OnStep | None = None, how=None) -> Inversion:
        """A real image (at the render's size) inverted to the noise every later pass starts
        from; `how`: the storyboard's InversionSpec (guidance, refine, nudge), else its defaults.
        U-Nets invert along DDIM, flow transformers by inverse Euler (FLUX.1-dev with the
        render's embedded guidance, so the anchor pass retraces it)."""
        settings, pipe, how = self.settings, self.pipe, how or InversionSpec()
        steps, negative = settings.steps, settings.negative_prompt
        if family_of(denoiser(pipe).config).transformer:
            latents, grid = flow_latents(pipe, image)
            inverted = invert_flow(
                pipe, latents, prompt, steps, how.guidance, negative, how.refine, how.nudge, on_step, grid,
                embedded_guidance=settings.guidance,
            )  # fmt: skip
        else:
            inverted = invert(pipe, encode(pipe, image), prompt, steps, how.guidance, negative, how.refine, on_step)
        self.anchor_state.noise = inverted.noise
        return inverted

    def anchor(
        self, prompt: str, on_step: OnStep | None = None, trajectory: list | None = None,
        negative_prompt: str | None = None, control: list[Image.Image] | None = None,
    ) -> Image.Image:  # fmt: skip
        """The anchor image (a real image's reconstruction after `invert`); fills the cache
        and the anchor state (final latents, attention maps). With `trajectory` (the
        inversion's), the LATENTS layer caches it instead of the pass's own latents;
        `negative_prompt` replaces the render's for this pass; `control`: one image per ControlNet."""
        stores = self.anchor_state.stores
        with record(self.pipe, self.settings.steps, self.cache, stores, latents=trajectory) as clock:
            (image,), latents = self.generate([prompt], on_step, clock, negative_prompt, [control] if control else None)
        self.anchor_state.latents = latents
        return image

    def frame(
        self, prompt: str, rules: list[SwapRule], on_step: OnStep | None = None, control: list | None = None
    ) -> FrameImage:
        return self.frames([(prompt, rules)], on_step, [control] if control else None)[0]

    def frames(
        self, shots: list[tuple[str, list[SwapRule]]], on_step: OnStep | None = None, controls: list | None = None
    ) -> list[FrameImage]:
        """(prompt, rules) pairs in one U-Net batch, each frame under its own rules (and
        with its own control images, one list per frame, with ControlNets)."""
        if self.cache.needed and not len(self.cache):
            raise RuntimeError("render the anchor first: the frames swap in its activations")
        start = time.perf_counter()
        rules = [frame_rules for _, frame_rules in shots]
        with swapping(self.pipe, self.settings.steps, self.cache, rules) as clock:
            images, _ = self.generate([prompt for prompt, _ in shots], on_step, clock, control=controls)
        seconds = (time.perf_counter() - start) / len(shots)
        return [
            FrameImage(
                image, seconds, [(rule.mask.kind, rule.mask.mask()) for rule in frame_rules if rule.mask is not None]
            )
            for image, frame_rules in zip(images, rules)
        ]

    def generate(
        self, prompts: list[str], on_step: OnStep | None, clock: StepClock, negative_prompt: str | None = None,
        control: list[list[Image.Image]] | None = None,
    ) -> tuple[list[Image.Image], torch.Tensor]:  # fmt: skip
        """One image per prompt, in one batch, with the render's settings, and the final
        latents. The hooks are the caller's; `clock` sees each step's latents (LATENTS).
        A prompt may be a dict of encoded conditioning (an in-between frame's), alone."""
        settings, final, noise = self.settings, {}, self.anchor_state.noise
        negative = settings.negative_prompt if negative_prompt is None else negative_prompt

        def step_done(pipe, i, t, callback_kwargs):
            if (cancelled := CANCEL.get()) is not None and cancelled():
                raise Cancelled("the render was given up: its inputs changed")
            callback_kwargs["latents"] = clock.step_end(callback_kwargs["latents"])
            final["latents"] = callback_kwargs["latents"]
            if on_step is not None:
                on_step(min(i + 1, settings.steps))
            return callback_kwargs

        conditioning = {"prompt": prompts, "negative_prompt": [negative] * len(prompts) if negative else None}
        if isinstance(prompts[0], dict):  # an in-between frame's encoded conditioning (engine/tween.py)
            if len(prompts) > 1:
                raise ValueError("frames given as encoded conditioning render one at a time")
            conditioning = prompts[0]
        controlled = {}
        if control:  # per ControlNet: its image for each prompt
            scales = settings.control_scales
            per_net = [[images[k] for images in control] for k in range(len(scales))]
            one = len(scales) == 1
            controlled = {"image": per_net[0] if one else per_net,
                          "controlnet_conditioning_scale": scales[0] if one else list(scales)}  # fmt: skip
        try:
            images = self.pipe(
                **conditioning,
                width=settings.width,
                height=settings.height,
                num_inference_steps=settings.steps,
                guidance_scale=settings.guidance,
                generator=[torch.Generator("cpu").manual_seed(settings.seed) for _ in prompts],
                latents=None if noise is None else noise.expand(len(prompts), *noise.shape[1:]).clone(),
                **text_length(self.pipe),
                callback_on_step_end=step_done,
                **controlled,
            ).images
        except torch.OutOfMemoryError:
            raise RenderFailure(
                f"out of memory on {self.pipe.device} at {settings.width}x{settings.height}; "
                "try `render: {cache: cpu}`, fewer swapped layers/steps, or a smaller size"
            ) from None
        return images, final.get("latents")


def batched(items: list, size: int, alone: Callable, key: Callable | None = None) -> list[list]:
    """`items` in order, in groups of up to `size`; an item for which `alone(item)` is
    true gets a group of its own, and a group holds items of one `key(item)`."""
    groups: list[list] = []
    current: list = []
    for item in items:
        if alone(item):
            groups += [current, [item]] if current else [[item]]
            current = []
            continue
        if current and key is not None and key(item) != key(current[-1]):
            groups.append(current)
            current = []
        current.append(item)
        if len(current) == size:
            groups.append(current)
            current = []
    return groups + ([current] if current else [])
