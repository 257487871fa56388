"""What a storyboard's files must be, checked before any model loads: mask images that
open as images, a segmenter model that exists, a local model that exists and is what it
claims (a diffusers folder, or a safetensors checkpoint), and boxes that overlap the
image. Local model paths resolve against the storyboard's folder, like every other path
in it. Each check returns problems as (path in the storyboard, message)."""

from __future__ import annotations

import json
import struct
from pathlib import Path

from PIL import Image

BUILT_IN_MODELS = ("tiny-random", "demo")
MAX_SAFETENSORS_HEADER = 100 << 20  # bytes; safetensors' own limit


def model_location(model_id: str, folder: Path) -> tuple[str, str | None]:
    """(what loads the model, a problem or None): a built-in name, a hub id (`org/name`,
    as written), or the absolute path of a local folder or `.safetensors` file, which is
    looked up relative to `folder` when not absolute."""
    if model_id in BUILT_IN_MODELS:
        return model_id, None
    local = (folder / Path(model_id).expanduser()).resolve()
    looks_local = (
        model_id.endswith(".safetensors")
        or model_id.startswith((".", "/", "~"))
        or "\\" in model_id
        or model_id.count("/") != 1
    )
    if not local.exists():
        if looks_local:
            kind = "file" if model_id.endswith(".safetensors") else "folder"
            return model_id, f"no such {kind} '{local}' (local model paths resolve against the storyboard's folder)"
        return model_id, None  # a hub id
    if local.is_file():
        return str(local), safetensors_problem(local)
    if not (local / "model_index.json").is_file():
        return str(local), f"'{local}' is not a diffusers pipeline folder (it has no model_index.json)"
    return str(local), None


def safetensors_problem(path: Path) -> str | None:
    """None when `path` starts like a safetensors file (a JSON header of the size its
    first 8 bytes give), else what is wrong, naming the file."""
    if path.suffix != ".safetensors":
        return f"'{path}' is not a .safetensors checkpoint (weights load with safetensors only)"
    try:
        with open(path, "rb") as file:
            head = file.read(8)
            if len(head) < 8:
                raise ValueError("shorter than a header")
            (length,) = struct.unpack("<Q", head)
            if length > min(MAX_SAFETENSORS_HEADER, path.stat().st_size - 8):
                raise ValueError("its header length is larger than the file")
            header = json.loads(file.read(length))
            if not isinstance(header, dict):
                raise ValueError("its header is not a table of tensors")
    except (OSError, ValueError) as error:
        return f"'{path}' is not a safetensors checkpoint ({error})"
    return None


def image_problem(path: Path) -> str | None:
    if not path.is_file():
        return f"no such file '{path}'"
    try:
        with Image.open(path) as image:
            image.verify()
    except (OSError, ValueError, SyntaxError) as error:
        reason = str(error).split(" '")[0] or type(error).__name__
        return f"'{path}' is not an image PIL can read ({reason})"
    return None


def box_problem(boxes, width: int, height: int) -> str | None:
    """A problem when a box lies wholly outside the width x height image (it would mask nothing)."""
    for x0, y0, x1, y1 in boxes:
        if x1 <= 0 or y1 <= 0 or x0 >= width or y0 >= height:
            return f"box [{x0}, {y0}, {x1}, {y1}] lies outside the {width}x{height} image"
    return None
