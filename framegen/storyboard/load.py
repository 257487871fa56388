"""Reading a storyboard: a path, YAML text or a mapping, with a safe YAML loader that
keeps every value's position (source.py), validated against the schema (schema.py) and
resolved into a plan (plan.py). Every problem is one positioned line; InvalidInput holds
them all.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from pydantic import ValidationError

from ..errors import InvalidInput
from .plan import Storyboard, resolve
from .schema import StoryboardSpec
from .source import dotted, mark, pydantic_problem, read_yaml


def load_storyboard(source: str | os.PathLike | Mapping, folder: str | os.PathLike | None = None) -> Storyboard:
    """Read, validate and resolve a storyboard; raise InvalidInput with every problem.

    `source` is a path (a `Path`, or a string without a line break), YAML text (a string
    with line breaks) or a mapping. Text and mappings resolve relative paths against
    `folder` (default: the working directory); error lines then name `<storyboard>` and,
    for text, the line and column."""
    if isinstance(source, Mapping):
        path, data, marks = _unnamed(folder), dict(source), {}
    elif isinstance(source, str) and "\n" in source:
        path = _unnamed(folder)
        data, marks = read_yaml(source, str(path))
    else:
        path = Path(source)
        data, marks = read_yaml(read_text(path), str(path))
    if not isinstance(data, dict):
        raise InvalidInput(f"{path}:1:1: storyboard: expected a mapping with version, model, anchor, frames")
    try:
        spec = StoryboardSpec.model_validate(data)
    except ValidationError as error:
        problems = []
        for e in error.errors():
            where, message = pydantic_problem(e, data)
            shown = tuple(p for p in where if p != "<key>")
            problems.append(
                f"{path}:{':'.join(map(str, mark(marks, where)))}: {dotted(shown) or 'storyboard'}: {message}"
            )
        raise InvalidInput(list(dict.fromkeys(problems))) from None
    return resolve(Storyboard(path=path, spec=spec, frames=[], marks=marks))


def read_text(path: Path) -> str:
    """The storyboard file as text: UTF-8 (a byte-order mark is allowed), else one line that says why not."""
    try:
        raw = path.read_bytes()
    except OSError as error:
        raise InvalidInput(f"{path}: cannot read storyboard: {error.strerror or error}") from None
    if raw.startswith((b"\xff\xfe", b"\xfe\xff")):
        raise InvalidInput(f"{path}: the storyboard is UTF-16 text; save it as UTF-8")
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        raise InvalidInput(
            f"{path}: the storyboard is not UTF-8 text (byte 0x{raw[error.start]:02x} at offset {error.start}); "
            "save it as UTF-8"
        ) from None
    if "\x00" in text:
        raise InvalidInput(f"{path}: the storyboard holds NUL bytes: a binary file, not YAML")
    return text


def _unnamed(folder) -> Path:
    return Path(folder if folder is not None else ".") / "<storyboard>"
