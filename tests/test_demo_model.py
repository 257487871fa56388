"""The bundled `demo` model: procedural scenes, tokenizer, offline pipeline, segmenter."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from framegen.models import demo
from tools.demo import scenes
from tools.demo.scenes import GRAMMAR_WORDS, RGB, caption, draw_scene, make_scene, sample_attributes

HELD_OUT_SEEDS = range(10_000_000, 10_000_016)  # training used seeds 0..19_999


def test_import_is_cheap():
    code = (
        "import sys, framegen; before = set(sys.modules); import framegen.models.demo; "
        "print(sorted({'torch', 'diffusers', 'transformers', 'onnxruntime'} & (set(sys.modules) - before)))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_scenes_are_deterministic_from_seed():
    a, b = make_scene(123), make_scene(123)
    assert a.caption == b.caption
    assert np.array_equal(np.asarray(a.image), np.asarray(b.image))
    assert np.array_equal(a.person_mask, b.person_mask)
    assert a.image.size == (64, 64) and a.image.mode == "RGB"
    assert make_scene(124).caption != a.caption or not np.array_equal(
        np.asarray(make_scene(124).image), np.asarray(a.image)
    )


def test_captions_use_only_grammar_words_and_reflect_attributes():
    for seed in range(200):
        attrs = sample_attributes(seed)
        text = caption(attrs)
        tags = text.split(", ")
        assert all(word in GRAMMAR_WORDS for tag in tags for word in tag.split(" "))
        assert tags[:4] == [
            attrs["person"],
            f"{attrs['hair_colour']} hair",
            f"{attrs['top_colour']} shirt",
            f"{attrs['bottom_colour']} {attrs['bottom']}",
        ]
        assert set(tags[4:]) == {attrs["sky"], attrs["ground"], *attrs["scenery"]}
        assert attrs["person"] in scenes.PEOPLE and attrs["bottom"] in scenes.BOTTOMS
        assert attrs["sky"] in scenes.SKIES and attrs["ground"] in scenes.GROUNDS
        assert attrs["hair_colour"] in scenes.HAIR_COLOURS and attrs["top_colour"] in scenes.COLOURS


def test_masks_and_redraw_with_one_attribute_changed():
    attrs = sample_attributes(7)
    for colour in ("red", "blue", "yellow"):
        scene = draw_scene({**attrs, "top_colour": colour, "bottom_colour": "green"})
        image = np.asarray(scene.image).astype(float)
        assert scene.top_mask.any() and scene.bottom_mask.any()
        assert not (scene.top_mask & ~scene.person_mask).any() and not (scene.bottom_mask & ~scene.person_mask).any()
        assert np.abs(np.median(image[scene.top_mask], axis=0) - RGB[colour]).max() < 40
        assert np.abs(np.median(image[scene.bottom_mask], axis=0) - RGB["green"]).max() < 40
        assert f"{colour} shirt" in scene.caption
        assert np.array_equal(scene.person_mask, make_scene(7).person_mask)  # same placement


def test_person_size():
    for seed in range(50):
        rows = np.flatnonzero(make_scene(seed).person_mask.any(axis=1))
        assert 0.3 * 64 <= rows[-1] - rows[0] + 1 <= 0.65 * 64


def test_weights_are_small_safetensors():
    files = [f for f in demo.WEIGHTS_DIR.rglob("*") if f.is_file()]
    assert sum(f.stat().st_size for f in files) <= 25 * 2**20
    assert not [f for f in files if f.suffix in {".bin", ".pt", ".pth", ".ckpt", ".pkl"}]
    assert {"unet", "vae", "text_encoder", "tokenizer", "scheduler"} <= {f.parent.name for f in files}
    assert demo.segmenter_path().is_file()


@pytest.fixture(scope="module")
def pipe():
    return demo.load_pipeline()


def test_grammar_words_are_single_tokens(pipe):
    tok = pipe.tokenizer
    for word in GRAMMAR_WORDS:
        assert len(tok(word, add_special_tokens=False).input_ids) == 1, word
    for seed in range(200):  # every caption fits the text encoder
        assert len(tok(make_scene(seed).caption).input_ids) <= demo.TEXT_LENGTH
    assert len(tok("an unknown zebra!", add_special_tokens=False).input_ids) > 1  # any text tokenizes


def test_pipeline_is_sd1_shaped(pipe):
    unet = pipe.unet
    assert [type(b).__name__ for b in unet.down_blocks] == ["CrossAttnDownBlock2D"] * 3 + ["DownBlock2D"]
    assert [type(b).__name__ for b in unet.up_blocks] == ["UpBlock2D"] + ["CrossAttnUpBlock2D"] * 3
    assert type(unet.mid_block).__name__ == "UNetMidBlock2DCrossAttn"
    assert unet.config.layers_per_block == 2
    assert unet.config.sample_size * pipe.vae_scale_factor == demo.NATIVE_SIZE[1]


def test_pipeline_renders_offline(pipe):
    import torch

    image = pipe(
        "girl, blonde hair, red shirt, blue skirt, grass, day, house",
        width=64,
        height=64,
        num_inference_steps=10,
        guidance_scale=3.0,
        generator=torch.Generator().manual_seed(0),
    ).images[0]
    assert image.size == demo.NATIVE_SIZE
    assert np.asarray(image).std() > 5  # not a blank image


def test_segmenter_onnx_contract():
    import onnxruntime as ort

    session = ort.InferenceSession(str(demo.segmenter_path()), providers=["CPUExecutionProvider"])
    inp = session.get_inputs()[0]
    assert list(inp.shape) == [1, 3, 320, 320]
    out = session.run(None, {inp.name: np.random.default_rng(0).normal(size=(1, 3, 320, 320)).astype(np.float32)})[0]
    assert out.shape == (1, 1, 320, 320)


def test_segmenter_through_rembg_on_held_out_scenes():
    from framegen.output.segmenters import segmenter_for
    from framegen.storyboard import Background

    segmenter = segmenter_for(Background(segmenter="rembg"), "demo", demo.WEIGHTS_DIR)  # rembg's u2net_custom
    ious = []
    for seed in HELD_OUT_SEEDS:
        scene = make_scene(seed)
        mask = segmenter.person(scene.image)
        assert mask.shape == scene.person_mask.shape
        ious.append((mask & scene.person_mask).sum() / (mask | scene.person_mask).sum())
    assert np.mean(ious) >= 0.8, ious


def test_grid_drawn_mask_marks_every_cell_the_person_touches():
    from tools.demo.evaluate import grid_drawn

    person = np.zeros((64, 64), dtype=bool)
    person[20:30, 33:35] = True  # rows in cells 2-3, columns in cell 4 of an 8x8 grid
    drawn = grid_drawn(person, 8)
    expected = np.zeros_like(person)
    expected[16:32, 32:40] = True
    assert np.array_equal(drawn, expected)
    assert not grid_drawn(np.zeros((64, 64), dtype=bool), 8).any()
    assert grid_drawn(person, 64).sum() == person.sum()  # one cell a pixel: the person itself
