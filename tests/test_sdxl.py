"""SDXL's own truths, on a tiny random SDXL pipeline: its layers render end to end with
drawn and attention masks, its exact bound, and noise masks refused before loading."""

import numpy as np
import pytest
import torch
import yaml

from framegen.cli import main
from framegen.engine import AnchorCache, LayerMap, SwapRule, needed_pairs, record, swapping

STEPS = 4


@pytest.fixture(scope="module")
def sdxl(tmp_path_factory):
    from framegen.models.tiny import tiny_sdxl_pipeline

    pipe = tiny_sdxl_pipeline()
    pipe.set_progress_bar_config(disable=True)
    folder = tmp_path_factory.mktemp("sdxl") / "model"
    pipe.save_pretrained(folder, safe_serialization=True)
    return pipe, folder


def anchor_and_frame(pipe, rules, prompt="boy, black hair, red shirt"):
    cache = AnchorCache(needed_pairs(rules))

    def generate(text, clock):
        generator = torch.Generator("cpu").manual_seed(3)
        options = dict(width=64, height=64, num_inference_steps=STEPS, generator=generator, output_type="np")
        return pipe(text, callback_on_step_end=clock.callback, **options).images[0]

    with record(pipe, STEPS, cache) as clock:
        anchor = generate("girl, white hair, blue skirt", clock)
    with swapping(pipe, STEPS, cache, rules) as clock:
        frame = generate(prompt, clock)
    return anchor, frame


def full(pipe, names):
    layers = LayerMap.of(pipe.unet)
    return [SwapRule("full", frozenset(layers.module_path(n) for n in names), frozenset(range(1, STEPS + 1)))]


def test_the_exact_bound_on_sdxl_is_the_last_block(sdxl):
    """Every cross-attention layer swapped is not the anchor on SDXL (its resnets OUT6-OUT8
    take the pooled text embedding through the time embedding); the last block is."""
    pipe, _ = sdxl
    layers = LayerMap.of(pipe.unet)
    text_layers = [layer.name for layer in layers.cross_attention_layers()]
    assert text_layers == ["IN4", "IN5", "IN7", "IN8", "MID", "OUT0", "OUT1", "OUT2", "OUT3", "OUT4", "OUT5"]
    anchor, every_text_layer = anchor_and_frame(pipe, full(pipe, text_layers))
    assert not np.array_equal(every_text_layer, anchor)
    anchor, last_block = anchor_and_frame(pipe, full(pipe, ["OUT8"]))
    assert np.array_equal(last_block, anchor)


def board(folder, mask: str) -> dict:
    return {
        "version": 1,
        "model": {"id": str(folder)},
        "render": {"width": 64, "height": 64, "steps": STEPS, "guidance": 5.0, "seed": 3},
        "anchor": {"prompt": "girl, white hair, blue skirt"},
        "swap": [
            {"mode": "full", "layers": ["OUT0", "OUT1"], "steps": "1-2"},
            {"mode": "mask", "layers": ["OUT3", "OUT4", "OUT6"], "steps": "3-4", "mask": yaml.safe_load(mask)},
        ],
        "frames": [{"name": "red", "replace": {"blue skirt": "red skirt"}}],
        "report": {"background": {"segmenter": "none"}},
    }


@pytest.mark.parametrize("mask", ['{grid: ["10", "01"]}', "{auto: attention}"])
def test_an_sdxl_folder_renders_with_drawn_and_attention_masks(sdxl, tmp_path, capsys, mask):
    _, folder = sdxl
    path = tmp_path / "board.yaml"
    path.write_text(yaml.safe_dump(board(folder, mask)))
    assert main(["render", "-q", str(path)]) == 0, capsys.readouterr().err
    report = yaml.safe_load((tmp_path / "out" / "board" / "report.json").read_text())
    assert report["frames"][0]["masks"][0]["kind"] in ("grid", "attention")
    assert report["frames"][0]["rules"][1]["modules"] == [
        "up_blocks.1.attentions.0", "up_blocks.1.attentions.1", "up_blocks.2.resnets.0",
    ]  # fmt: skip


def test_noise_masks_on_sdxl_are_refused_before_loading(sdxl, tmp_path, capsys):
    _, folder = sdxl
    path = tmp_path / "board.yaml"
    path.write_text(yaml.safe_dump(board(folder, "{auto: noise}"), sort_keys=False))
    for command in ("validate", "render"):
        assert main([command, str(path)]) == 2
        err = capsys.readouterr().err
        assert (
            err.count("\n") == 1
            and "swap[1].mask.auto: noise masks support SD1.x/2.x, FLUX.1 and SD3.x pipelines" in err
        )


def test_a_real_image_anchor_on_sdxl_is_refused_before_loading(sdxl, tmp_path, capsys):
    from PIL import Image

    _, folder = sdxl
    Image.new("RGB", (64, 64), "white").save(tmp_path / "photo.png")
    spec = board(folder, '{grid: ["10", "01"]}')
    spec["anchor"]["image"] = "photo.png"
    spec["model"]["scheduler"] = "ddim"
    path = tmp_path / "board.yaml"
    path.write_text(yaml.safe_dump(spec))
    assert main(["validate", str(path)]) == 2
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert "anchor.image: a real-image anchor supports SD1.x/2.x, FLUX.1 and SD3.x pipelines" in line, line


def test_an_sdxl_controlnet_steers_frames_and_out_swaps_carry_the_anchors_control(sdxl, tmp_path, capsys):
    """diffusers' SDXL ControlNet pipeline through the same hooks: a frame whose control image
    moved differs from the anchor, and with the last OUT block swapped at every step it is
    the anchor again (the control residuals reach the U-Net before the OUT blocks)."""
    from PIL import Image, ImageDraw

    from framegen.models.tiny import acting_controlnet

    pipe, folder = sdxl
    acting_controlnet(pipe.unet).save_pretrained(tmp_path / "controlnet", safe_serialization=True)
    for name, x in (("left.png", 20), ("right.png", 44)):
        image = Image.new("RGB", (64, 64), "black")
        ImageDraw.Draw(image).rectangle((x - 6, 12, x + 6, 56), fill="white")
        image.save(tmp_path / name)
    spec = board(folder, '{grid: ["10", "01"]}')
    spec["model"]["controlnet"] = [{"id": str(tmp_path / "controlnet")}]
    spec["anchor"]["control"] = ["left.png"]
    spec["swap"] = []
    spec["frames"] = [
        {"name": "moved", "control": ["right.png"]},
        {"name": "held", "control": ["right.png"], "swap": [{"mode": "full", "layers": ["OUT8"], "steps": "all"}]},
    ]
    path = tmp_path / "board.yaml"
    path.write_text(yaml.safe_dump(spec))
    assert main(["render", "-q", str(path)]) == 0, capsys.readouterr().err
    out = tmp_path / "out" / "board"
    anchor, moved, held = (
        np.asarray(Image.open(out / p)) for p in ("anchor.png", "frames/0001.png", "frames/0002.png")
    )
    assert not np.array_equal(moved, anchor)
    assert np.array_equal(held, anchor)
