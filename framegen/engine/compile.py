"""From resolved rules to swap rules for one loaded pipeline.

A `RuleSpec` is a rule as a storyboard (or any caller) resolves it: layer names as
written (LDM aliases or module paths), 1-based steps, and for mask rules a `MaskPlan`.
`Compiler.rules(specs, edit)` turns a frame's specs into `SwapRule`s for one pipe at one
size: layer names become module paths, drawn masks become tensors, automatic masks
become mask sources (a control mask: where the frame's control images differ from the
anchor's). Attention masks read the anchor's attention maps, so compiling one
adds the store it reads to `anchor.stores`; compile every frame before the anchor pass.
"""

from __future__ import annotations

from .anchor import AnchorState
from .automask import (
    ATTENTION_DILATE,
    ATTENTION_THRESHOLD,
    AttentionMask,
    AttentionStore,
    attention_modules,
    mid_resolution_layers,
    tag_heads,
    token_positions,
)  # fmt: skip
from .families import denoiser, family_of, unsupported
from .inversion import fitted_file
from .joint import middle_blocks
from .layers import LayerMap, UnknownLayer
from .masks import CONTROL_DILATE, CONTROL_THRESHOLD, DrawnMask, MaskSource, control_mask, drawn_mask
from .noise import NOISE_DILATE, NOISE_THRESHOLD, NoiseMask
from .specs import Edit, MaskPlan, RuleSpec
from .swap import SwapRule


class RuleError(ValueError):
    """A rule that cannot be compiled for this pipe; `where` is its place (RuleSpec.where + field)."""

    def __init__(self, where: tuple, message: str):
        super().__init__(message)
        self.where = where


class Compiler:
    """Compiles rules for one pipe at one image size; `anchor` collects the attention
    stores that the anchor pass must fill for the compiled attention masks."""

    def __init__(self, pipe, width: int, height: int, steps: int, seed: int, anchor: AnchorState, layers: LayerMap):
        self.pipe, self.width, self.height, self.steps, self.seed = pipe, width, height, steps, seed
        self.anchor, self.layers = anchor, layers
        scale = pipe.vae_scale_factor
        self.latent_size = (width // scale, height // scale)  # (w, h)
        # frames share what they can: a drawn mask is read and resized once, an anchor map observed once
        self._drawn: dict[MaskPlan, DrawnMask] = {}
        self._stores: dict[tuple, AttentionStore] = {}
        self._shared: dict[RuleSpec, SwapRule] = {}

    def rules(self, specs: tuple[RuleSpec, ...] | list[RuleSpec], edit: Edit) -> list[SwapRule]:
        return [self.rule(spec, edit) for spec in specs]

    def rule(self, spec: RuleSpec, edit: Edit) -> SwapRule:
        """`spec` compiled for a frame with `edit`; a rule that reads nothing of the edit (no
        mask, or a drawn one) compiles once and is shared by every frame that has it."""
        shared = spec.mask is None or spec.mask.auto is None
        if shared and spec in self._shared:
            return self._shared[spec]
        rule = SwapRule(
            mode=spec.mode,
            layers=frozenset(self.module_path(name, spec.where + ("layers", i)) for i, name in enumerate(spec.layers)),
            steps=frozenset(spec.steps),
            mask=self.mask(spec, edit) if spec.mask is not None else None,
            threshold=spec.threshold or 0.0,
            reduce=spec.reduce,
            relative=spec.relative,
        )
        if shared:
            self._shared[spec] = rule
        return rule

    def module_path(self, name: str, where: tuple) -> str:
        try:
            return self.layers.module_path(name)
        except UnknownLayer as error:
            raise RuleError(where, str(error)) from None

    def mask(self, spec: RuleSpec, edit: Edit) -> MaskSource:
        plan = spec.mask
        if plan.auto == "attention":
            return self.attention_mask(spec, edit)
        if plan.auto == "control":
            if not edit.anchor_control:
                raise RuleError(spec.where + ("mask", "auto"), "control masks need ControlNet control images")
            anchor, frame = ([fitted_file(p, self.width, self.height) for p in paths]
                             for paths in (edit.anchor_control, edit.control or edit.anchor_control))  # fmt: skip
            threshold = plan.threshold if plan.threshold is not None else CONTROL_THRESHOLD
            dilate = plan.dilate if plan.dilate is not None else CONTROL_DILATE
            return DrawnMask(control_mask(anchor, frame, self.latent_size, threshold, dilate), "control")
        if plan.auto == "noise":
            problem = unsupported(
                family_of(denoiser(self.pipe).config), "noise_masks", "noise masks support", "use auto: attention"
            )
            if problem:
                raise RuleError(spec.where + ("mask", "auto"), problem)
            threshold = plan.threshold if plan.threshold is not None else NOISE_THRESHOLD
            dilate = plan.dilate if plan.dilate is not None else NOISE_DILATE
            return NoiseMask(
                self.anchor, edit.anchor_prompt, edit.prompt, self.seed, threshold, dilate, self.latent_size
            )
        if plan not in self._drawn:
            tensor = drawn_mask(plan, self.width, self.height)
            if plan.boxes is not None and not tensor.any():
                message = f"the boxes lie outside the {self.width}x{self.height} image: the mask would keep nothing"
                raise RuleError(spec.where + ("mask", "boxes"), message)
            self._drawn[plan] = DrawnMask(tensor, plan.kind)
        return self._drawn[plan]

    def attention_mask(self, spec: RuleSpec, edit: Edit) -> AttentionMask:
        plan, family = spec.mask, family_of(denoiser(self.pipe).config)
        layers = middle_blocks(self.layers) if family.transformer else mid_resolution_layers(self.layers)
        if plan.layers:
            layers = []
            for i, name in enumerate(plan.layers):
                layer = self.layers.by_module.get(self.module_path(name, spec.where + ("mask", "layers", i)))
                if layer is None or not layer.cross_attention:
                    message = f"'{name}' has no cross-attention (attention masks read cross-attention maps)"
                    raise RuleError(spec.where + ("mask", "layers"), message)
                layers.append(layer)
        grids = attention_modules(self.pipe, layers, self.latent_size)
        tokenizer = self.pipe.tokenizer_2 if family.name == "flux" else self.pipe.tokenizer  # FLUX's text is T5's
        if plan.words:
            anchor_words = frame_words = list(plan.words)
        else:  # the delta's words, narrowed to the objects they change
            anchor_words = tag_heads(edit.anchor_prompt, list(edit.anchor_words))
            frame_words = tag_heads(edit.prompt, list(edit.frame_words))
        anchor_positions = sorted({p for w in anchor_words for p in token_positions(tokenizer, edit.anchor_prompt, w)})
        frame_positions = sorted({p for w in frame_words for p in token_positions(tokenizer, edit.prompt, w)})
        # the anchor's maps over the same steps as the frame's (all of them for a mask from step 1)
        first = min(spec.steps)
        steps = set(range(1, first)) if first > 1 else set(range(1, self.steps + 1))
        key = (tuple(anchor_positions), tuple(sorted(grids.items())), tuple(sorted(steps)))
        if key not in self._stores:
            self._stores[key] = AttentionStore({"anchor": anchor_positions}, grids, steps, joint=family.transformer)
            self.anchor.stores.append(self._stores[key])
        store = self._stores[key]
        threshold = plan.threshold if plan.threshold is not None else ATTENTION_THRESHOLD
        dilate = plan.dilate if plan.dilate is not None else ATTENTION_DILATE
        w, h = self.latent_size
        return AttentionMask(store, frame_positions, first, threshold, dilate, (h, w))
