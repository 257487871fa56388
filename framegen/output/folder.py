"""The output folder: what framegen may write, replace and delete there.

A user's files are worth more than any render, so framegen replaces or deletes a file
only when it can prove that it wrote it: the folder's record (`framegen-files.jsonl`,
ledger.py) holds the SHA-256 of every file framegen wrote there, and a file is framegen's
only while its bytes still hash to what framegen wrote. Marks inside files (PNG text
chunks, the clip's comment) stay for reading, never as proof; a folder written by
framegen 0.2, which has no record, is taken over once by its marks, checked (legacy.py).
Everything else is left alone; a file in the way of an output is an error that names
it, found before any rendering.

`OutputFolder.open()` holds the folder for one render: it refuses a path that is a
file, a symlinked subfolder, an unwritable folder, or a folder another render holds
(an advisory lock the OS drops when a render dies, so a killed render never blocks
the next), and it removes temporary files a killed render left behind.
"""

from __future__ import annotations

import fcntl
import os
import re
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

from ..errors import InvalidInput
from .files import TEMP_PREFIX
from .ledger import RECORD, Ledger, recording
from .legacy import legacy_owns

LOCK = ".framegen.lock"
SUBFOLDERS = ("frames", "masks", "heatmaps", "anchor-cache")
FRAME_NAME = re.compile(r"\d{4}(-\d+)?\.png")  # keyframes, and in-betweens (-k)
PAGE_NAME = re.compile(r"report-\d+\.html")  # report.html's further pages
MASK_NAME = re.compile(r"\d{4}(~\d+)?(-\d+)?\.png")  # an in-between's (~k), the n-th of a frame (-n)


class OutputFolder:
    def __init__(self, path: Path):
        self.path = Path(path)
        self.ledger = Ledger(self.path, self.path / RECORD)
        self.legacy = False  # a folder with no record: written by framegen 0.2, or new

    @contextmanager
    def open(self) -> Iterator[OutputFolder]:
        """Hold the folder for one render (see the module's docstring)."""
        check_writable(self.path)
        try:
            self.path.mkdir(parents=True, exist_ok=True)
            lock = self._lock()
        except OSError as error:
            raise InvalidInput(f"{self.path}: cannot write the output folder ({error.strerror or error})") from None
        try:
            record = self.path / RECORD
            if record.is_symlink() or (record.exists() and not record.is_file()):
                raise InvalidInput(f"{record}: framegen's record of what it wrote is not a plain file; move it away")
            self.legacy = not record.exists()
            self.remove_temporary_files()
            with recording(self.ledger):  # every file written below the folder is recorded
                yield self
        finally:
            try:
                if (self.path / RECORD).exists():
                    self.ledger.compact()
            finally:
                (self.path / LOCK).unlink(missing_ok=True)  # still ours: removed before the lock is let go
                os.close(lock)

    def _lock(self) -> int:
        """An exclusive lock on the folder's lock file, or InvalidInput when another render
        holds it. The file may be an earlier render's: a killed render's lock is gone with it."""
        path = self.path / LOCK
        for _ in range(3):
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                os.close(fd)
                raise InvalidInput(
                    f"{self.path}: another framegen render is writing here; wait for it or use another -o"
                ) from None
            if path.exists() and os.stat(path).st_ino == os.fstat(fd).st_ino:
                return fd
            os.close(fd)  # the holder removed the file as we opened it: take the new one
        raise InvalidInput(f"{self.path}: another framegen render is starting here; try again")

    def remove_temporary_files(self) -> None:
        """Temporary files of an earlier render that was killed (framegen's prefix only)."""
        for folder in (self.path, *(self.path / name for name in SUBFOLDERS)):
            if folder.is_dir() and not folder.is_symlink():
                for leftover in folder.glob(f"{TEMP_PREFIX}*"):
                    if leftover.is_file() and not leftover.is_symlink():
                        leftover.unlink(missing_ok=True)

    def check_replaceable(self, names: Iterable[str]) -> None:
        """Raise InvalidInput naming every existing file among `names` (relative paths) that
        framegen did not write: it would be replaced."""
        foreign = [name for name in names if (self.path / name).exists() and not self.owns(name)]
        if foreign:
            shown = ", ".join(foreign[:3]) + (f" and {len(foreign) - 3} more" if len(foreign) > 3 else "")
            raise InvalidInput(
                f"{self.path}: {shown} would be replaced but {'was' if len(foreign) == 1 else 'were'} not written by "
                "framegen; move them away or choose another output folder"
            )

    def owns(self, name: str) -> bool:
        """Whether framegen provably wrote the file at `name` (relative to the folder)."""
        path = self.path / name
        if path.is_symlink() or not path.is_file():
            return False
        if name.startswith("anchor-cache/"):  # framegen's cache: a file it wrote that changed since is damage
            return self.ledger.wrote_there(path) or (self.legacy and legacy_owns(self.path, name))
        return self.ledger.owns(path) or (self.legacy and legacy_owns(self.path, name))

    def remove_stale(self, written: set[str]) -> None:
        """Drop frames, masks and pages of an earlier, longer storyboard: framegen's names
        that framegen wrote, not among `written`."""
        places = (("frames/*.png", FRAME_NAME), ("masks/*.png", MASK_NAME), ("heatmaps/*.png", MASK_NAME),
                  ("report-*.html", PAGE_NAME))  # fmt: skip
        for files, pattern in places:
            for path in sorted(self.path.glob(files)):
                name = path.relative_to(self.path).as_posix()
                if pattern.fullmatch(path.name) and name not in written and self.owns(name):
                    path.unlink()


def check_writable(path: Path) -> None:
    """Raise InvalidInput when a render could not write its output folder at `path`
    (checked without creating anything: for `validate`)."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise InvalidInput(f"{path}: the output folder is a file")
    for name in SUBFOLDERS:
        if (path / name).is_symlink():
            raise InvalidInput(f"{path / name}: is a symbolic link; framegen writes only inside {path}")
    existing = next(folder for folder in (path, *path.absolute().parents) if folder.exists())
    if not existing.is_dir() or not os.access(existing, os.W_OK | os.X_OK):
        raise InvalidInput(f"{path}: the output folder cannot be written ({existing} is not a writable folder)")
