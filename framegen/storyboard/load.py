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

MAX_BYTES = 64 << 20  # a storyboard's text
# pydantic's "not a mapping / text / list": what each member of a union says of a value another member reads
TYPE_ONLY = {"model_type", "dict_type", "model_attributes_type", "string_type", "list_type"}


def load_storyboard(source: str | os.PathLike | Mapping, folder: str | os.PathLike | None = None) -> Storyboard:
    """Read, validate and resolve a storyboard; raise InvalidInput with every problem.

    `source` is a path (a `Path`, or a string without a line break), YAML text (a string
    with line breaks) or a mapping. Text and mappings resolve relative paths against
    `folder` (default: the working directory); error lines then name `<storyboard>` and,
    for text, the line and column."""
    if isinstance(source, Mapping):
        path, data, marks = _unnamed(folder), as_yaml_reads_it(source), {}
    elif isinstance(source, str) and "\n" in source:
        path = _unnamed(folder)
        data, marks = read_yaml(source, str(path))
    else:
        path = Path(source)
        data, marks = read_yaml(read_text(path), str(path))
    if not isinstance(data, dict):
        raise InvalidInput(f"{path}:1:1: storyboard: expected a mapping with version, model, anchor, frames")
    problems = [
        f"{path}:{':'.join(map(str, mark(marks, at)))}: {dotted(tuple(p for p in at if p != '<key>'))}: {problem}"
        for at, problem in sorted(text_problems(data), key=lambda found: mark(marks, found[0]))
    ]
    if problems:
        raise InvalidInput(problems)
    try:
        spec = StoryboardSpec.model_validate(data)
    except ValidationError as error:
        found = [(pydantic_problem(e, data), e["type"]) for e in error.errors()]
        # a value no member of a union takes: a member's "not text / not a mapping" goes where another
        # member says more (a problem of its own there, or one inside the value)
        told = {where for (where, _), kind in found if kind not in TYPE_ONLY}
        told |= {where[:i] for (where, _), _ in found for i in range(1, len(where))}
        problems = []
        for (where, message), kind in found:
            if kind in TYPE_ONLY and where in told:
                continue
            shown = tuple(p for p in where if p != "<key>")
            problems.append(
                f"{path}:{':'.join(map(str, mark(marks, where)))}: {dotted(shown) or 'storyboard'}: {message}"
            )
        raise InvalidInput(list(dict.fromkeys(problems))) from None
    return resolve(Storyboard(path=path, spec=spec, frames=[], marks=marks))


def as_yaml_reads_it(value):
    """A mapping from Python as YAML would give it: tuples as lists (the schema takes lists)."""
    if isinstance(value, Mapping):
        return {key: as_yaml_reads_it(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [as_yaml_reads_it(item) for item in value]
    return value


def text_problems(data):
    """(path, problem) for every text in `data` (keys too) that no tokenizer or file system
    takes: a NUL, or a lone surrogate (a `\\ud800` escape: no UTF-8 can carry it)."""
    stack = [((), data)]
    while stack:
        at, value = stack.pop()
        if isinstance(value, str):
            bad = next((c for c in value if c == "\x00" or "\ud800" <= c <= "\udfff"), None)
            if bad == "\x00":
                yield at, "holds a NUL character"
            elif bad is not None:
                yield at, f"holds the lone surrogate U+{ord(bad):04X}, which is not text (no UTF-8 can carry it)"
        elif isinstance(value, dict):
            stack += [(at + (key, "<key>"), key) for key in value if isinstance(key, str)]
            stack += [(at + (key,), item) for key, item in value.items()]
        elif isinstance(value, list):
            stack += [(at + (i,), item) for i, item in enumerate(value)]


def read_text(path: Path) -> str:
    """The storyboard file as text: UTF-8 (a byte-order mark is allowed), else one line that says why not."""
    try:
        if not path.is_file():  # a device (/dev/zero) or a pipe would be read without end
            what = "is a folder" if path.is_dir() else "is not a file" if path.exists() else "does not exist"
            raise InvalidInput(f"{path}: cannot read storyboard: it {what}")
        with open(path, "rb") as file:
            if os.fstat(file.fileno()).st_size > MAX_BYTES:
                raise InvalidInput(
                    f"{path}: cannot read storyboard: it is over {MAX_BYTES >> 20} MB, too large for one"
                )
            raw = file.read()
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
