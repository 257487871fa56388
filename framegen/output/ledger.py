"""What framegen wrote, by content: each file's SHA-256 as written, kept in a small JSON
record. A file counts as framegen's only while its bytes still hash to what framegen
wrote: a file a user made, or one framegen wrote and the user changed since, is the
user's, whatever marks it carries.

Files given on the command line (`check --junit FILE`) are recorded in the user's framegen
cache (`user_ledger`); replacing one that framegen did not write takes `--force`, and the
file being read is never replaced.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

from ..engine.digest import sha256
from ..errors import InvalidInput


class Ledger:
    def __init__(self, record: Path):
        self.record = Path(record)

    def entries(self) -> dict[str, str]:
        try:
            entries = json.loads(self.record.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return {}
        return entries if isinstance(entries, dict) else {}

    def wrote(self, path: Path) -> None:
        """Remember `path`'s bytes as framegen's (call it right after writing them)."""
        entries = self.entries()
        entries[_key(path)] = sha256(path)
        self._save(entries)

    def owns(self, path: Path) -> bool:
        path = Path(path)
        if path.is_symlink() or not path.is_file():
            return False
        return self.entries().get(_key(path)) == sha256(path)

    def _save(self, entries: dict[str, str]) -> None:
        """Atomically; silently not at all where the record's folder cannot be written."""
        try:
            self.record.parent.mkdir(parents=True, exist_ok=True)
            fd, name = tempfile.mkstemp(prefix=f".{self.record.name}.", dir=self.record.parent)
            with os.fdopen(fd, "w", encoding="utf-8") as file:
                json.dump(entries, file, indent=1, sort_keys=True)
            os.replace(name, self.record)
        except OSError:
            pass


def _key(path: Path) -> str:
    return str(Path(os.path.abspath(path)))


def user_ledger() -> Ledger:
    from ..models.fingerprints import cache_folder

    return Ledger(cache_folder() / "written.json")


def check_replaceable(path: Path, option: str, force: bool, reading: tuple[Path, ...] = ()) -> None:
    """Raise InvalidInput when writing `path` (given as `option`) would replace the file
    being read, or a file framegen did not write (unless `force`)."""
    path = Path(path)
    if path.is_dir():
        raise InvalidInput(f"{option} {path}: is a folder; give a file name")
    if not path.exists():
        return
    if any(Path(read).exists() and os.path.samefile(path, read) for read in reading):
        raise InvalidInput(f"{option} {path}: is the file being read; give another file name")
    if not force and not user_ledger().owns(path):
        raise InvalidInput(
            f"{option} {path}: would replace a file framegen did not write (or that changed since); "
            "give another file name, or --force to replace it"
        )
