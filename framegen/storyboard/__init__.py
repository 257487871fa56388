"""Storyboards: the YAML schema (schema.py), where each value stands and how problems
are said (source.py), reading one (load.py), steps and prompt deltas (deltas.py), the
files a storyboard names and what the model must do (checks.py), and the resolved plan
that a render follows (plan.py)."""

from .deltas import apply_delta, parse_steps, split_tags, step_ranges
from .load import load_storyboard
from .plan import FramePlan, Storyboard, mask_as_written, resolve, rule_spec
from .schema import SCHEDULERS, Background, MaskSpec, ModelSpec, StoryboardSpec
from .source import dotted

__all__ = [
    "SCHEDULERS", "Background", "FramePlan", "MaskSpec", "ModelSpec", "Storyboard", "StoryboardSpec",
    "apply_delta", "dotted", "load_storyboard", "mask_as_written", "parse_steps", "resolve", "rule_spec", "split_tags",
    "step_ranges",
]  # fmt: skip
