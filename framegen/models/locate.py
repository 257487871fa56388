"""Where a model, LoRA or ControlNet that a storyboard names is: one of framegen's own
(the tiny models, `demo`, `demo-flow`, `demo-control`), a local file or folder (looked up relative to
the storyboard's folder), or a hub id (`org/name`). One decision for all three, made
before anything loads; what is at a local path is checked here too."""

from __future__ import annotations

import json
import struct
from dataclasses import dataclass
from pathlib import Path

from .builtins import TINY

MAX_SAFETENSORS_HEADER = 100 << 20  # bytes; safetensors' own limit


def built_in(name: str) -> Path | None:
    """The folder of one of framegen's own models (None for `tiny-random`, built in
    code), by name; KeyError for other names."""
    from . import demo, demo_flow

    if name in TINY:
        return None
    return {"demo": demo.WEIGHTS_DIR, "demo-flow": demo_flow.WEIGHTS_DIR, "demo-control": demo.CONTROLNET_DIR}[name]


BUILT_IN = {
    "model": (*TINY, "demo", "demo-flow"), "config": (), "controlnet": ("demo-control",), "lora": (), "part": (),
}  # fmt: skip


@dataclass(frozen=True)
class Location:
    kind: str  # built-in | hub | file | folder | missing
    path: str  # what loads it: the built-in name, the hub id, or an absolute path
    problem: str | None = None  # why it cannot load, in one line

    @property
    def is_hub(self) -> bool:
        return self.kind == "hub"


def locate(name: str, folder: Path = Path("."), what: str = "model") -> Location:
    """Where `name` (a `model.id`, a LoRA's path or a ControlNet's id) is. A name that
    could be a path (a `.safetensors` suffix, a leading `.`, `/` or `~`, a backslash, or
    not exactly one `/`) and does not exist is missing; `org/name` that does not exist
    locally is a hub id (LoRAs are always local files)."""
    if name in BUILT_IN[what]:
        return Location("built-in", name)
    local = (Path(folder) / Path(name).expanduser()).resolve()
    if local.exists():
        kind = "file" if local.is_file() else "folder"
        return Location(kind, str(local), content_problem(local, what))
    looks_local = (
        what in ("lora", "part")
        or name.endswith(".safetensors")
        or name.startswith((".", "/", "~"))
        or "\\" in name
        or name.count("/") != 1
    )
    if not looks_local:
        return Location("hub", name)
    noun = (
        "file"
        if name.endswith(".safetensors") or what in ("lora", "part")
        else {"controlnet": "file or folder"}.get(what, "folder")
    )
    return Location("missing", name, f"no such {noun} '{local}' (local paths resolve against the storyboard's folder)")


def content_problem(path: Path, what: str) -> str | None:
    """What is wrong with the file or folder at `path` for a `what`, or None."""
    if what == "controlnet" and path.is_file():
        return f"'{path}' is a single file; a ControlNet loads from its diffusers folder (config.json and weights)"
    if path.is_file():
        return safetensors_problem(path)
    if what in ("model", "config") and not (path / "model_index.json").is_file():
        return f"'{path}' is not a diffusers pipeline folder (it has no model_index.json)"
    if what == "controlnet" and not (path / "config.json").is_file():
        return f"'{path}' is not a diffusers ControlNet folder"
    if what == "controlnet":  # its weights are checked as a model file is
        weights = sorted(path.glob("*.safetensors"))
        problems = [safetensors_problem(file) for file in weights]
        if not weights:
            return f"'{path}' holds no .safetensors weights (weights load with safetensors only)"
        return next((problem for problem in problems if problem), None)
    if what in ("lora", "part"):
        return f"'{path}' is a folder; {'a LoRA' if what == 'lora' else 'this'} is one .safetensors file"
    return None


def safetensors_problem(path: Path) -> str | None:
    """None when `path` is a whole safetensors file (a JSON header of the size its first 8
    bytes give, and every tensor it lists inside the file), else what is wrong, naming it."""
    if path.suffix != ".safetensors":
        return f"'{path}' is not a .safetensors checkpoint (weights load with safetensors only)"
    try:
        safetensors_header(path)
    except ValueError as error:
        return f"'{path}' is not a safetensors checkpoint ({error})"
    return None


def safetensors_header(path: Path) -> dict[str, dict]:
    """Tensor name -> {dtype, shape, data_offsets} from a safetensors file's header (no
    tensor is read); ValueError says what is wrong with the file."""
    try:
        with open(path, "rb") as file:
            head = file.read(8)
            if len(head) < 8:
                raise ValueError("shorter than a header")
            (length,) = struct.unpack("<Q", head)
            size = path.stat().st_size
            if length > min(MAX_SAFETENSORS_HEADER, size - 8):
                raise ValueError("its header length is larger than the file")
            header = json.loads(file.read(length))
    except OSError as error:
        raise ValueError(error.strerror or "unreadable") from None
    if not isinstance(header, dict):
        raise ValueError("its header is not a table of tensors")
    tensors = {name: entry for name, entry in header.items() if name != "__metadata__"}
    if not all(_tensor_entry(entry) for entry in tensors.values()):
        raise ValueError("its header is not a table of tensors (each with a dtype, a shape and offsets)")
    ends = [entry["data_offsets"][1] for entry in tensors.values()]
    end = max(ends, default=0)
    if 8 + length + end > size:
        raise ValueError(f"cut short: {size:,} bytes of {8 + length + end:,}")
    return tensors


def _tensor_entry(entry) -> bool:
    """Whether a header's entry describes a tensor as safetensors writes one."""
    if not isinstance(entry, dict) or not isinstance(entry.get("dtype"), str):
        return False
    shape, offsets = entry.get("shape"), entry.get("data_offsets")
    whole = [isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in [*(shape or []), *(offsets or [])]]
    return isinstance(shape, list) and isinstance(offsets, list) and len(offsets) == 2 and all(whole)


def hub_json(model_id: str, filename: str, revision: str | None = None) -> dict:
    """A JSON file of a hub repo (from the hub's cache when it has it); OSError or ValueError
    say why not (no network, no such repo or file, not JSON)."""
    from huggingface_hub import hf_hub_download

    value = json.loads(Path(hf_hub_download(model_id, filename, revision=revision)).read_text())
    if not isinstance(value, dict):
        raise ValueError(f"its {filename} is not a JSON object")
    return value
