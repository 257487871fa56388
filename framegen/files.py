"""Files on disk: every output is written to a temporary name and renamed into place,
so an interrupted render leaves the earlier output whole."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
from PIL import Image

from .errors import RenderFailure

_UMASK = os.umask(0)
os.umask(_UMASK)


@contextmanager
def atomic_path(path: Path) -> Iterator[Path]:
    """Yield a temporary path beside `path` (same suffix); rename it over `path` on
    success, delete it on failure."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=path.suffix, dir=path.parent)
    os.close(fd)
    temporary = Path(name)
    try:
        yield temporary
        os.chmod(temporary, 0o666 & ~_UMASK)  # mkstemp makes it private (0600)
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)


def write_png(image: Image.Image, path: Path, text: dict[str, str] | None = None) -> None:
    """`text` goes into the PNG's tEXt chunks (framegen keeps a frame's key there)."""
    from PIL.PngImagePlugin import PngInfo

    info = PngInfo()
    for key, value in (text or {}).items():
        info.add_text(key, value)
    with atomic_path(path) as temporary:
        image.save(temporary, format="PNG", pnginfo=info)


def read_png_text(path: Path) -> dict[str, str]:
    """The tEXt chunks of a PNG written by `write_png`; {} when absent or unreadable."""
    try:
        with Image.open(path) as image:
            return dict(getattr(image, "text", {}))
    except (OSError, ValueError):
        return {}


def write_text(text: str, path: Path) -> None:
    with atomic_path(path) as temporary:
        temporary.write_text(text, encoding="utf-8")


def write_mp4(images: list[Image.Image], holds: list[int], path: Path, fps: float, crf: int = 18) -> int:
    """Encode H.264 / yuv420p at the images' exact size; image i is shown holds[i]
    times. Returns the number of video frames written."""
    import imageio_ffmpeg

    width, height = images[0].size
    if width % 2 or height % 2:
        raise RenderFailure(f"H.264 yuv420p needs even sides, got {width}x{height}")
    count = 0
    with atomic_path(path) as temporary:
        writer = imageio_ffmpeg.write_frames(
            str(temporary),
            (width, height),
            fps=fps,
            codec="libx264",
            pix_fmt_in="rgb24",
            pix_fmt_out="yuv420p",
            macro_block_size=1,  # the default (16) silently rescales other sizes
            output_params=["-crf", str(crf)],
            ffmpeg_log_level="error",
        )
        try:
            writer.send(None)
            for image, hold in zip(images, holds):
                data = np.ascontiguousarray(np.asarray(image.convert("RGB")))
                for _ in range(hold):
                    writer.send(data)
                    count += 1
        except (OSError, RuntimeError) as error:
            raise RenderFailure(f"video encoding failed: {str(error).splitlines()[0]}") from None
        finally:
            writer.close()
    return count


def contact_sheet(tiles: list[tuple[str, Image.Image]], columns: int, tile_width: int = 160) -> Image.Image:
    """Labelled tiles in a grid: each image scaled to `tile_width` (small images by
    pixel repetition, so they stay sharp), its label (one or two short lines) above it."""
    from PIL import ImageDraw

    first = tiles[0][1]
    width = tile_width
    height = round(first.height * width / first.width)
    label_height = 24
    rows = -(-len(tiles) // columns)
    sheet = Image.new("RGB", (columns * width, rows * (height + label_height)), "white")
    draw = ImageDraw.Draw(sheet)
    for i, (label, image) in enumerate(tiles):
        x, y = (i % columns) * width, (i // columns) * (height + label_height)
        draw.multiline_text((x + 2, y + 1), label, fill="black", spacing=1)
        resample = Image.Resampling.NEAREST if image.width < width else Image.Resampling.LANCZOS
        sheet.paste(image.convert("RGB").resize((width, height), resample), (x, y + label_height))
    return sheet
