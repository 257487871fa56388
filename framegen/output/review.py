"""What a reviewer looks at besides the numbers: where each frame drifted from the anchor
(a heat-map of its background), and every frame on one labelled contact sheet.

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


def sheet(report: dict, out: Path) -> Image.Image:
    """The anchor and every video frame in order, each labelled with its name and its
    background MSE, and FAIL where a check failed on it."""
    failing = failing_frames(report)
    width = 160 if len(report["frames"]) < 64 else 96  # 500 frames: a sheet of 63 rows
    tiles = [("anchor", _tile(out / report["anchor"]["image"], width))]
    for frame in report["frames"]:
        mse = frame["background_mse"]
        shown = "bg MSE -" if mse is None else f"bg MSE {mse:.1f}"
        label = f"{frame['name']}\n{shown}{'  FAIL' if frame['name'] in failing else ''}"
        tiles.append((label, _tile(out / frame["image"], width)))
    return contact_sheet(tiles, min(8, len(tiles)), tile_width=width)


def failing_frames(report: dict) -> set[str]:
    return {name for check in report["checks"] for name in check["failing_frames"]}


def write_sheet(report: dict, out: Path) -> None:
    write_png(sheet(report, out), out / "sheet.png", SHEET_TEXT)


def _tile(path: Path, width: int) -> Image.Image:
    """The image, shrunk to `width` when larger (one in memory at a time, not 500 full frames)."""
    with Image.open(path) as image:
        image = image.convert("RGB")
    if image.width > width:
        image = image.resize((width, round(image.height * width / image.width)), Image.Resampling.LANCZOS)
    return image
