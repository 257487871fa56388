"""Consistency regressions on the trained demo model (learned behaviour, not random
weights). Margins come from benchmarks/consistency.py (docs/demo-model.md: whole
IN8+OUT3-6 cut background MSE 3.7x over 20 pairs) and from the same pairs at 20 steps:
whole IN8+OUT3-6 gave 0.44, 0.29 and 0.37 of the no-swap background MSE on pairs 0, 6
and 8, each with the edit made; on pair 2 the attention mask freed 41% of the image, all
of the anchor's person, and kept the background MSE within 2% of the whole-tensor phase
alone (docs/automask.md)."""

import numpy as np
import pytest

from framegen.demo import WEIGHTS_DIR

pytestmark = pytest.mark.skipif(not (WEIGHTS_DIR / "model_index.json").is_file(), reason="demo weights not built")


@pytest.fixture(scope="module")
def pipe():
    from framegen.demo import load_pipeline

    pipe = load_pipeline()
    pipe.set_progress_bar_config(disable=True)
    return pipe


@pytest.mark.parametrize("index", [0, 6, 8])
def test_whole_tensor_swap_halves_background_mse_and_keeps_the_edit(pipe, index):
    from framegen.demo.evaluate import Evaluator, edits

    edit = edits(index + 1)[index]
    scored = Evaluator(pipe, steps=20, settings=["no swap", "whole IN8+OUT3-6"]).score(edit)
    plain = scored["no swap"]["background_mse"]
    whole = scored["whole IN8+OUT3-6"]["background_mse"]
    assert whole < 0.5 * plain, (edit, plain, whole)
    assert scored["whole IN8+OUT3-6"]["edited"], edit


def test_attention_mask_frees_the_person_and_keeps_the_background(pipe, tmp_path):
    from PIL import Image

    from framegen.demo.evaluate import Evaluator, edits
    from framegen.render import Renderer
    from framegen.report import compare
    from framegen.storyboard import load_storyboard

    edit = edits(3)[2]
    (tmp_path / "b.yaml").write_text(f"""
version: 1
model: {{id: demo}}
render: {{steps: 20, guidance: 3, seed: {edit.seed}}}
anchor: {{prompt: "{edit.anchor_prompt}"}}
frames:
  - {{name: whole, prompt: "{edit.frame_prompt}", swap: [{{mode: full, layers: [OUT3, OUT4], steps: "1-8"}}]}}
  - name: auto
    prompt: "{edit.frame_prompt}"
    swap:
      - {{mode: full, layers: [OUT3, OUT4], steps: "1-8"}}
      - {{mode: mask, layers: [OUT3, OUT4, OUT5, OUT6, OUT10], steps: "9-20", mask: {{auto: attention}}}}
report: {{background: {{segmenter: none}}}}
""")
    renderer = Renderer(load_storyboard(tmp_path / "b.yaml"), pipe)
    segmenter = Evaluator(pipe).segmenter
    anchor = renderer.anchor()
    person = segmenter.person(anchor)
    whole, auto = (renderer.frame(plan) for plan in renderer.board.frames)
    keep = np.asarray(Image.fromarray(auto.masks[0][1].numpy().astype(np.uint8) * 255).resize(anchor.size, Image.NEAREST)) > 127
    assert 0.2 < (~keep).mean() < 0.6  # a region, not the whole image
    assert (~keep & person).sum() >= 0.9 * person.sum()  # it covers where the shirt is
    mse = {name: compare(anchor, f.image, person, segmenter.person(f.image))["background_mse"] for name, f in (("whole", whole), ("auto", auto))}
    assert mse["auto"] <= 1.1 * mse["whole"], mse
