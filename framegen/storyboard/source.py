"""Where every value of a storyboard stands, and problems as one positioned line.

`read_yaml` parses with a safe loader and remembers the (line, col) of every value by
its path in the data; `pydantic_problem` maps a validation error onto that path and
says it in the user's words:

    storyboard.yaml:12:7: frames[2].swap[0].steps: step 60 is outside 1..50
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from functools import cached_property
from typing import Any, get_args

import yaml
from pydantic import BaseModel

from ..errors import InvalidInput, shown
from .schema import FullRule, KvRule, MaskRule, StoryboardSpec, ThresholdRule

MAX_VALUES = 100_000  # values of a storyboard once its aliases are expanded (a 1,000-frame one holds ~20,000)


def dotted(path: tuple) -> str:
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


# --------------------------------------------------------------------- YAML + marks


def read_yaml(text: str, path: str) -> tuple[Any, Marks]:
    """Parse YAML safely; the marks give the 1-based (line, col) of every value by its
    path. `path` names the text in error lines."""
    try:
        loader = yaml.SafeLoader(text)
    except yaml.reader.ReaderError as error:  # a character YAML does not allow, found before parsing
        raise InvalidInput(_reader_problem(text, error, path)) from None
    try:
        node = loader.get_single_node()  # aliases stay shared nodes here: composing costs what the text does
        if node is not None and expanded_size(node) > MAX_VALUES:
            raise InvalidInput(
                f"{path}:1:1: storyboard: its YAML aliases expand to more than {MAX_VALUES:,} values; "
                "a storyboard needs far fewer (write the repeated parts out, or alias smaller pieces)"
            )
        data = loader.construct_document(node) if node is not None else None
        duplicates = list(_places(node, duplicates=True))
    except yaml.MarkedYAMLError as error:
        mark = error.problem_mark or error.context_mark
        place = f"{path}:{mark.line + 1}:{mark.column + 1}" if mark else str(path)
        raise InvalidInput(f"{place}: invalid YAML: {error.problem or error.context}") from None
    except yaml.reader.ReaderError as error:
        raise InvalidInput(_reader_problem(text, error, path)) from None
    except RecursionError:
        raise InvalidInput(f"{path}:1:1: storyboard: nested too deeply (thousands of levels)") from None
    except ValueError:  # an integer past Python's 4,300 digits (sys.get_int_max_str_digits)
        line, col = next(_long_integers(node))
        raise InvalidInput(f"{path}:{line}:{col}: invalid YAML: an integer of thousands of digits") from None
    finally:
        loader.dispose()
    problems = [f"{path}:{line}:{col}: {dotted(at[:-1])}: duplicate key '{at[-2]}'" for at, (line, col) in duplicates]
    if problems:
        raise InvalidInput(problems)
    return data, Marks(text)


def _long_integers(node):
    """(line, col) of each integer scalar too long for Python to read, in document order."""
    stack = [node]
    while stack:
        node = stack.pop()
        if isinstance(node, yaml.ScalarNode) and node.tag.endswith(":int") and len(node.value) > 4000:
            yield node.start_mark.line + 1, node.start_mark.column + 1
        elif isinstance(node, yaml.MappingNode):
            stack.extend(n for pair in reversed(node.value) for n in reversed(pair))
        elif isinstance(node, yaml.SequenceNode):
            stack.extend(reversed(node.value))
    yield 1, 1


def _reader_problem(text: str, error, path: str) -> str:
    """A character YAML refuses (a control character, say), placed at its line and column."""
    before = text[: error.position]
    line, col = before.count("\n") + 1, error.position - (before.rfind("\n") + 1) + 1
    what = f"the character U+{error.character:04X}" if isinstance(error.character, int) else "a character"
    return f"{path}:{line}:{col}: invalid YAML: {what} is not allowed in YAML text"


class Marks(Mapping):
    """The 1-based (line, col) of every value of a YAML text, keyed by its path in the data;
    a mapping key's own place is under path + ('<key>',). Worked out from the text when
    first asked (an error line, an annotation), so a loaded storyboard keeps its text, not
    a position per value. Only for text that `read_yaml` accepted."""

    def __init__(self, text: str):
        self.text = text

    @cached_property
    def _table(self) -> dict[tuple, tuple[int, int]]:
        loader = yaml.SafeLoader(self.text)
        try:
            return dict(_places(loader.get_single_node()))
        finally:
            loader.dispose()

    def __getitem__(self, path: tuple) -> tuple[int, int]:
        return self._table[path]

    def __iter__(self) -> Iterator[tuple]:
        return iter(self._table)

    def __len__(self) -> int:
        return len(self._table)


def _places(node, at: tuple = (), duplicates: bool = False) -> Iterator[tuple[tuple, tuple[int, int]]]:
    """(path, (line, col)) of `node` and every value and mapping key below it; with
    `duplicates`, only the keys that repeat one before them in their mapping."""
    if node is None:
        return
    if not duplicates:
        yield at, (node.start_mark.line + 1, node.start_mark.column + 1)
    if isinstance(node, yaml.MappingNode):
        seen = set()
        for key_node, value_node in node.value:
            key = key_node.value
            if not duplicates or key in seen:
                yield at + (key, "<key>"), (key_node.start_mark.line + 1, key_node.start_mark.column + 1)
            seen.add(key)
            yield from _places(value_node, at + (key,), duplicates)
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            yield from _places(item, at + (i,), duplicates)


# ------------------------------------------------------------------------- validation


UNION_MEMBER = re.compile(r"^([A-Z]\w*|str|int|float|bool|list|dict|none|.*\[.*)$")  # no key of a storyboard's


def _data_path(loc: tuple, data: Any) -> tuple:
    """Map a pydantic error location onto the data, dropping the union tag it inserts
    after a rule's index (`('swap', 0, 'mask', 'grid')` -> `('swap', 0, 'grid')`)."""
    path, node, tag_dropped = [], data, False
    for part in loc:
        if isinstance(node, dict) and part == node.get("mode") and not tag_dropped:
            tag_dropped = True
        elif isinstance(part, str) and UNION_MEMBER.match(part) and not (isinstance(node, dict) and part in node):
            continue  # which member of a union (`str`, `OutputSpec`, `function-after[...]`) pydantic tried
        elif isinstance(node, dict) and part in node:
            node = node[part]
            path.append(part)
        elif isinstance(node, list) and isinstance(part, int) and part < len(node):
            node = node[part]
            path.append(part)
        else:  # a missing key: name it, and point at its parent
            path.append(part)
            break
    return tuple(path)


def _model_at(path: tuple):
    """The pydantic model class that validates the mapping at `path` (for key hints)."""
    model: Any = StoryboardSpec
    for part in path:
        if isinstance(part, int):
            continue
        if model is None or part not in model.model_fields:
            return None
        annotation = model.model_fields[part].annotation
        model = next((c for c in _classes(annotation) if issubclass(c, BaseModel)), None)
    return model


def _classes(annotation) -> list[type]:
    found, stack = [], [annotation]
    while stack:
        a = stack.pop()
        if isinstance(a, type):
            found.append(a)
        stack.extend(get_args(a))
    return found


def pydantic_problem(error: dict, data: Any) -> tuple[tuple, str]:
    loc, kind, message = tuple(error["loc"]), error["type"], error["msg"]
    path = _data_path(loc, data)
    if kind == "extra_forbidden":
        parent = path[:-1]
        model = _model_at(parent)
        mapping = data_at(data, parent)
        if isinstance(mapping, dict) and isinstance(mapping.get("mode"), str):  # a rule: its mode's fields
            rules = {"full": FullRule, "mask": MaskRule, "threshold": ThresholdRule, "kv": KvRule}
            model = rules.get(mapping["mode"], model)
        known = ", ".join(model.model_fields) if model else ""
        return path + ("<key>",), f"unknown key '{shown(path[-1])}'" + (f" (known: {known})" if known else "")
    if kind == "missing":
        return path, "required"
    if kind == "union_tag_invalid":
        return path + ("mode",), f"unknown mode '{shown(error['ctx']['tag'])}' (known: full, mask, threshold, kv)"
    if kind == "union_tag_not_found":
        return path, "a rule needs 'mode' (full, mask, threshold or kv)"
    if kind == "too_short" and path == ("frames",):
        return path, "a storyboard needs at least one frame"
    if kind == "literal_error":
        return path, f"'{shown(error['input'])}' is not one of {error['ctx']['expected']}"
    if isinstance(error.get("input"), bool) and kind in ("int_type", "float_type", "string_type"):
        noun = {"int_type": "a whole number", "float_type": "a number", "string_type": "text"}[kind]
        return path, f"{str(error['input']).lower()} is a YAML boolean (yes, no, on, off read as one), not {noun}"
    if kind == "int_type" and isinstance(error.get("input"), float):
        return path, f"{error['input']} is not a whole number"
    return path, message.removeprefix("Value error, ")


def data_at(data: Any, path: tuple) -> Any:
    for part in path:
        try:
            data = data[part]
        except (KeyError, IndexError, TypeError):
            return None
    return data


def expanded_size(root: yaml.Node) -> int:
    """How many values the document holds once every alias is expanded, counted without
    expanding them (each shared node's size once), so an alias bomb costs nothing here.
    A node that contains itself expands without end: MAX_VALUES + 1."""
    sizes: dict[int, int] = {}
    open_nodes: set[int] = set()
    stack = [(root, False)]
    while stack:
        node, children_done = stack.pop()
        if id(node) in sizes:
            continue
        children = [n for pair in node.value for n in pair] if isinstance(node, yaml.MappingNode) else []
        children = node.value if isinstance(node, yaml.SequenceNode) else children
        if children_done or not children:
            sizes[id(node)] = 1 + sum(sizes[id(child)] for child in children)
            open_nodes.discard(id(node))
            continue
        if any(id(child) in open_nodes or child is node for child in children):
            return MAX_VALUES + 1
        open_nodes.add(id(node))
        stack.append((node, True))
        stack.extend((child, False) for child in children if id(child) not in sizes)
    return sizes[id(root)]


def mark(marks: dict, path: tuple) -> tuple[int, int]:
    """(line, col) of the value at `path`, or of its nearest parent that has one."""
    while path and path not in marks:
        path = path[:-1]
    return marks.get(path, (1, 1))
