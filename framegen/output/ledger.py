"""What framegen wrote, by content: each file's SHA-256 as written, kept in a record. A
file counts as framegen's only while its bytes hash to what framegen wrote there: a file a
user made, or one framegen wrote and the user changed since, is the user's, whatever
marks it carries.

An output folder keeps its record in `framegen-files.jsonl` (output/folder.py); files given
on the command line (`check --junit FILE`) are recorded in the user's framegen cache. The
record is append-only JSON lines, one per write, made before the file is renamed into
place, so a render killed at any moment leaves every file it wrote recorded. A file whose
size, inode and modification time are as recorded is not hashed again.

    with recording(ledger):          # every write_png / write_text / write_mp4 inside
        write_png(image, path)       # is recorded in `ledger` when it lies below its root
"""

from __future__ import annotations

import json
import os
import struct
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from pathlib import Path

from ..engine.digest import sha256
from ..errors import InvalidInput

RECORD = "framegen-files.jsonl"  # in the output folder: what framegen wrote there
TEMP_PREFIX = ".framegen-tmp-"  # every temporary file framegen makes starts so (folder.py cleans them up)


class Ledger:
    def __init__(self, root: Path, record: Path):
        self.root, self.record = Path(os.path.abspath(root)), Path(record)
        self._entries: dict[str, bytes] | None = None

    def entries(self) -> dict[str, bytes]:
        """Relative path -> every (sha256, identity) recorded for it, packed (`_pack`): a long
        render records three files a frame, so each costs bytes, not objects."""
        if self._entries is None:
            self._entries = {}
            try:
                lines = self.record.read_text(encoding="utf-8").splitlines()
            except (OSError, UnicodeDecodeError):
                lines = []
            for line in lines:
                try:
                    entry = json.loads(line)
                    self._add(entry["path"], entry["sha256"], entry["identity"])
                except (ValueError, KeyError, TypeError, struct.error):  # a line cut short by a kill
                    continue
        return self._entries

    def _add(self, name: str, digest: str, identity: list[int]) -> None:
        self._entries[name] = self._entries.get(name, b"") + _pack(digest, identity)

    def recorded(self, name: str) -> list[tuple[str, list[int]]]:
        """Every (sha256, identity) recorded for the relative path `name`, oldest first."""
        packed = self.entries().get(name, b"")
        return [_unpack(packed[i : i + _RECORD.size]) for i in range(0, len(packed), _RECORD.size)]

    def covers(self, path: Path) -> bool:
        return Path(os.path.abspath(path)).is_relative_to(self.root)

    def wrote(self, path: Path, content: Path | None = None) -> None:
        """Record `content` (default: the file at `path`) as what framegen wrote at `path`."""
        content = Path(content or path)
        entry = {"path": self._name(path), "sha256": sha256(content), "identity": _identity(content)}
        self.entries()  # read before this line joins the record
        self.record.parent.mkdir(parents=True, exist_ok=True)
        with open(self.record, "a", encoding="utf-8") as file:
            file.write(json.dumps(entry) + "\n")
            file.flush()
            os.fsync(file.fileno())
        self._add(entry["path"], entry["sha256"], entry["identity"])

    def wrote_there(self, path: Path) -> bool:
        """Whether framegen ever wrote a file at `path`, whatever it holds now."""
        return bool(self.entries().get(self._name(path)))

    def owns(self, path: Path) -> bool:
        """Whether the file at `path` holds bytes framegen wrote there."""
        path = Path(path)
        if path.is_symlink() or not path.is_file():
            return False
        return self._written_digest(path) is not None

    def _written_digest(self, path: Path) -> str | None:
        """The SHA-256 framegen recorded for what `path` holds now, or None: taken from the
        record when the file's identity is as recorded, else the file is hashed."""
        recorded, identity = self.recorded(self._name(path)), _identity(path)
        known = next((digest for digest, at in recorded if at == identity), None)
        if known is not None or not recorded:
            return known
        actual = sha256(path)
        return actual if actual in {digest for digest, _ in recorded} else None

    def compact(self) -> None:
        """Rewrite the record with one entry per file still there: what it holds when that
        is what framegen wrote, else the last thing framegen wrote there (so a file a
        user changed stays the user's, and framegen still knows it wrote that name)."""
        temporary = self.record.with_name(TEMP_PREFIX + self.record.name)
        with open(temporary, "w", encoding="utf-8") as file:
            for name in self.entries():
                path = self.root / name
                if path.is_symlink() or not path.is_file():
                    continue
                digest = self._written_digest(path)
                if digest is not None:
                    entry = {"path": name, "sha256": digest, "identity": _identity(path)}
                else:
                    last, identity = self.recorded(name)[-1]
                    entry = {"path": name, "sha256": last, "identity": identity}
                file.write(json.dumps(entry) + "\n")
        os.replace(temporary, self.record)
        self._entries = None

    def _name(self, path: Path) -> str:
        return Path(os.path.abspath(path)).relative_to(self.root).as_posix()


_RECORD = struct.Struct("<32sQQq")  # sha256, size, inode, mtime_ns


def _pack(digest: str, identity: list[int]) -> bytes:
    return _RECORD.pack(bytes.fromhex(digest), *identity)


def _unpack(packed: bytes) -> tuple[str, list[int]]:
    digest, *identity = _RECORD.unpack(packed)
    return digest.hex(), identity


def _identity(path: Path) -> list[int]:
    status = Path(path).stat()
    return [status.st_size, status.st_ino, status.st_mtime_ns]


_ACTIVE: ContextVar[Ledger | None] = ContextVar("framegen_ledger", default=None)


@contextmanager
def recording(ledger: Ledger) -> Iterator[Ledger]:
    """Record every file framegen writes below `ledger`'s root while inside."""
    token = _ACTIVE.set(ledger)
    try:
        yield ledger
    finally:
        _ACTIVE.reset(token)


def record_write(path: Path, content: Path) -> None:
    """Called by output/files.py with a file's final path and its complete content,
    before it is renamed into place."""
    ledger = _ACTIVE.get()
    if ledger is not None and ledger.covers(path):
        ledger.wrote(path, content)


def user_ledger() -> Ledger:
    """The record of files framegen wrote where the command line told it to."""
    from ..models.fingerprints import cache_folder

    return Ledger(Path("/"), cache_folder() / "written.jsonl")


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
