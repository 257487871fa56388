"""What a reviewer looks at besides the numbers: where each frame drifted from the anchor
(a heat-map of its background), and the clip on one labelled contact sheet.

A heat-map colours each background pixel by its RMS difference from the anchor over R, G
and B (0-255 scale) on a fixed scale, the same for every frame and every render: black is
equal, the brightest colour is `HEAT_MAX` or more. The frame's background MSE is the mean
of these values squared. Pixels the segmenter calls the person (in the anchor or the
frame) are not measured and show in `UNMEASURED`, a colour the scale does not use.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from .. import __version__
from .files import contact_sheet, write_png

SHEET_TILES = 64  # the anchor and up to 63 frames: a longer clip's are chosen from it
HEAT_MAX = 64.0  # RMS difference shown in the brightest colour
UNMEASURED = (70, 90, 110)  # blue-grey: person pixels, not measured
# an inferno-like ramp: black, purple, red, orange, pale yellow
HEAT_STOPS = np.array([[0, 0, 4], [87, 16, 110], [188, 55, 84], [249, 142, 9], [252, 255, 164]], dtype=np.float64)
HEATMAP_TEXT = {"framegen-heatmap": __version__}
SHEET_TEXT = {"framegen-sheet": __version__}


def heat_colours(values: np.ndarray) -> np.ndarray:
    """RMS differences -> RGB uint8 on the fixed scale (0 .. HEAT_MAX, clipped)."""
    position = np.clip(values / HEAT_MAX, 0.0, 1.0) * (len(HEAT_STOPS) - 1)
    low = np.minimum(position.astype(int), len(HEAT_STOPS) - 2)
    fraction = (position - low)[..., None]
    return np.round(HEAT_STOPS[low] * (1 - fraction) + HEAT_STOPS[low + 1] * fraction).astype(np.uint8)


def heatmap(reference: Image.Image, frame: Image.Image, background: np.ndarray) -> Image.Image:
    """The frame's drift from `reference` where `background` (H, W) is true."""
    a = np.asarray(reference.convert("RGB"), dtype=np.float64)
    b = np.asarray(frame.convert("RGB"), dtype=np.float64)
    rms = np.sqrt(((a - b) ** 2).mean(axis=2))
    rgb = heat_colours(rms)
    rgb[~background] = UNMEASURED
    return Image.fromarray(rgb)


def write_heatmap(reference: Image.Image, frame: Image.Image, background: np.ndarray, path: Path) -> None:
    write_png(heatmap(reference, frame, background), path, HEATMAP_TEXT)


class Sheet:
    """sheet.png, built as frames are measured, holding only its tiles (each shrunk): the
    anchor and every frame of a clip of up to SHEET_TILES - 1 frames; of a longer clip,
    that many frames spread evenly over it, where a failing frame takes the place of the
    nearest chosen one (the first that fails near it), so a long clip's sheet still shows
    every stretch that fails. Each tile is labelled with the frame's name, its background
    MSE, and FAIL where a check failed on it."""

    def __init__(self, anchor: Image.Image | Path, total: int):
        self.total, self.slots = total, min(total, SHEET_TILES - 1)
        self.width = 160 if total < 64 else 96
        self.anchor = _tile(anchor, self.width)
        self.tiles: list[tuple[str, Image.Image, bool] | None] = [None] * self.slots
        self.spread = (self.slots - 1) / max(1, total - 1)  # slots per frame
        self.position = 0

    def add(self, frame: dict, image: Image.Image | Path, failed: bool) -> None:
        """The next frame in video order; `image` (or its file) is read only when it is shown."""
        position, self.position = self.position, self.position + 1
        slot = round(position * self.spread)
        own = (round(slot / self.spread) if self.spread else 0) == position  # the frame the slot is spread to
        held = self.tiles[slot]
        if (own and held is None) or (failed and (held is None or not held[2])):
            mse = frame["background_mse"]
            label = f"{frame['name']}\n{'bg MSE -' if mse is None else f'bg MSE {mse:.1f}'}{'  FAIL' if failed else ''}"
            self.tiles[slot] = (label, _tile(image, self.width), failed)

    def write(self, path: Path) -> None:
        tiles = [("anchor", self.anchor)] + [(label, tile) for label, tile, _ in filter(None, self.tiles)]
        write_png(contact_sheet(tiles, min(8, len(tiles)), tile_width=self.width), path, SHEET_TEXT)


def failing_frames(report: dict) -> set[str]:
    return {name for check in report["checks"] for name in check["failing_frames"]}


def _tile(image: Image.Image | Path, width: int) -> Image.Image:
    """The image (or the one in a file), shrunk to `width` when larger."""
    if isinstance(image, Path):
        with Image.open(image) as file:
            image = file.convert("RGB")
    elif image.mode != "RGB":
        image = image.convert("RGB")
    if image.width > width:
        image = image.resize((width, round(image.height * width / image.width)), Image.Resampling.LANCZOS)
    return image
