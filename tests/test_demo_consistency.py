"""Consistency regression on the trained demo model (learned behaviour, not random
weights). Margins come from benchmarks/consistency.py (table in docs/demo-model.md):
on these 3 pairs at 20 steps, whole-tensor IN8+OUT3-6 gave 0.49, 0.79 and 0.61 of the
no-swap background MSE, with the edit still made."""

import pytest

from framegen.demo import WEIGHTS_DIR

pytestmark = pytest.mark.skipif(not (WEIGHTS_DIR / "model_index.json").is_file(), reason="demo weights not built")


@pytest.fixture(scope="module")
def evaluator():
    from framegen.demo import load_pipeline
    from framegen.demo.evaluate import Evaluator

    return Evaluator(load_pipeline(), steps=20, settings=["no swap", "whole IN8+OUT3-6"])


@pytest.mark.parametrize("index", [0, 1, 2])
def test_whole_tensor_swap_keeps_the_background_and_the_edit(evaluator, index):
    from framegen.demo.evaluate import edits

    edit = edits(3)[index]
    scored = evaluator.score(edit)
    plain = scored["no swap"]["background_mse"]
    whole = scored["whole IN8+OUT3-6"]["background_mse"]
    assert whole < 0.9 * plain, (edit, plain, whole)
    assert scored["whole IN8+OUT3-6"]["edited"], edit
