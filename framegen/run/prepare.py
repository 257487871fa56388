"""A storyboard made ready for one loaded pipeline: settings, every frame's compiled
rules, the anchor state they read, and the keys that identify the anchor and frames.

    board = load_storyboard("storyboards/demo.yaml")
    prepared = prepare(board, pipe)
    renderer = prepared.renderer()
    anchor = renderer.anchor(board.spec.anchor.prompt)
    frame = renderer.frame(*prepared.shot(board.frames[0]))
"""

from __future__ import annotations

from dataclasses import dataclass, field

from PIL import Image

from .. import __version__
from ..engine.anchor import AnchorState
from ..engine.cache import AnchorCache, cache_key
from ..engine.compile import Compiler, RuleError, RuleSpec
from ..engine.inversion import INVERSE_SCHEDULERS, fitted, fitted_file
from ..engine.layers import LayerMap
from ..engine.swap import SwapRule, needed_pairs
from ..engine.tween import between
from ..errors import InvalidInput, warn
from ..models.fingerprints import file_sha256
from ..models.load import lora_fingerprint, native_size, weights_fingerprint
from ..storyboard import FramePlan, ModelSpec, Storyboard, TweenPlan, mask_as_written
from .render import Renderer, RenderSettings, batched


@dataclass
class Prepared:
    board: Storyboard
    pipe: object
    settings: RenderSettings
    compiler: Compiler
    rules: dict[int, list[SwapRule]]  # frame index -> its compiled rules
    anchor_state: AnchorState
    anchor_image: Image.Image | None = None  # a real anchor image, at the render's size
    control_cache: dict = field(default_factory=dict)  # control image path -> the image at the render's size

    @property
    def needed(self) -> set[tuple[str, int]]:
        return set().union(*(needed_pairs(rules) for rules in self.rules.values()))

    def compile(self, specs: tuple[RuleSpec, ...] | list[RuleSpec], plan: FramePlan) -> list[SwapRule]:
        """Other rules for a frame (a sweep's runs); compile them before the anchor pass."""
        return compile_rules(self.compiler, self.board, specs, plan)

    def shot(self, plan: FramePlan) -> tuple[str, list[SwapRule]]:
        return plan.prompt, self.rules[plan.index]

    def renderer(self, cache: AnchorCache | None = None) -> Renderer:
        """A renderer for these frames; by default its cache holds what they need, on
        the device or (render.cache: cpu) in host memory."""
        cache = cache if cache is not None else AnchorCache(self.needed, offload=self.board.spec.render.cache == "cpu")
        return Renderer(self.pipe, self.settings, cache, self.anchor_state)

    def batches(self, plans: list[FramePlan], size: int) -> list[list[FramePlan]]:
        """`plans` in order, in groups of up to `size`; a frame whose mask reads its own pass alone."""
        return batched(plans, size, alone=lambda plan: alone(self.rules[plan.index]), key=lambda plan: plan.lora)

    # -- what identifies the anchor and each frame (disk cache, resume)

    def anchor_fields(self, needed: set[tuple[str, int]]) -> dict:
        """Everything that decides the anchor pass and its cache of `needed`: the disk cache's key."""
        spec, settings = self.board.spec, self.settings
        return {
            "framegen": __version__,
            "model": weights_fingerprint(spec.model),
            "scheduler": {k: v for k, v in self.pipe.scheduler.config.items() if not k.startswith("_")},
            "size": [settings.width, settings.height],
            "steps": settings.steps,
            "guidance": settings.guidance,
            "seed": settings.seed,
            "prompt": spec.anchor.prompt,
            "negative_prompt": settings.negative_prompt,
            "pairs": sorted(needed),
            "dtype": str(self.pipe.unet.dtype),
            "device": self.pipe.device.type,
            "attention": [[sorted(s.positions.items()), sorted(s.grids.items())] for s in self.anchor_state.stores],
            **({"lora": lora_fingerprint(spec.model)} if spec.model.lora else {}),
            **({"image": self.anchor_image_fields()} if spec.anchor.image else {}),
            **({"controlnet": self.controlnet_fields()} if spec.model.controlnet else {}),
        }

    def controlnet_fields(self) -> dict:
        """The ControlNets' weights and scales, and the anchor's control images by content."""
        spec = self.board.spec
        nets = [{"weights": weights_fingerprint(ModelSpec(id=c.id)), "scale": c.scale} for c in spec.model.controlnet]
        return {"nets": nets, "anchor_control": self.control_fields(spec.anchor.control)}

    def render_anchor(self, renderer: Renderer, on_step=None, announce=None) -> Image.Image:
        """The anchor pass as the storyboard asks for it: a real image inverted first (its
        trajectory for LATENTS, its prompt as the pass's negative with the negative-prompt
        method), with the anchor's control images. `announce(name)` before each pass."""
        anchor, trajectory = self.board.spec.anchor, None
        if self.anchor_image is not None:
            if announce is not None:
                announce("inversion")
            inversion = anchor.inversion
            trajectory = renderer.invert(
                self.anchor_image, anchor.prompt, on_step, inversion.guidance, inversion.refine
            ).trajectory
        if announce is not None:
            announce("anchor")
        control = self.control(anchor.control)
        return renderer.anchor(anchor.prompt, on_step, trajectory, self.anchor_negative_prompt, control)

    def control(self, paths) -> list[Image.Image] | None:
        """Control images at the render's size (fitted as an anchor image is), one per ControlNet."""
        if not paths:
            return None
        return [self._control_image(path) for path in paths]

    def _control_image(self, path: str) -> Image.Image:
        if path not in self.control_cache:
            self.control_cache[path] = fitted_file(self.board.folder / path, self.settings.width, self.settings.height)
        return self.control_cache[path]

    def tween_shot(self, tween: TweenPlan) -> tuple[dict, list[SwapRule]]:
        """An in-between frame: the conditioning `t` of the way from the previous frame's
        prompt to its frame's (slerp per token), under its frame's rules."""
        conditioning = between(self.pipe, tween.from_prompt, tween.prompt, tween.t, self.settings.negative_prompt)
        return conditioning, self.rules[tween.frame.index]

    def tween_control(self, tween: TweenPlan) -> list[Image.Image] | None:
        """Its control images: the previous frame's and its frame's, cross-faded by `t`."""
        start, end = self.control(tween.from_control), self.control(tween.frame.control)
        if not end:
            return None
        return [Image.blend(a, b, tween.t) for a, b in zip(start, end)]

    def tween_key(self, tween: TweenPlan, anchor_key: str) -> str:
        return cache_key({
            "frame": self.frame_key(tween.frame, anchor_key), "tween": [tween.k, tween.n],
            "from": tween.from_prompt, "from_control": self.control_fields(tween.from_control),
        })  # fmt: skip

    def control_fields(self, paths) -> list[str]:
        """Control images by content, for keys."""
        return [file_sha256(self.board.folder / path) for path in paths or ()]

    @property
    def anchor_negative_prompt(self) -> str:
        """The anchor pass's negative prompt: a real image's own prompt with the
        negative-prompt method (the guided prediction is then the conditional one, so the
        reconstruction follows the inversion), else the render's."""
        anchor = self.board.spec.anchor
        if anchor.image is not None and anchor.inversion.method == "negative-prompt":
            return anchor.prompt
        return self.settings.negative_prompt

    def anchor_image_fields(self) -> dict:
        """A real anchor image by content, and how it is inverted."""
        anchor = self.board.spec.anchor
        return {"sha256": file_sha256(self.board.folder / anchor.image), **anchor.inversion.model_dump()}

    def describe_rules(self, plan: FramePlan) -> list[dict]:
        """The frame's rules as resolved: module paths and step ranges, for the report."""
        return [describe_rule(spec, rule, self.board) for spec, rule in zip(plan.rules, self.rules[plan.index])]

    def frame_key(self, plan: FramePlan, anchor_key: str) -> str:
        """Everything that decides a frame's image: the anchor's key, its prompt, its rules
        (mask images by content)."""
        rules = self.describe_rules(plan)
        for rule in rules:
            image = rule.get("mask", {}).get("image")
            if image:
                rule["mask_sha256"] = file_sha256(self.board.folder / image)
        lora = {"lora": [list(pair) for pair in plan.lora]} if plan.lora else {}
        control = {"control": self.control_fields(plan.control)} if plan.control else {}
        return cache_key({"anchor": anchor_key, "prompt": plan.prompt, "rules": rules, **lora, **control})


def alone(rules: list[SwapRule]) -> bool:
    return any(rule.mask.alone for rule in rules if rule.mode == "mask")


def prepare(board: Storyboard, pipe, frames: list[FramePlan] | None = None) -> Prepared:
    """Compile the rules of `frames` (default: every frame) for `pipe`: layer names ->
    module paths, masks -> mask sources."""
    spec = board.spec
    native = native_size(pipe.unet.config, pipe.vae_scale_factor)
    render = spec.render
    real = spec.anchor.image is not None
    if real and pipe.unet.config.get("addition_embed_type") == "text_time":  # SDXL
        board.check_sd_pipeline_for_real_anchor()
    if real and type(pipe.scheduler).__name__ not in INVERSE_SCHEDULERS:
        raise InvalidInput(
            board.problem(
                ("anchor", "image"),
                f"a real-image anchor needs a scheduler with an inverse form ({', '.join(INVERSE_SCHEDULERS)}); "
                f"the pipe's is {type(pipe.scheduler).__name__} (set model.scheduler: ddim)",
            )
        )
    settings = RenderSettings(
        render.width or native, render.height or native, render.steps, render.guidance, render.seed,
        render.negative_prompt, tuple(controlnet.scale for controlnet in spec.model.controlnet),
    )  # fmt: skip
    layers = LayerMap.of(pipe.unet)
    anchor_state = AnchorState()
    compiler = Compiler(pipe, settings.width, settings.height, settings.steps, settings.seed, anchor_state, layers)
    frames = board.frames if frames is None else frames
    rules = {plan.index: compile_rules(compiler, board, plan.rules, plan) for plan in frames}
    anchor_image = load_anchor_image(board, settings.width, settings.height) if real else None
    return Prepared(board, pipe, settings, compiler, rules, anchor_state, anchor_image)


def load_anchor_image(board: Storyboard, width: int, height: int) -> Image.Image:
    """The real anchor image at the render's size: centre-cropped to its aspect, resized
    (Lanczos); transparency is composited on white, with a warning."""
    path = board.folder / board.spec.anchor.image
    with Image.open(path) as image:
        if image.mode in ("RGBA", "LA", "PA") or "transparency" in image.info:
            warn(f"{path.name} has transparency; it is composited on white")
            rgba = image.convert("RGBA")
            image = Image.alpha_composite(Image.new("RGBA", rgba.size, "white"), rgba)
        return fitted(image.convert("RGB"), width, height)


def compile_rules(compiler: Compiler, board: Storyboard, specs, plan: FramePlan) -> list[SwapRule]:
    """A frame's rules for the compiler's pipe; a rule that does not fit it is a positioned InvalidInput."""
    try:
        anchor = board.spec.anchor
        return compiler.rules(specs, plan.edit(anchor.prompt, tuple(anchor.control or ()), board.folder))
    except RuleError as error:
        raise InvalidInput(board.problem(error.where, str(error))) from None


def describe_rule(spec: RuleSpec, rule: SwapRule, board: Storyboard) -> dict:
    entry = {
        "mode": spec.mode,
        "layers": list(spec.layers),
        "modules": sorted(rule.layers),
        "steps": compact_steps(spec.steps),
    }
    if spec.mode == "threshold":
        entry.update(threshold=spec.threshold, reduce=spec.reduce, relative=spec.relative)
    if spec.mode == "mask":
        entry["mask"] = mask_as_written(spec.mask, board.folder)
    return entry


def compact_steps(steps) -> str:
    """(1, 2, 3, 7, 9, 10) -> '1-3,7,9-10'."""
    runs: list[list[int]] = []
    for step in sorted(steps):
        if runs and step == runs[-1][1] + 1:
            runs[-1][1] = step
        else:
            runs.append([step, step])
    return ",".join(f"{a}-{b}" if a != b else f"{a}" for a, b in runs)
