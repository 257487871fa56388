"""Files on disk: every output is written to a temporary name (TEMP_PREFIX...) and
renamed into place only when complete, so an interrupted render leaves the earlier
output whole; the clip is decoded and counted before it replaces the earlier one."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
from PIL import Image

from ..errors import RenderFailure
from .ledger import TEMP_PREFIX, record_write

_UMASK = os.umask(0)
os.umask(_UMASK)
CLIP_MARK = "framegen clip"  # in the MP4's metadata: the clip is framegen's to replace


@contextmanager
def atomic_path(path: Path) -> Iterator[Path]:
    """Yield a temporary path beside `path` (same suffix); rename it over `path` on
    success, delete it on failure. A failure to write names `path`, not the temporary."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(prefix=f"{TEMP_PREFIX}{path.stem}-", suffix=path.suffix, dir=path.parent)
    except OSError as error:
        raise RenderFailure(f"{path}: cannot write ({_cause(path, error)})") from None
    os.close(fd)
    temporary = Path(name)
    try:
        yield temporary
        os.chmod(temporary, 0o666 & ~_UMASK)  # mkstemp makes it private (0600)
        record_write(path, temporary)  # framegen's from the moment it is in place (ledger.py)
        os.replace(temporary, path)
    except OSError as error:
        raise RenderFailure(f"{path}: cannot write ({_cause(path, error)})") from None
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


def atomic_write(path: Path, save) -> None:
    """`save(temporary)` writes the file's content; it lands at `path` when complete (the
    anchor cache's files go through this, so they are recorded as framegen's)."""
    with atomic_path(path) as temporary:
        save(temporary)


def write_text(text: str, path: Path) -> None:
    with atomic_path(path) as temporary:
        temporary.write_text(text, encoding="utf-8")


def write_mp4(frames: Iterable[tuple[Image.Image, int]], path: Path, fps: float, crf: int = 18) -> int:
    """Encode (image, hold) pairs as H.264 / yuv420p at the images' exact size, each
    image shown `hold` times, one image in memory at a time. The clip replaces `path`
    only once ffmpeg is done and a decode counts every frame; else the earlier file
    stays and RenderFailure says why. Returns the number of video frames."""
    import imageio_ffmpeg

    count, writer = 0, None
    with atomic_path(path) as temporary:
        try:
            for image, hold in frames:
                if writer is None:
                    writer = _mp4_writer(temporary, image.size, fps, crf)
                data = np.ascontiguousarray(np.asarray(image.convert("RGB")))
                for _ in range(hold):
                    writer.send(data)
                    count += 1
        except (OSError, RuntimeError) as error:  # BrokenPipeError: ffmpeg died
            raise RenderFailure(
                f"{path}: video encoding failed ({_cause(path, error)}); the earlier clip is kept"
            ) from None
        finally:
            if writer is not None:
                writer.close()
        try:
            decoded, _ = imageio_ffmpeg.count_frames_and_secs(str(temporary))
            found = f"it decodes to {decoded} of {count} frames"
        except (OSError, RuntimeError) as error:
            decoded, found = None, _cause(path, error)
        if decoded != count:
            raise RenderFailure(f"{path}: the encoded clip is incomplete ({found}); the earlier clip is kept")
    return count


def _mp4_writer(path: Path, size: tuple[int, int], fps: float, crf: int):
    import imageio_ffmpeg

    width, height = size
    if width % 2 or height % 2:
        raise RenderFailure(f"H.264 yuv420p needs even sides, got {width}x{height}")
    writer = imageio_ffmpeg.write_frames(
        str(path),
        (width, height),
        fps=fps,
        codec="libx264",
        pix_fmt_in="rgb24",
        pix_fmt_out="yuv420p",
        macro_block_size=1,  # the default (16) silently rescales other sizes
        output_params=["-crf", str(crf), "-metadata", f"comment={CLIP_MARK}"],
        ffmpeg_log_level="quiet",  # failures are found by decoding the result, and said in one line
    )
    writer.send(None)
    return writer


def _cause(path: Path, error: Exception) -> str:
    """Why writing beside `path` failed: a full disk says how much is free."""
    try:
        free = shutil.disk_usage(path.parent).free
    except OSError:
        free = None
    if free is not None and (free < 1 << 20 or "No space left" in str(error)):
        return f"no space left on the device: {free:,} bytes free in {path.parent}"
    if isinstance(error, OSError) and error.strerror:
        return error.strerror
    return str(error).strip().splitlines()[-1][:200] if str(error).strip() else type(error).__name__


def is_framegen_clip(path: Path) -> bool:
    """Whether the MP4 at `path` carries framegen's mark (so framegen may replace it)."""
    mark = CLIP_MARK.encode()
    with open(path, "rb") as file:
        tail = b""
        for block in iter(lambda: file.read(1 << 20), b""):
            if mark in tail + block:
                return True
            tail = block[-len(mark) :]
    return False


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
