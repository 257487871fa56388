"""SHA-256 of the files keys name by content (weights, LoRAs, mask images), computed once per
file content and remembered.

Cache and resume keys name the weights by content, and hashing an SDXL folder takes many
seconds. A file's digest is remembered in the user's cache
(`$FRAMEGEN_CACHE`, else `$XDG_CACHE_HOME/framegen`, else `~/.cache/framegen`), keyed by
its absolute path and checked against its size, device, inode, modification time and
status-change time (ns): a file replaced by a rename (how downloads land) has a new
inode, and a file rewritten in place has a new mtime and ctime. A rewrite in place that
keeps the size and lands within one timestamp tick of the previous write (a few ms) is
the one change this cannot see; `FRAMEGEN_REHASH=1` (or deleting fingerprints.json)
hashes everything again.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

from ..engine.digest import sha256

FILE = "fingerprints.json"
_known: dict[str, tuple[list[int], str]] = {}  # this process's: no reading the file again per call


def cache_folder() -> Path:
    if os.environ.get("FRAMEGEN_CACHE"):
        return Path(os.environ["FRAMEGEN_CACHE"]).expanduser()
    return Path(os.environ.get("XDG_CACHE_HOME") or "~/.cache").expanduser() / "framegen"


def file_sha256(path: Path) -> str:
    """The file's SHA-256, from the remembered fingerprints when its identity is unchanged."""
    path = Path(path).resolve()
    identity = file_identity(path)
    rehash = os.environ.get("FRAMEGEN_REHASH") == "1"
    if not rehash and _known.get(str(path), (None,))[0] == identity:
        return _known[str(path)][1]
    remembered = _load()
    entry = remembered.get(str(path))
    if entry and entry.get("identity") == identity and not rehash:
        digest = entry["sha256"]
    else:
        digest = sha256(path)
        remembered[str(path)] = {"identity": identity, "sha256": digest}
        _save(remembered)
    _known[str(path)] = (identity, digest)
    return digest


def file_identity(path: Path) -> list[int]:
    """What tells one state of a file from another without reading it (see the module's note)."""
    status = Path(path).stat()
    return [status.st_size, status.st_dev, status.st_ino, status.st_mtime_ns, status.st_ctime_ns]


def _load() -> dict:
    try:
        data = json.loads((cache_folder() / FILE).read_text())
        return data if isinstance(data, dict) else {}
    except (OSError, ValueError):
        return {}


def _save(remembered: dict) -> None:
    """Atomically, and silently not at all where the cache folder cannot be written."""
    folder = cache_folder()
    try:
        folder.mkdir(parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(prefix=f".{FILE}.", dir=folder)
        with os.fdopen(fd, "w") as file:
            json.dump(remembered, file)
        os.replace(name, folder / FILE)
    except OSError:
        pass


def weights_fingerprint(spec, what: str = "model") -> dict:
    """What identifies a model (a ModelSpec) or a ControlNet (`what`), for keys: the hub revision's commit when the
    hub cache records it, else SHA-256 of the weight, config and tokenizer files (local
    folder, single file and its `config` folder, the bundled demo); the tiny models are
    fixed by framegen's version."""
    from .builtins import TINY
    from .locate import built_in, locate

    location = locate(spec.id, what=what)
    revision, config = getattr(spec, "revision", None), getattr(spec, "config", None)
    if spec.id in TINY:
        return {"id": spec.id}
    if location.is_hub:
        return {"id": spec.id, "revision": revision, "commit": hub_commit(spec.id, revision)}
    folder = built_in(spec.id) if location.kind == "built-in" else Path(spec.id).expanduser()
    fingerprint = {"id": spec.id, "files": files_sha256(folder)}
    if config:  # the architecture a single file is read as
        fingerprint["config"] = files_sha256(Path(config)) if Path(config).is_dir() else config
    parts = {
        p: file_sha256(Path(getattr(spec, p))) for p in ("clip_l", "clip_g", "t5xxl", "vae") if getattr(spec, p, None)
    }
    return fingerprint | ({"parts": parts} if parts else {})


def files_sha256(where: Path) -> dict[str, str]:
    """A file's SHA-256 by name, or a folder's weight, config and tokenizer files' by relative path."""
    if where.is_file():
        return {where.name: file_sha256(where)}
    files = sorted(f for pattern in ("*.safetensors", "*.json", "*.txt") for f in where.rglob(pattern))
    return {str(f.relative_to(where)): file_sha256(f) for f in files}


def hub_commit(model_id: str, revision: str | None) -> str | None:
    """The commit the hub cache resolved `revision` (default main) to, else the revision as given."""
    hub = Path(os.environ.get("HF_HUB_CACHE") or Path(os.environ.get("HF_HOME", "~/.cache/huggingface")) / "hub")
    ref = hub.expanduser() / f"models--{model_id.replace('/', '--')}" / "refs" / (revision or "main")
    return ref.read_text().strip() if ref.is_file() else revision


def lora_fingerprint(spec) -> list[list]:
    """[name, SHA-256, scale] of each of a ModelSpec's LoRAs."""
    return [[lora.key, file_sha256(Path(lora.path)), lora.scale] for lora in spec.lora]
