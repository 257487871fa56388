"""Consistency of the demo model under framegen's swap settings.

For a (seed, edit) pair drawn from the scene grammar, the anchor prompt is the caption
of `sample_attributes(seed)` and the frame changes the shirt or the bottom colour. Every
setting renders the same pair through framegen's own storyboard path, and each frame is
scored like `framegen render` scores it (background / foreground MSE with the demo
segmenter), plus **edit success**: the frame's person, found by the segmenter, has the
requested colour in the band of rows where the scene generator draws that garment.

Used by `benchmarks/consistency.py` (the table) and the regression test.
"""

from __future__ import annotations

import random
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from framegen.engine.families import denoiser
from framegen.engine.layers import LayerMap
from framegen.models.demo import segmenter_path
from framegen.models.facts import facts_of
from framegen.output.measure import compare
from framegen.output.segmenters import RembgSegmenter
from framegen.run.prepare import Prepared, prepare
from framegen.storyboard import load_storyboard

from .scenes import COLOURS, RGB, caption, draw_scene, sample_attributes

# Rows of the garment bands as fractions of the person's height (see scenes._draw_person:
# the shirt spans 0.24-0.57 of the height from the head's top, every bottom 0.57-0.74).
BANDS = {"top_colour": (0.30, 0.50), "bottom_colour": (0.60, 0.72)}


@dataclass(frozen=True)
class Edit:
    seed: int
    attribute: str  # top_colour | bottom_colour
    colour: str

    @property
    def anchor_prompt(self) -> str:
        return caption(sample_attributes(self.seed))

    @property
    def frame_prompt(self) -> str:
        return caption({**sample_attributes(self.seed), self.attribute: self.colour})


def edits(count: int, first_seed: int = 20_000_000) -> list[Edit]:
    """`count` (seed, edit) pairs, alternating shirt and bottom edits, each to a colour
    the anchor does not already have. Seeds are outside the training range."""
    chosen = []
    for i in range(count):
        seed = first_seed + i
        attribute = ("top_colour", "bottom_colour")[i % 2]
        current = sample_attributes(seed)[attribute]
        colour = random.Random(seed).choice([c for c in COLOURS if c != current])
        chosen.append(Edit(seed, attribute, colour))
    return chosen


def garment_colour(image: Image.Image, person: np.ndarray, attribute: str) -> str | None:
    """The palette colour nearest to the median of the person's pixels in the garment's
    band of rows, or None when no person was found."""
    rows = np.flatnonzero(person.any(axis=1))
    if rows.size < 4:
        return None
    top, height = rows[0], rows[-1] - rows[0] + 1
    low, high = BANDS[attribute]
    band = np.zeros_like(person)
    band[top + int(low * height) : top + int(np.ceil(high * height))] = True
    pixels = np.asarray(image.convert("RGB"))[person & band]
    if len(pixels) == 0:
        return None
    median = np.median(pixels, axis=0)
    return min(COLOURS, key=lambda c: float(np.sum((np.array(RGB[c]) - median) ** 2)))


def grid_drawn(person: np.ndarray, cells: int) -> np.ndarray:
    """`person` as a person would draw it on a `cells` x `cells` grid: a cell is marked
    when any of its pixels is."""
    h, w = person.shape
    rows, cols = np.arange(h) * cells // h, np.arange(w) * cells // w
    marked = np.zeros((cells, cells), dtype=bool)
    np.logical_or.at(marked, (rows[:, None], cols[None, :]), person)
    return marked[rows[:, None], cols[None, :]]


SETTINGS = {
    # name -> the frame's swap rules; {phase} = last step of the whole-tensor phase
    "no swap": "[]",
    "whole OUT3+OUT4": '[{{mode: full, layers: [OUT3, OUT4], steps: "1-{phase}"}}]',
    "whole IN8+OUT3-6": '[{{mode: full, layers: [IN8, OUT3, OUT4, OUT5, OUT6], steps: "1-{phase}"}}]',
    "whole + threshold": (
        '[{{mode: full, layers: [{first}], steps: "1-{phase}"}},'
        ' {{mode: threshold, layers: [{second}], steps: "{after}-{steps}", threshold: {threshold}}}]'
    ),
    "whole + relative threshold": (
        '[{{mode: full, layers: [{first}], steps: "1-{phase}"}},'
        ' {{mode: threshold, layers: [{second}], steps: "{after}-{steps}", threshold: {relative}, relative: true}}]'
    ),
    "whole + hand mask": (
        '[{{mode: full, layers: [{first}], steps: "1-{phase}"}},'
        ' {{mode: mask, layers: [{second}], steps: "{after}-{steps}", mask: {{image: mask.png}}}}]'
    ),
    "whole + grid-drawn mask": (
        '[{{mode: full, layers: [{first}], steps: "1-{phase}"}},'
        ' {{mode: mask, layers: [{second}], steps: "{after}-{steps}", mask: {{image: grid-mask.png}}}}]'
    ),
    "whole + auto attention": (
        '[{{mode: full, layers: [{first}], steps: "1-{phase}"}},'
        ' {{mode: mask, layers: [{second}], steps: "{after}-{steps}", mask: {{auto: attention}}}}]'
    ),
    "whole + auto noise": (
        '[{{mode: full, layers: [{first}], steps: "1-{phase}"}},'
        ' {{mode: mask, layers: [{second}], steps: "{after}-{steps}", mask: {{auto: noise}}}}]'
    ),
}
# demo-flow (FLUX-shaped): {first} are the vital blocks, {blocks} every block. On a DiT the
# colour of a garment is settled in the same early steps as the layout, so masks act from
# step 1 (a whole-tensor phase first would fix the anchor's colours); the rows the
# transformer literature uses, beside the paper's
FLOW_SETTINGS = {
    "no swap": "[]",
    "whole vital blocks": '[{{mode: full, layers: [{first}], steps: "1-{phase}"}}]',
    "kv whole (Stable Flow)": "[{{mode: kv, layers: [{first}], steps: all}}]",
    "kv masked (KV-Edit)": "[{{mode: kv, layers: [{blocks}], steps: all, mask: {{image: mask.png}}}}]",
    "kv + auto attention": "[{{mode: kv, layers: [{blocks}], steps: all, mask: {{auto: attention}}}}]",
    "hand mask": "[{{mode: mask, layers: [{first}], steps: all, mask: {{image: mask.png}}}}]",
    "auto attention": "[{{mode: mask, layers: [{first}], steps: all, mask: {{auto: attention}}}}]",
    "threshold": "[{{mode: threshold, layers: [{first}], steps: all, threshold: {relative}, relative: true}}]",
    "local blend": "[{{mode: mask, layers: [LATENTS], steps: all, mask: {{auto: attention}}}}]",
}
# The anchor's background, pixel-exact (the stand-in for a hand-drawn region) and
# drawn on a coarse grid as the paper drew it (every cell holding some of the person is
# freed): settings that name either file render in a second pass.
HAND_MASK, GRID_MASK = "mask.png", "grid-mask.png"
GRID_CELLS = 8  # per side: the paper drew on 10x14 cells at 640x896, 1/10 of the width

BOARD = """
version: 1
model: {model}
render: {{steps: {steps}, guidance: {guidance}, seed: {seed}}}
anchor: {{prompt: "{anchor}"}}
frames:
{frames}
report: {{background: {{segmenter: none}}}}
"""


class Evaluator:
    """Renders (seed, edit) pairs under every setting with one pipeline and segmenter."""

    def __init__(
        self, pipe, steps: int = 30, guidance: float = 3.0, threshold: float = 0.13, relative: float = 0.1,
        settings=None, first_phase: str = "OUT3, OUT4", second_phase: str = "OUT3, OUT4, OUT5, OUT6, OUT10",
        templates: dict[str, str] | None = None, model: str = "{id: demo, scheduler: ddim}",
    ):  # fmt: skip
        self.pipe, self.model = pipe, model
        self.first_phase, self.second_phase = first_phase, second_phase
        self.steps, self.guidance, self.threshold, self.relative = steps, guidance, threshold, relative
        self.phase = round(0.4 * steps)
        self.templates = {**SETTINGS, **(templates or {})}  # extra settings, e.g. mask variants to tune
        self.settings = settings or list(self.templates)
        self.segmenter = RembgSegmenter("demo", segmenter_path())
        side = facts_of(pipe).config.native
        self.size = f"{side}x{side}"
        layers = LayerMap.of(denoiser(pipe)).layers
        self.blocks = ", ".join(layer.name for layer in layers if layer.name[0] in "DS" and layer.name[1:].isdigit())

    def _prepared(self, folder: Path, edit: Edit, settings: list[str]) -> Prepared:
        frames = "\n".join(
            f'  - {{name: "{name}", prompt: "{edit.frame_prompt}", swap: '
            + self.templates[name].format(
                phase=self.phase,
                after=self.phase + 1,
                steps=self.steps,
                threshold=self.threshold,
                relative=self.relative,
                first=self.first_phase,
                second=self.second_phase,
                blocks=self.blocks,
            )
            + "}"
            for name in settings
        )
        path = folder / f"{edit.seed}-{len(settings)}.yaml"
        path.write_text(
            BOARD.format(
                model=self.model,
                steps=self.steps,
                guidance=self.guidance,
                seed=edit.seed,
                anchor=edit.anchor_prompt,
                frames=frames,
            )
        )
        return prepare(load_storyboard(path), self.pipe)

    def score(self, edit: Edit) -> dict[str, dict]:
        """{setting: {background_mse, foreground_mse, background_fraction, edited, image}}."""
        results = {}
        with tempfile.TemporaryDirectory() as folder:
            folder = Path(folder)
            hand = [s for s in self.settings if any(name in self.templates[s] for name in (HAND_MASK, GRID_MASK))]
            prepared = self._prepared(folder, edit, [s for s in self.settings if s not in hand])
            renderer = prepared.renderer()
            anchor = renderer.anchor(edit.anchor_prompt)
            anchor_person = self.segmenter.person(anchor)
            frames = {plan.name: renderer.frame(*prepared.shot(plan)).image for plan in prepared.board.frames}
            if hand:
                # the hand-drawn region's stand-in: keep the anchor where it has no person
                Image.fromarray(np.where(anchor_person, 0, 255).astype(np.uint8)).save(folder / HAND_MASK)
                Image.fromarray(np.where(grid_drawn(anchor_person, GRID_CELLS), 0, 255).astype(np.uint8)).save(
                    folder / GRID_MASK
                )
                masked = self._prepared(folder, edit, hand)
                masked_renderer = masked.renderer()
                masked_renderer.anchor(edit.anchor_prompt)
                frames.update(
                    (plan.name, masked_renderer.frame(*masked.shot(plan)).image) for plan in masked.board.frames
                )
        for name in self.settings:
            image = frames[name]
            person = self.segmenter.person(image)
            results[name] = {
                **compare(anchor, image, anchor_person, person),
                "edited": garment_colour(image, person, edit.attribute) == edit.colour,
                "image": image,
            }
        # how much of the person the scene grammar draws for this seed the segmenter found
        # in the anchor: far below 100%, the background and the hand mask miss the person
        drawn = draw_scene(sample_attributes(edit.seed)).person_mask.mean()
        results["anchor"] = {"image": anchor, "person_found": float(anchor_person.mean() / drawn)}
        return results
