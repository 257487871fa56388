"""A frame's numbers: background MSE against the anchor, foreground MSE, flicker.

Background is what the segmenter does not call the person. `background_mse` is the
mean squared error over RGB on the 0-255 scale over pixels that are background in
both the anchor and the frame (the paper's metric); `foreground_mse` is the same over
the other pixels, which shows that the edit happened. `flicker` is the background MSE
between a frame and the video frame before it (the anchor for the first; in-betweens in
their place; a held frame's repeats change nothing), in the same units: what a video
editor sees first, and what a clip can show even when every frame is close to the anchor.
With a real anchor image (`anchor.image`) frames are measured against that image (what
should stay), and the anchor entry gives the reconstruction's PSNR and its own MSEs
against it.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from .review import write_heatmap


def _mse(a: np.ndarray, b: np.ndarray, where: np.ndarray) -> float | None:
    if not where.any():
        return None
    difference = a[where].astype(np.float64) - b[where].astype(np.float64)
    return float(np.mean(difference**2))


def compare(anchor: Image.Image, frame: Image.Image, anchor_person: np.ndarray, frame_person: np.ndarray) -> dict:
    a = np.asarray(anchor.convert("RGB"))
    b = np.asarray(frame.convert("RGB"))
    background = ~anchor_person & ~frame_person
    return {
        "background_mse": _mse(a, b, background),
        "foreground_mse": _mse(a, b, ~background),
        "background_fraction": float(background.mean()),
    }


def blank(image: Image.Image) -> bool:
    """Whether the image is a single colour (what a render that went NaN decodes to)."""
    low, high = zip(*image.convert("RGB").getextrema())
    return low == high


def psnr(a: Image.Image, b: Image.Image) -> float:
    """Peak signal-to-noise ratio of two 8-bit images, in dB (inf when equal)."""
    error = np.mean((np.asarray(a.convert("RGB"), np.float64) - np.asarray(b.convert("RGB"), np.float64)) ** 2)
    return float("inf") if error == 0 else float(10 * np.log10(255**2 / error))


class Measure:
    """Scores the frames of one clip in video order against `reference` (a real anchor
    image, else the anchor), keeping only the frame before (for flicker): the clip's first
    frame is the anchor."""

    def __init__(self, reference: Image.Image, anchor: Image.Image, segmenter):
        self.reference, self.segmenter = reference, segmenter
        self.reference_person = segmenter.person(reference)
        self.before = (np.asarray(anchor.convert("RGB")), segmenter.person(anchor))

    def reconstruction(self, anchor: Image.Image) -> dict:
        """How well the anchor pass rebuilt a real anchor image: PSNR, and the same MSEs as frames get."""
        value = psnr(self.reference, anchor)
        return {
            "psnr": None if value == float("inf") else round(value, 2),
            **compare(self.reference, anchor, self.reference_person, self.segmenter.person(anchor)),
        }

    def frame(self, entry: dict, image: Image.Image, seconds: float, out: Path) -> dict:
        """`entry` (as the render describes the frame) with its MSEs, flicker and render
        time; its heat-map written to `out`."""
        image = image.convert("RGB")
        person = self.segmenter.person(image)
        write_heatmap(self.reference, image, ~self.reference_person & ~person, out / entry["heatmap"])
        scores = compare(self.reference, image, self.reference_person, person)
        pixels = np.asarray(image)
        if blank(image):  # NaN latents decode to one colour: no measurement, and every check fails
            scores.update(background_mse=None, foreground_mse=None, blank=True, flicker=None)
        else:
            scores["flicker"] = _mse(self.before[0], pixels, ~self.before[1] & ~person)
        self.before = (pixels, person)
        described = {key: value for key, value in entry.items() if key != "reused"}
        return {**described, **scores, "seconds": round(seconds, 3), "reused": entry["reused"]}
