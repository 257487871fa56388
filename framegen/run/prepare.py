"""A storyboard made ready for one loaded pipeline: its settings, every keyframe's
compiled rules (in-betweens share their keyframe's), the anchor state they read, and its
shots' conditioning.

    board = load_storyboard("storyboards/demo.yaml")
    prepared = prepare(board, pipe)
    renderer = prepared.renderer()
    anchor = renderer.anchor(board.spec.anchor.prompt)
    frame = renderer.frame(*prepared.shot(board.frames[0]))
"""

from __future__ import annotations

from dataclasses import dataclass

from PIL import Image

from ..engine.anchor import AnchorState
from ..engine.cache import AnchorCache
from ..engine.compile import Compiler
from ..engine.swap import SwapRule, needed_pairs
from ..models.facts import facts_of
from ..storyboard import FramePlan, Storyboard
from .anchor import anchor_negative_prompt, load_anchor_image
from .conditioning import Conditioning
from .render import Renderer, RenderSettings, batched
from .rules import alone, compile_rules
from .shots import Shot, frame_shot, shots_of


@dataclass
class Prepared:
    board: Storyboard
    pipe: object
    settings: RenderSettings
    compiler: Compiler
    rules: dict[int, list[SwapRule]]  # keyframe index -> its compiled rules
    anchor_state: AnchorState
    conditioning: Conditioning
    anchor_image: Image.Image | None = None  # a real anchor image, at the render's size

    @property
    def needed(self) -> set[tuple[str, int]]:
        return set().union(*(needed_pairs(rules) for rules in self.rules.values()))

    @property
    def anchor_negative_prompt(self) -> str:
        return anchor_negative_prompt(self.board, self.settings)

    def renderer(self, cache: AnchorCache | None = None) -> Renderer:
        """A renderer for these shots; by default its cache holds what they need, on the
        device or (render.cache: cpu) in host memory."""
        cache = cache if cache is not None else AnchorCache(self.needed, offload=self.board.spec.render.cache == "cpu")
        return Renderer(self.pipe, self.settings, cache, self.anchor_state)

    def compile(self, specs, shot: Shot) -> list[SwapRule]:
        """Other rules for a shot (a sweep's runs); compile them before the anchor pass."""
        return compile_rules(self.compiler, self.board, specs, shot)

    def shot(self, shot: Shot | FramePlan) -> tuple[str | dict, list[SwapRule]]:
        """A shot's (or a keyframe's) text conditioning and compiled rules, for Renderer.frames."""
        shot = shot if isinstance(shot, Shot) else frame_shot(shot)
        return self.conditioning.text(shot), self.rules[shot.index]

    def batches(self, shots: list[Shot], size: int) -> list[list[Shot]]:
        """`shots` in order, in groups of up to `size` of equal LoRA scales; an in-between
        (encoded conditioning) or a frame whose mask reads its own pass renders alone."""
        return batched(
            shots, size, alone=lambda s: s.between is not None or alone(self.rules[s.index]), key=lambda s: s.lora
        )


def prepare(board: Storyboard, pipe, shots: list[Shot] | None = None, check: bool = True) -> Prepared:
    """Compile the rules of `shots` (default: every shot) for `pipe`: layer names -> module
    paths, masks -> mask sources; first (`check`) the storyboard against what the pipe is."""
    facts = facts_of(pipe)
    if check:
        board.check_model(facts.config, type(pipe.scheduler).__name__)
    settings = RenderSettings.of(board.spec, facts.config.native)
    anchor_state = AnchorState()
    width, height, steps, seed = settings.width, settings.height, settings.steps, settings.seed
    compiler = Compiler(pipe, width, height, steps, seed, anchor_state, facts.config.layers)
    keyframes = {shot.index: shot for shot in (shots_of(board) if shots is None else shots) if shot.kind != "anchor"}
    rules = {index: compile_rules(compiler, board, shot.rules, shot) for index, shot in sorted(keyframes.items())}
    conditioning = Conditioning(pipe, board.folder, settings)
    return Prepared(
        board, pipe, settings, compiler, rules, anchor_state, conditioning, load_anchor_image(board, settings)
    )
