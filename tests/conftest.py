import textwrap
from pathlib import Path

import pytest

TINY_SIZE = 64  # pixels; the tiny VAE halves three times, so the latent is 8x8


@pytest.fixture(scope="session", autouse=True)
def fingerprint_cache(tmp_path_factory):
    """Weight fingerprints are remembered in a folder of the test session's, not the user's cache."""
    import os

    os.environ["FRAMEGEN_CACHE"] = str(tmp_path_factory.mktemp("framegen-cache"))
    yield
    os.environ.pop("FRAMEGEN_CACHE", None)


@pytest.fixture(scope="session")
def tiny_pipe():
    """The `tiny-random` pipeline, built once: tests that hook it always unhook."""
    from framegen.models.tiny import tiny_pipeline

    pipe = tiny_pipeline()
    pipe.set_progress_bar_config(disable=True)
    return pipe


@pytest.fixture
def write_board(tmp_path):
    """Write a storyboard (YAML text, dedented) and return its path."""

    def write(text: str, name: str = "board.yaml") -> Path:
        path = tmp_path / name
        path.write_text(textwrap.dedent(text).lstrip())
        return path

    return write


TINY_BOARD = """
version: 1
model: {id: tiny-random}
render: {width: 64, height: 64, steps: 8, guidance: 7.5, seed: 7}
anchor: {prompt: "girl, white hair, school uniform, blue skirt, outdoor"}
swap:
  - {mode: full, layers: [OUT3, OUT4], steps: "1-3"}
  - {mode: mask, layers: [OUT3, OUT4, OUT5, OUT6, OUT10], steps: "4-8", mask: {grid: ["1100", "1100"]}}
frames:
  - {name: pants, replace: {"school uniform, blue skirt": "pants, dress shirts"}, hold: 3}
  - {name: smile, add: smile, remove: outdoor}
  - {name: free, prompt: "a full prompt instead of a delta", swap: []}
video: {fps: 4}
report: {background: {segmenter: none}}
"""


def open_board(board, pipe, cache=None):
    """(prepared, renderer) for a loaded storyboard on `pipe`: its frames' rules compiled,
    a renderer whose cache holds what they need (or `cache`)."""
    from framegen.run.prepare import prepare

    prepared = prepare(board, pipe)
    return prepared, prepared.renderer(cache)


def render_frame(prepared, renderer, plan):
    """One frame of the storyboard, by its own rules: a FrameImage."""
    return renderer.frame(*prepared.shot(plan))


# the smallest render that exercises the whole job (2 steps, one frame, no segmenter), as a mapping
QUICK_BOARD = {
    "version": 1,
    "model": {"id": "tiny-random"},
    "render": {"width": 64, "height": 64, "steps": 2, "seed": 1},
    "anchor": {"prompt": "girl, red shirt"},
    "swap": [{"mode": "full", "layers": ["OUT3"], "steps": "1"}],
    "frames": [{"name": "blue", "replace": {"red shirt": "blue shirt"}}],
    "report": {"background": {"segmenter": "none"}},
}
