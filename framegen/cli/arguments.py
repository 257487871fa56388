"""Command-line values checked like storyboard keys: each option's type says what it
accepts (a port, a count, a finite limit), so a bad value is one line and exit 2 before
anything loads, and argparse's two-line usage error becomes one."""

from __future__ import annotations

import argparse
import math
import sys

from ..errors import printable, shown
from ..storyboard.values import MAX_BATCH, MAX_SIDE, path_problem

MAX_PORT = 65535


class Parser(argparse.ArgumentParser):
    """argparse with errors as one line: `framegen render: --port: 70000 is not ...`."""

    def error(self, message: str):
        command = self.prog.removeprefix("framegen").strip()
        where = f"framegen {command}" if command else "framegen"
        print(f"{where}: {printable(message)} (see {where} --help)", file=sys.stderr)
        sys.exit(2)


def port(text: str) -> int:
    """A TCP port, or 0 for any free one."""
    return _within(text, 0, MAX_PORT, f"{{}} is not a port (give 1-{MAX_PORT}, or 0 for any free port)")


def batch(text: str) -> int:
    return _within(text, 1, MAX_BATCH, f"{{}} images per batch: give 1-{MAX_BATCH}")


def side(text: str) -> int:
    """An image's width or height in pixels."""
    return _within(text, 1, MAX_SIDE, f"{{}} pixels: give 1-{MAX_SIDE}")


def limit(text: str) -> float:
    """A gate's limit or a threshold: a finite number >= 0 (a NaN limit would pass or fail everything)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"'{text}' is not a number") from None
    if not math.isfinite(value) or value < 0:
        raise argparse.ArgumentTypeError(f"{text} is no limit; give a finite number >= 0")
    return value


def path(text: str) -> str:
    """A file or folder the file system can look up (a name it would refuse is said here, not on first use)."""
    problem = path_problem(text)
    if problem:
        raise argparse.ArgumentTypeError(f"'{shown(text)}' {problem}")
    return text


def _within(text: str, low: int, high: int, message: str) -> int:
    """`text` as a whole number from `low` to `high`; else `message` with the value in it."""
    try:
        value = int(text, 10)
    except ValueError:
        raise argparse.ArgumentTypeError(f"'{text}' is not a whole number") from None
    if not low <= value <= high:
        raise argparse.ArgumentTypeError(message.format(value))
    return value
