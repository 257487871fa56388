"""Errors that reach the user as one line and an exit code (see docs/guides/ci.md, "Exit codes")."""

from __future__ import annotations

import sys

EXIT_OK = 0
EXIT_CHECK_FAILED = 1
EXIT_INVALID_INPUT = 2
EXIT_RUNTIME = 3
EXIT_INTERRUPTED = 130  # Ctrl-C (SIGINT)
EXIT_TERMINATED = 143  # SIGTERM: timeout, docker stop, a cancelled CI job


class FramegenError(Exception):
    """A failure the user can act on; `str(error)` is the whole message."""

    exit_code = EXIT_RUNTIME

    @property
    def lines(self) -> list[str]:
        return [str(self)]


class InvalidInput(FramegenError):
    """Bad storyboard or arguments. Holds every problem found, one line each, already
    prefixed with `file:line:col: where:` when a place is known."""

    exit_code = EXIT_INVALID_INPUT

    def __init__(self, problems: list[str] | str):
        self.problems = [problems] if isinstance(problems, str) else list(problems)
        super().__init__("\n".join(self.problems))

    @property
    def lines(self) -> list[str]:
        return self.problems


class RenderFailure(FramegenError):
    """Model not found, out of memory, encoder failure: the render could not finish."""

    exit_code = EXIT_RUNTIME


class Cancelled(FramegenError):
    """A render given up because its inputs changed (`render --watch`): like a failed
    render, it leaves the files it finished and drops the one it was writing."""


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised where the process is, so that it unwinds like Ctrl-C: files being
    written are dropped, finished ones stay."""


def error_line(error: BaseException, limit: int = 300) -> str:
    """The first line of an exception's message (at most `limit` characters), or its type's name."""
    text = str(error).strip()
    return text.splitlines()[0][:limit] if text else type(error).__name__


def printable(line: str) -> str:
    """`line` as the terminal should show it: control characters, line and paragraph
    separators and bidirectional overrides (from a storyboard's value, a path, an option)
    escaped, so one line stays one line and no value restyles the terminal."""
    return "".join(c if c.isprintable() or c == " " else repr(c)[1:-1] for c in line)


def shown(value, limit: int = 60) -> str:
    """A value echoed back in a problem line: at most `limit` characters of it."""
    text = str(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def warn(message: str) -> None:
    """One line on stderr: something the user may want to change, not a failure."""
    print(f"framegen: warning: {printable(message)}", file=sys.stderr)
