"""Shots: the anchor, keyframes and in-betweens are one kind of thing, so an in-between
gets what every frame gets (its masks written and reported), and a caller's pipe comes
back from a render as it went in."""

import json
from pathlib import Path

import numpy as np
import torch
import yaml
from PIL import Image

from framegen.cli import main
from framegen.run.shots import shots_of
from framegen.storyboard import load_storyboard

BOARD = {
    "version": 1,
    "model": {"id": "tiny-random"},
    "render": {"width": 64, "height": 64, "steps": 4, "seed": 3},
    "anchor": {"prompt": "girl, red shirt, blue skirt"},
    "swap": [{"mode": "mask", "layers": ["OUT3", "LATENTS"], "steps": "1-4", "mask": {"grid": ["10", "10"]}}],
    "frames": [
        {"name": "green", "replace": {"red shirt": "green shirt"}, "tween": 2},
        {"name": "black", "replace": {"blue skirt": "black skirt"}, "tween": 1, "swap": []},
    ],
    "report": {"background": {"segmenter": "none"}},
}


def test_shots_are_the_anchor_then_the_video_order():
    shots = shots_of(load_storyboard(BOARD))
    assert [(s.kind, s.name, s.image) for s in shots] == [
        ("anchor", "anchor", "anchor.png"),
        ("tween", "green~1", "frames/0001-1.png"), ("tween", "green~2", "frames/0001-2.png"),
        ("frame", "green", "frames/0001.png"),
        ("tween", "black~1", "frames/0002-1.png"), ("frame", "black", "frames/0002.png"),
    ]  # fmt: skip
    assert [s.between.t for s in shots if s.between] == [1 / 3, 2 / 3, 1 / 2]
    assert shots[4].between.prompt == shots[3].prompt  # from the keyframe before
    assert [s.mask_images for s in shots[1:4]] == [["masks/0001~1.png"], ["masks/0001~2.png"], ["masks/0001.png"]]


def test_in_betweens_write_and_report_their_masks(tmp_path):
    path = tmp_path / "board.yaml"
    path.write_text(yaml.safe_dump(BOARD))
    assert main(["render", "-q", str(path)]) == 0
    out = tmp_path / "out" / "board"
    report = json.loads((out / "report.json").read_text())
    masks = {frame["name"]: frame["masks"] for frame in report["frames"]}
    assert masks["green~1"] == [{"kind": "grid", "image": "masks/0001~1.png"}]
    assert masks["green"] == [{"kind": "grid", "image": "masks/0001.png"}] and masks["black~1"] == []
    drawn = np.asarray(Image.open(out / "masks" / "0001.png"))
    assert drawn[:, :32].all() and not drawn[:, 32:].any()  # white = kept from the anchor
    for name in ("0001~1.png", "0001~2.png"):
        assert np.array_equal(np.asarray(Image.open(out / "masks" / name)), drawn)  # a drawn mask: the frame's


def test_a_callers_pipe_comes_back_as_it_went_in(tmp_path):
    """The storyboard's LoRAs and a real-image anchor's DDIM scheduler are the render's,
    not the caller's: the pipe's own adapter at its own scale, and its own scheduler."""
    from diffusers import EulerDiscreteScheduler, StableDiffusionPipeline
    from peft import LoraConfig, get_peft_model_state_dict

    from framegen.models.tiny import tiny_pipeline
    from framegen.run.job import render_storyboard

    pipe = tiny_pipeline()
    pipe.set_progress_bar_config(disable=True)
    pipe.scheduler = EulerDiscreteScheduler.from_config(pipe.scheduler.config)
    torch.manual_seed(1)
    pipe.unet.add_adapter(LoraConfig(r=2, target_modules=["to_q"], init_lora_weights=False), adapter_name="mine")
    pipe.set_adapters(["mine"], adapter_weights=[0.7])

    def plain():
        generator = torch.Generator("cpu").manual_seed(0)
        return pipe("a cat", width=64, height=64, num_inference_steps=3, generator=generator, output_type="np").images[
            0
        ]

    before, scheduler = plain(), pipe.scheduler
    Image.new("RGB", (64, 64), "gray").save(tmp_path / "photo.png")
    source = tiny_pipeline()
    torch.manual_seed(2)
    source.unet.add_adapter(LoraConfig(r=2, target_modules=["to_k"], init_lora_weights=False))
    layers = get_peft_model_state_dict(source.unet)
    StableDiffusionPipeline.save_lora_weights(tmp_path, unet_lora_layers=layers, safe_serialization=True)
    board = dict(BOARD, anchor={"prompt": "girl, red shirt, blue skirt", "image": "photo.png"})
    board["model"] = {
        "id": "tiny-random",
        "lora": [{"path": "pytorch_lora_weights.safetensors", "name": "style", "scale": 0.5}],
    }
    render_storyboard(load_storyboard(board, folder=tmp_path), tmp_path / "out", pipe=pipe)
    assert pipe.scheduler is scheduler
    assert pipe.get_list_adapters() == {"unet": ["mine"]} and pipe.get_active_adapters() == ["mine"]
    assert np.array_equal(plain(), before)


def test_in_betweens_encode_each_prompt_once_and_match_the_direct_interpolation(tiny_pipe, monkeypatch):
    from types import SimpleNamespace

    import framegen.run.conditioning as conditioning
    from framegen.engine.encoding import encoded
    from framegen.engine.tween import between
    from framegen.run.render import RenderSettings

    calls = []

    def counted(pipe, prompt, negative=None, guided=True):
        calls.append(prompt)
        return encoded(pipe, prompt, negative, guided)

    monkeypatch.setattr(conditioning, "encoded", counted)
    texts = conditioning.Conditioning(tiny_pipe, Path("."), RenderSettings(64, 64, 3, 5.0, 0, "blurry"))
    start, end = "girl, red shirt", "girl, green shirt"
    for t in (0.25, 0.5, 0.75):
        shot = SimpleNamespace(prompt=end, between=SimpleNamespace(prompt=start, t=t))
        got, expected = texts.text(shot), between(tiny_pipe, start, end, t, "blurry")
        assert got.keys() == expected.keys() and all(torch.equal(got[k], expected[k]) for k in got)
    assert calls == [start, end]
