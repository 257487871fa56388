"""What identifies an image: one digest of everything that decides its pixels, so that a
render reuses exactly the frames, anchors and caches that would come out the same.

Every key is `digest(fields)`:

- the anchor: the model (weights, config and tokenizer files by content, variant,
  scheduler, dtype, device kind), its LoRAs and ControlNets with their scales, the render
  settings (size, steps, guidance, seed, negative prompt), the anchor's prompt and control
  images, and a real anchor image with its inversion;
- a shot: the anchor's key and the shot's own conditioning (prompt; an in-between's
  starting prompt, control images and position), control images, LoRA scales and rules
  (module paths, steps, thresholds, masks with their images' bytes);
- the disk cache: the anchor's key and what the anchor pass keeps (the (layer, step)
  pairs and the attention maps that masks read);
- a sweep: a shot's key with no rules and the segmenter; each run adds its rules.

Names, holds, fps, checks and the output folder decide no pixels and are in no key. Keys
need files, not a loaded model: the facts come from models/facts.py.
"""

from __future__ import annotations

import json
from functools import cached_property
from pathlib import Path

from .. import __version__
from ..engine.digest import digest
from ..engine.layers import UnknownLayer
from ..engine.specs import RuleSpec
from ..models.facts import ModelFacts
from ..models.fingerprints import file_sha256, lora_fingerprint, weights_fingerprint
from ..storyboard import Storyboard
from .render import RenderSettings
from .rules import describe_rule
from .shots import Shot

KEY_LENGTH = 24  # hex digits


def key(fields: dict) -> str:
    return digest(fields, KEY_LENGTH)


class Identity:
    """The keys of one storyboard's images on one model."""

    def __init__(self, board: Storyboard, facts: ModelFacts):
        self.board, self.facts = board, facts
        self.settings = RenderSettings.of(board.spec, facts.config.native)

    @cached_property
    def anchor_fields(self) -> dict:
        spec, settings = self.board.spec, self.settings
        anchor = spec.anchor
        return {
            "framegen": __version__,
            "model": {
                **weights_fingerprint(spec.model),
                "variant": spec.model.variant,
                **({"t5": False} if not spec.model.t5 else {}),  # only when set: other models' keys stay as they were
            },  # fmt: skip
            "scheduler": self.facts.scheduler_fields,
            "dtype": self.facts.dtype,
            "device": self.facts.device,
            "lora": [[sha, scale] for _, sha, scale in lora_fingerprint(spec.model)],
            "controlnet": [[weights_fingerprint(c, "controlnet"), c.scale] for c in spec.model.controlnet],
            "size": [settings.width, settings.height],
            "steps": settings.steps,
            "guidance": settings.guidance,
            "seed": settings.seed,
            "negative_prompt": settings.negative_prompt,
            "prompt": anchor.prompt,
            "control": self.files(anchor.control),
            "image": [self.files([anchor.image]), anchor.inversion.model_dump()] if anchor.image else None,
        }

    @cached_property
    def anchor(self) -> str:
        return key(self.anchor_fields)

    def shot_fields(self, shot: Shot, rules: tuple[RuleSpec, ...] | None = None) -> dict:
        """Everything that decides `shot`'s image (under `rules` instead of its own if given)."""
        if shot.kind == "anchor":
            return {"anchor": self.anchor_fields}
        between = shot.between
        return {
            "anchor": self.anchor,
            "prompt": shot.prompt,
            "control": self.files(shot.control),
            "lora": [scale for _, scale in shot.lora],
            "words": [shot.anchor_words, shot.frame_words],
            "rules": self.rules(shot.rules if rules is None else rules),
            "between": [between.prompt, self.files(between.control), between.t] if between else None,
        }

    def shot(self, shot: Shot) -> str:
        return self.anchor if shot.kind == "anchor" else key(self.shot_fields(shot))

    def cache_fields(self, shots: list[Shot]) -> dict:
        """The disk cache's: the anchor, the (layer, step) pairs its frames read, and the
        attention-mask rules whose maps the anchor pass observes."""
        specs = [spec for shot in shots for spec in shot.rules]
        attention = [
            [self.rules([spec]), shot.anchor_words]
            for shot in shots
            for spec in shot.rules
            if spec.mask is not None and spec.mask.auto == "attention"
        ]
        pairs = {(self.module(layer), step) for spec in specs for layer in spec.layers for step in spec.steps}
        return {"anchor": self.anchor, "pairs": sorted(pairs), "attention": sorted(attention, key=json.dumps)}

    def cache(self, shots: list[Shot]) -> str:
        return key(self.cache_fields(shots))

    def sweep(self, shot: Shot, masks: list[RuleSpec]) -> str:
        """A sweep's folder: everything that decides a run's image and score but its rules
        (which its rows are matched by), and the masks its runs use, by content."""
        background = self.board.spec.report.background.model_dump()
        return key({"shot": self.shot_fields(shot, rules=()), "masks": self.rules(masks), "background": background})

    def rules(self, specs) -> list[dict]:
        """Rules as they decide pixels: module paths, steps, thresholds, masks by content."""
        described = []
        for spec in specs:
            entry = describe_rule(spec, self.module, self.board)
            del entry["layers"]  # as written: `out03` and `OUT3` are one module
            if spec.mask is not None and spec.mask.image is not None:
                entry["mask_bytes"] = file_sha256(spec.mask.image)  # its path is resolved already
            described.append(entry)
        return described

    def module(self, layer: str) -> str:
        """A layer name as the module path it resolves to (a raw path as given)."""
        try:
            return self.facts.config.layers.module_path(layer)
        except UnknownLayer:  # a raw path below a block, which a config-only map cannot list
            return layer

    def files(self, paths) -> list[str]:
        """Files named in the storyboard, by content."""
        return [file_sha256(self.board.folder / Path(path)) for path in paths or ()]
