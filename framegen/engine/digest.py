"""SHA-256 of files and of JSON values: what every key, fingerprint and cache manifest is
made of. Importing it imports no torch."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path


def digest(value, length: int = 64) -> str:
    """SHA-256 of `value` as canonical JSON, in hex (its first `length` digits): what every
    key and the manifest's own seal are made of."""
    text = json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:length]


def sha256(path: Path) -> str:
    """A file's SHA-256, in hex."""
    hashed = hashlib.sha256()
    with open(path, "rb") as file:
        for block in iter(lambda: file.read(1 << 20), b""):
            hashed.update(block)
    return hashed.hexdigest()
