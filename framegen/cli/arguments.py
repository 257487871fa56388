"""Command-line values checked like storyboard keys: each option's type says what it
accepts (a port, a count, a finite limit), so a bad value is one line and exit 2 before
anything loads, and argparse's two-line usage error becomes one."""

from __future__ import annotations

import argparse
import math
import sys

from ..errors import printable
from ..storyboard.values import path_problem

MAX_PORT = 65535
MAX_BATCH = 1024  # images in one denoiser batch: far past what any accelerator holds
MAX_SIDE = 16384  # pixels; no published model renders larger


class Parser(argparse.ArgumentParser):
    """argparse with errors as one line: `framegen render: --port: 70000 is not ...`."""

    def error(self, message: str):
        command = self.prog.removeprefix("framegen").strip()
        where = f"framegen {command}" if command else "framegen"
        print(f"{where}: {printable(message)} (see {where} --help)", file=sys.stderr)
        sys.exit(2)


def port(text: str) -> int:
    """A TCP port, or 0 for any free one."""
    value = _integer(text)
    if not 0 <= value <= MAX_PORT:
        raise argparse.ArgumentTypeError(f"{value} is not a port (give 1-{MAX_PORT}, or 0 for any free port)")
    return value


def batch(text: str) -> int:
    value = _integer(text)
    if not 1 <= value <= MAX_BATCH:
        raise argparse.ArgumentTypeError(f"{value} images per batch: give 1-{MAX_BATCH}")
    return value


def side(text: str) -> int:
    """An image's width or height in pixels."""
    value = _integer(text)
    if not 1 <= value <= MAX_SIDE:
        raise argparse.ArgumentTypeError(f"{value} pixels: give 1-{MAX_SIDE}")
    return value


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
        raise argparse.ArgumentTypeError(f"'{text[:60]}{'...' if len(text) > 60 else ''}' {problem}")
    return text


def _integer(text: str) -> int:
    try:
        return int(text, 10)
    except ValueError:
        raise argparse.ArgumentTypeError(f"'{text}' is not a whole number") from None
