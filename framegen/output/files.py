"""Files on disk: every output is written to a temporary name (TEMP_PREFIX...) and
renamed into place only when complete, so an interrupted render leaves the earlier
output whole; the clip is decoded and counted before it replaces the earlier one."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from itertools import chain
from pathlib import Path
from typing import TextIO

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
    """The tEXt chunks of a PNG written by `write_png` (which puts them before the pixels,
    so they are read without decoding the image); {} when absent or unreadable."""
    try:
        with Image.open(path) as image:
            return {key: value for key, value in image.info.items() if isinstance(value, str)}
    except (OSError, ValueError):
        return {}


def atomic_write(path: Path, save) -> None:
    """`save(temporary)` writes the file's content; it lands at `path` when complete (the
    anchor cache's files go through this, so they are recorded as framegen's)."""
    with atomic_path(path) as temporary:
        save(temporary)


@contextmanager
def atomic_file(path: Path) -> Iterator[TextIO]:
    """A UTF-8 text file open for writing that lands at `path` only when complete."""
    with atomic_path(path) as temporary, open(temporary, "w", encoding="utf-8") as file:
        yield file


def write_text(text: str | Iterable[str], path: Path) -> None:
    """`text`, or its pieces one at a time (an iterable of strings: a long report's)."""
    with atomic_file(path) as file:
        file.writelines([text] if isinstance(text, str) else text)


def json_chunks(document) -> Iterator[str]:
    """`document` as json.dumps(document, indent=2) writes it, in pieces, with two kinds of
    value written lazily: an iterator is written as a list item by item as it yields, and
    a callable is called when the writer reaches it. So report.json is written as frames
    are measured, with the checks their measuring decides after them, none held whole."""

    def lazy(value):
        if callable(value):
            return value()
        if isinstance(value, Iterator):
            first = next(value, _END)
            return [] if first is _END else _Streamed(chain([first], value))
        raise TypeError(f"{type(value).__name__} is not JSON")

    return json.JSONEncoder(indent=2, default=lazy).iterencode(document)


_END = object()


class _Streamed(list):
    """A non-empty list that json's encoder walks lazily (it iterates lists; with `indent`
    it is the pure-Python encoder, which calls __iter__)."""

    def __init__(self, items: Iterator):
        super().__init__()
        self.items = items

    def __iter__(self):
        return self.items

    def __bool__(self) -> bool:
        return True


class Clip:
    """An MP4 being encoded (`clip_writer`): `add` one image at a time, shown `hold` times."""

    def __init__(self, path: Path, temporary: Path, fps: float, crf: int):
        self.path, self.temporary, self.fps, self.crf = path, temporary, fps, crf
        self.count, self.writer = 0, None

    def add(self, image: Image.Image, hold: int = 1) -> None:
        try:
            if self.writer is None:
                self.writer = _mp4_writer(self.temporary, image.size, self.fps, self.crf)
            data = np.ascontiguousarray(np.asarray(image.convert("RGB")))
            for _ in range(hold):
                self.writer.send(data)
                self.count += 1
        except (OSError, RuntimeError) as error:  # BrokenPipeError: ffmpeg died
            raise RenderFailure(
                f"{self.path}: video encoding failed ({_cause(self.path, error)}); the earlier clip is kept"
            ) from None

    def check(self) -> None:
        """Raise RenderFailure unless a decode of the finished file counts every frame."""
        import imageio_ffmpeg

        try:
            decoded, _ = imageio_ffmpeg.count_frames_and_secs(str(self.temporary))
            found = f"it decodes to {decoded} of {self.count} frames"
        except (OSError, RuntimeError) as error:
            decoded, found = None, _cause(self.path, error)
        if decoded != self.count:
            raise RenderFailure(f"{self.path}: the encoded clip is incomplete ({found}); the earlier clip is kept")


@contextmanager
def clip_writer(path: Path, fps: float, crf: int = 18) -> Iterator[Clip]:
    """H.264 / yuv420p at the images' exact size, one image in memory at a time. The clip
    replaces `path` only once ffmpeg is done and a decode counts every frame; else the
    earlier file stays and RenderFailure says why.

        with clip_writer(out / "clip.mp4", fps=24) as clip:
            clip.add(image, hold=2)
    """
    with atomic_path(Path(path)) as temporary:
        clip = Clip(Path(path), temporary, fps, crf)
        try:
            yield clip
        finally:
            if clip.writer is not None:
                clip.writer.close()
        clip.check()


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
