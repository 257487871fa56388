"""The anchor cache: the anchor's activations for the (layer, step) pairs frames read.

- `AnchorCache` holds them on the device, or (`offload`) in host memory, pinned on CUDA
  so copies to the device run asynchronously.
- `DiskCache` streams them to one safetensors file per schedule position and reads them
  back memory-mapped: for caches that would not fit in memory (the sweep), and, with a
  key, to reuse an anchor across renders (`render.cache: disk`). A finished cache gets a
  `manifest.json` written last, naming its key and every file's size and SHA-256; a cache
  is reused only when the key matches and every file checks out, otherwise rebuilt.

Keys are position-in-schedule based (see hooks.StepClock): (module path, position).
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import torch

from .digest import digest, sha256

MANIFEST = "manifest.json"
EXTRAS = "extras.safetensors"
ANCHOR_IMAGE = "anchor.png"
_NAMES = r"(?:position-\d{4,}\.safetensors|extras\.safetensors|anchor\.png|manifest\.json)"
CACHE_FILE = re.compile(rf"{_NAMES}|\.{_NAMES}\.tmp")  # the cache's files, and a killed write's


class AnchorCache:
    """The anchor's activations, keyed by (layer, position in the schedule), held on the
    device or (`offload`) in host memory. Offloaded on CUDA, a position's tensors are
    copied to the device on a side stream while the position before is being used, so
    the device holds about two steps' worth."""

    def __init__(self, needed: set[tuple[str, int]], offload: bool = False):
        self.needed = needed
        self.offload = offload
        self.where = "host memory" if offload else "device memory"
        self.tensors: dict[tuple[str, int], torch.Tensor] = {}
        self._ahead: dict[tuple[str, int], tuple[torch.Tensor, object]] = {}
        self._fetched: set[int] = set()
        self._stream = None

    @property
    def layers(self) -> set[str]:
        return {layer for layer, _ in self.needed}

    @property
    def nbytes(self) -> int:
        return sum(t.numel() * t.element_size() for t in self.tensors.values())

    def __len__(self) -> int:
        return len(self.tensors)

    def clear(self) -> None:
        self.tensors.clear()
        self._ahead, self._fetched = {}, set()

    def store(self, path: str, clock, tensor: torch.Tensor) -> None:
        if (path, clock.step) in self.needed:
            if self.offload:
                kept = tensor.detach().to("cpu", copy=True)
                kept = kept.pin_memory() if tensor.is_cuda else kept
            else:
                kept = tensor.detach().clone()
            self.tensors[(path, clock.position)] = kept

    def finish(self) -> None:
        """Called when the anchor pass ends."""

    def get(self, path: str, position: int, device: torch.device) -> torch.Tensor:
        if not (self.offload and device.type == "cuda"):
            return self.tensors[(path, position)].to(device, non_blocking=True)
        if position not in self._fetched:
            self._prefetch(position, device)
        self._prefetch(position + 1, device)  # overlaps with this position's use
        tensor, ready = self._ahead.pop((path, position))
        torch.cuda.current_stream(device).wait_event(ready)
        tensor.record_stream(torch.cuda.current_stream(device))
        return tensor

    def rewind(self) -> None:
        """A frame's pass starts: forget copies made ahead for the last one."""
        self._ahead, self._fetched = {}, set()

    def _prefetch(self, position: int, device: torch.device) -> None:
        if position in self._fetched:
            return
        self._fetched.add(position)
        # copies this frame's rules never read (another frame's pairs) go with their step
        self._ahead = {key: value for key, value in self._ahead.items() if key[1] >= position - 1}
        self._stream = self._stream or torch.cuda.Stream(device)
        with torch.cuda.stream(self._stream):
            for (path, at), tensor in self.tensors.items():
                if at == position:
                    copy = tensor.to(device, non_blocking=True)
                    ready = torch.cuda.Event()
                    ready.record(self._stream)
                    self._ahead[(path, at)] = (copy, ready)


class DiskCache(AnchorCache):
    """Streams the anchor's activations to one safetensors file per schedule position
    and reads them back memory-mapped as frames need them. Only the position being
    written is held in memory. Each file is written by `write(path, save)`, which calls
    `save(target)` and puts the result at `path` (default: a temporary name renamed into
    place); a caller that keeps a record of what it wrote passes its own."""

    def __init__(self, needed: set[tuple[str, int]], folder: Path, write=None):
        super().__init__(needed)
        self.where = f"disk ({folder})"
        self.folder = Path(folder)
        self.write = write or _replace_when_saved
        self._pending: dict[str, torch.Tensor] = {}
        self._pending_position: int | None = None
        self._files: dict[int, Path] = {}
        self._open: dict[int, object] = {}
        self._bytes = 0
        self._entries = 0

    @property
    def nbytes(self) -> int:
        return self._bytes

    def __len__(self) -> int:
        return self._entries

    def clear(self) -> None:
        """Forget and delete the cache's own files, the manifest first (an interrupted
        clear leaves an invalid cache, never a wrong one); anything else in the folder
        stays, and so does the folder then."""
        if self.folder.is_symlink():
            raise ValueError(f"{self.folder}: the anchor cache's folder is a symbolic link; it is not written through")
        self._pending, self._pending_position, self._open = {}, None, {}
        if self.folder.is_dir():
            (self.folder / MANIFEST).unlink(missing_ok=True)
            for file in self.folder.iterdir():
                if CACHE_FILE.fullmatch(file.name) and file.is_file() and not file.is_symlink():
                    file.unlink()
            if not any(self.folder.iterdir()):
                self.folder.rmdir()
        self._files, self._bytes, self._entries = {}, 0, 0

    def store(self, path: str, clock, tensor: torch.Tensor) -> None:
        if (path, clock.step) not in self.needed:
            return
        if self._pending_position not in (None, clock.position):
            self.finish()
        self._pending_position = clock.position
        self._pending[path] = tensor.detach().to("cpu", copy=True).contiguous()

    def finish(self) -> None:
        from safetensors.torch import save_file

        if not self._pending:
            return
        self.folder.mkdir(parents=True, exist_ok=True)
        file = self.folder / f"position-{self._pending_position:04d}.safetensors"
        pending = self._pending
        self.write(file, lambda target: save_file(pending, str(target)))
        self._files[self._pending_position] = file
        self._bytes += sum(t.numel() * t.element_size() for t in self._pending.values())
        self._entries += len(self._pending)
        self._pending, self._pending_position = {}, None

    def get(self, path: str, position: int, device: torch.device) -> torch.Tensor:
        from safetensors import safe_open

        if position not in self._open:
            self._open[position] = safe_open(str(self._files[position]), framework="pt")
        return self._open[position].get_tensor(path).to(device)

    # -- reuse across renders

    def seal(self, key: str, extras: dict[str, torch.Tensor], fields: dict, anchor=None) -> None:
        """Write `extras` (anchor latents, attention maps), the `anchor` image if given,
        and, last, the manifest: every file's size and SHA-256, and its own digest."""
        from safetensors.torch import save_file

        self.folder.mkdir(parents=True, exist_ok=True)
        names = [file.name for _, file in sorted(self._files.items())]
        if extras:
            tensors = {k: v.contiguous().cpu() for k, v in extras.items()}
            self.write(self.folder / EXTRAS, lambda target: save_file(tensors, str(target)))
            names.append(EXTRAS)
        if anchor is not None:
            self.write(self.folder / ANCHOR_IMAGE, lambda target: anchor.save(target, format="PNG"))
            names.append(ANCHOR_IMAGE)
        manifest = {
            "key": key,
            "fields": fields,
            "entries": self._entries,
            "bytes": self._bytes,
            "positions": sorted(self._files),
            "files": {
                name: {"bytes": (self.folder / name).stat().st_size, "sha256": sha256(self.folder / name)}
                for name in names
            },
        }
        manifest["digest"] = digest(manifest)
        self.write(
            self.folder / MANIFEST, lambda target: Path(target).write_text(json.dumps(manifest, indent=2) + "\n")
        )

    def reopen(self, key: str) -> tuple[str, dict[str, torch.Tensor]]:
        """('reused', extras) when the folder holds a sound cache for `key`; else
        (the reason it was not usable, {}) with the cache's files deleted."""
        from safetensors.torch import load_file

        reason = check_folder(self.folder, key)
        if reason is not None:
            self.clear()
            return reason, {}
        manifest = json.loads((self.folder / MANIFEST).read_text())
        self._files = {p: self.folder / f"position-{p:04d}.safetensors" for p in manifest["positions"]}
        self._entries, self._bytes = manifest["entries"], manifest["bytes"]
        extras_file = self.folder / EXTRAS
        return "reused", load_file(str(extras_file)) if extras_file.exists() else {}


def _replace_when_saved(path: Path, save) -> None:
    """Save to `.NAME.tmp` beside `path`, then rename it into place: never a half file."""
    temporary = path.with_name(f".{path.name}.tmp")
    save(temporary)
    temporary.replace(path)


def check_folder(folder: Path, key: str) -> str | None:
    """None when `folder` holds a complete cache for `key`, else why not. The manifest's
    digest covers all of it (an edited or shortened manifest is not trusted), and every
    file it names is checked against its size and SHA-256."""
    manifest_path = folder / MANIFEST
    if not manifest_path.exists():
        return "none yet" if not folder.exists() else "incomplete (no manifest)"
    try:
        manifest = json.loads(manifest_path.read_text())
        if manifest.pop("digest", None) != digest(manifest):
            return "manifest edited or corrupt (digest)"
        if manifest["key"] != key:
            return "made for other settings"
        expected_positions = {f"position-{p:04d}.safetensors" for p in manifest["positions"]}
        if not expected_positions <= set(manifest["files"]):
            return "manifest lists positions without files"
        for name, expected in manifest["files"].items():
            file = folder / name
            if not CACHE_FILE.fullmatch(name) or not file.is_file() or file.stat().st_size != expected["bytes"]:
                return f"{name} is missing or truncated"
            if sha256(file) != expected["sha256"]:
                return f"{name} is corrupt (checksum)"
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return "unreadable manifest"
    return None
