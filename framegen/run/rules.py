"""A storyboard's rules compiled for one loaded pipe, and described for the report.

Each keyframe's rules compile once (its in-betweens share them): layer names become
module paths, masks become mask sources. A rule that does not fit the pipe is a
positioned InvalidInput. Attention masks add the stores they read to the anchor state,
so every frame compiles before the anchor pass.
"""

from __future__ import annotations

from collections.abc import Callable

from ..engine.compile import Compiler, RuleError
from ..engine.specs import Edit, RuleSpec
from ..engine.swap import SwapRule
from ..errors import InvalidInput
from ..storyboard import Storyboard, mask_as_written
from .shots import Shot


def compile_rules(compiler: Compiler, board: Storyboard, specs, shot: Shot) -> list[SwapRule]:
    """`specs` (a shot's rules, or a sweep run's) compiled for the compiler's pipe, with `shot`'s edit."""
    try:
        return compiler.rules(specs, edit_of(board, shot))
    except RuleError as error:
        raise InvalidInput(board.problem(error.where, str(error))) from None


def edit_of(board: Storyboard, shot: Shot) -> Edit:
    """What `shot` changes from the anchor, for automatic masks."""
    anchor, folder = board.spec.anchor, board.folder
    anchor_control = tuple(folder / path for path in anchor.control or ())
    control = tuple(folder / path for path in shot.control)
    return Edit(anchor.prompt, shot.prompt, shot.anchor_words, shot.frame_words, anchor_control, control)


def alone(rules: list[SwapRule]) -> bool:
    """Whether a frame under `rules` renders in a batch of its own (a mask reads its own pass)."""
    return any(rule.mask.alone for rule in rules if rule.mask is not None)


def describe_rules(specs, module: Callable[[str], str], board: Storyboard) -> list[dict]:
    """Rules as resolved, for the report: layers as written, the module paths `module`
    resolves them to, and step ranges."""
    return [describe_rule(spec, module, board) for spec in specs]


def describe_rule(spec: RuleSpec, module: Callable[[str], str], board: Storyboard) -> dict:
    entry = {
        "mode": spec.mode,
        "layers": list(spec.layers),
        "modules": sorted({module(layer) for layer in spec.layers}),
        "steps": compact_steps(spec.steps),
    }
    if spec.mode == "threshold":
        entry.update(threshold=spec.threshold, reduce=spec.reduce, relative=spec.relative)
    if spec.mask is not None:
        entry["mask"] = mask_as_written(spec.mask, board.folder)
    return entry


def compact_steps(steps) -> str:
    """(1, 2, 3, 7, 9, 10) -> '1-3,7,9-10'."""
    runs: list[list[int]] = []
    for step in sorted(steps):
        if runs and step == runs[-1][1] + 1:
            runs[-1][1] = step
        else:
            runs.append([step, step])
    return ",".join(f"{a}-{b}" if a != b else f"{a}" for a, b in runs)
