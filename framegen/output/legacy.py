"""Folders written by framegen 0.2, which kept no record of what it wrote (ledger.py): the
first render into one decides what is framegen's as 0.2 did, by the marks framegen puts
in its files, and records from then on what it writes, so later renders go by the record.

Marks a user's file can carry too are not taken on their own: a clip counts only when it
also still shows framegen's frames (as many as report.json says, the first one the
anchor), since ffmpeg copies the mark into a clip a user re-encodes from framegen's; a
file in anchor-cache/ counts only when the cache's manifest lists it with its SHA-256.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from PIL import Image

from .files import is_framegen_clip, read_png_text
from .page import is_report_page
from .report import CSV_COLUMNS
from .review import HEATMAP_TEXT, SHEET_TEXT

OWN_PNG_KEYS = ("framegen-key", "framegen-mask", *HEATMAP_TEXT, *SHEET_TEXT)  # the text chunks framegen writes
# the clip's first frame against anchor.png, both as 8x8 grey thumbnails (so the codec's
# noise averages out and the picture's layout stays): measured 1.8 for framegen's own clips,
# 76 for a flipped one of random-weight noise and 820 for a flipped demo clip
THUMBNAIL, MAX_THUMBNAIL_MSE = (8, 8), 16.0
# report.csv's header as framegen 0.2 wrote it (0.3 added `flicker`)
CSV_HEADER_0_2 = "index,name,prompt,image,background_mse,foreground_mse,background_fraction,seconds\n"


def legacy_owns(folder: Path, name: str) -> bool:
    """Whether a 0.2 folder's file at `name` (relative) shows framegen's marks and, where
    those could be copied, framegen's content."""
    path = folder / name
    try:
        if name.startswith("anchor-cache/"):
            return in_manifest(folder / "anchor-cache", path)
        if path.suffix == ".png":
            return any(key in read_png_text(path) for key in OWN_PNG_KEYS)
        if name == "report.html":
            return is_report_page(path.read_text(encoding="utf-8"))
        if name == "clip.mp4":
            return is_framegen_clip(path) and shows_the_frames(folder, path)
        if name == "report.json":
            return "framegen_version" in json.loads(path.read_text(encoding="utf-8"))
        if name == "report.csv":
            return path.read_text(encoding="utf-8").startswith((CSV_HEADER_0_2, ",".join(CSV_COLUMNS) + "\n"))
    except (OSError, ValueError, TypeError, KeyError, AttributeError):
        return False
    return False


def in_manifest(cache: Path, path: Path) -> bool:
    from ..engine.cache import MANIFEST, check_folder
    from ..engine.digest import sha256

    manifest = json.loads((cache / MANIFEST).read_text())
    if check_folder(cache, manifest["key"]) is not None:  # a cache that is not whole proves nothing
        return False
    return path.name == MANIFEST or manifest["files"].get(path.name, {}).get("sha256") == sha256(path)


def shows_the_frames(folder: Path, clip: Path) -> bool:
    """The clip has report.json's frame count and starts with anchor.png."""
    import imageio_ffmpeg

    expected = json.loads((folder / "report.json").read_text(encoding="utf-8"))["video"]["frame_count"]
    count, _ = imageio_ffmpeg.count_frames_and_secs(str(clip))
    if count != expected:
        return False
    reader = imageio_ffmpeg.read_frames(str(clip))
    try:
        width, height = next(reader)["size"]
        first = Image.fromarray(np.frombuffer(next(reader), np.uint8).reshape(height, width, 3))
    finally:
        reader.close()
    with Image.open(folder / "anchor.png") as anchor:
        if anchor.size != first.size:
            return False
        a, b = (np.asarray(i.convert("L").resize(THUMBNAIL, Image.Resampling.BOX), np.float64) for i in (anchor, first))
    return float(((a - b) ** 2).mean()) < MAX_THUMBNAIL_MSE
