"""What a storyboard's frames say in words: step ranges (`"1-20"`, `"1-5,10,15"`) and
prompt deltas (replace, remove, add) applied to the anchor's prompt."""

from __future__ import annotations

import re

from .schema import Steps


def step_ranges(value: Steps) -> list[tuple[int, int]]:
    """The (first, last) ranges `steps` names, as written: `"1-20"`, `"1-5,10,15"`,
    `[1, 2, 3]` or `7`; raises ValueError for anything else."""
    if isinstance(value, bool):
        raise ValueError("steps must be a range like '1-20', a list of ints, or 'all'")
    if isinstance(value, int):
        return [(value, value)]
    if isinstance(value, list):
        return [(v, v) for v in value]
    parts = []
    for piece in str(value).split(","):
        match = re.fullmatch(r"\s*(\d+)\s*(?:-\s*(\d+)\s*)?", piece)
        if not match:
            raise ValueError(f"cannot read steps '{value}' (use '1-20', '1-5,10,15', a list, or 'all')")
        first = int(match[1])
        parts.append((first, int(match[2]) if match[2] else first))
    return parts


def parse_steps(value: Steps, total: int) -> tuple[int, ...]:
    """`"1-20"`, `"1-5,10,15"`, `[1, 2, 3]`, `7` or `all`: 1-based, inclusive."""
    if value == "all":
        return tuple(range(1, total + 1))
    parts = step_ranges(value)
    steps: set[int] = set()
    for first, last in parts:
        if last < first:
            raise ValueError(f"reversed step range {first}-{last}")
        for step in (first, last):
            if not 1 <= step <= total:
                raise ValueError(f"step {step} is outside 1..{total} (render.steps)")
        steps.update(range(first, last + 1))
    if not steps:
        raise ValueError("no steps given")
    return tuple(sorted(steps))


# ---------------------------------------------------------------------- prompt deltas


def split_tags(prompt: str) -> list[str]:
    return [t.strip() for t in prompt.split(",") if t.strip()]


def apply_delta(anchor: str, replace: dict[str, str], add: list[str], remove: list[str]) -> str:
    """The frame's prompt: `replace` substrings, then `remove` tags (or substrings),
    then `add` tags at the end. Raises KeyError(word) for a word the prompt lacks."""
    prompt = anchor
    for old, new in replace.items():
        if old not in prompt:
            raise KeyError(old)
        prompt = prompt.replace(old, new)
    for word in remove:
        tags = split_tags(prompt)
        if word.strip() in tags:
            tags.remove(word.strip())
        elif word in prompt:
            tags = split_tags(prompt.replace(word, ""))
        else:
            raise KeyError(word)
        prompt = ", ".join(tags)
    return ", ".join(split_tags(prompt) + [w.strip() for w in add if w.strip()])


def as_list(value: str | list[str]) -> list[str]:
    return [value] if isinstance(value, str) else list(value)
