"""Keys: each input that changes a shot's pixels changes its key, for render and for sweep
alike, and inputs that do not (names, holds, fps, checks) leave it alone. Keys come from
files: the model is never loaded here, and a render with nothing to render loads none."""

import copy
import json

import pytest
import torch
import yaml
from PIL import Image
from safetensors.torch import save_file

from framegen.models.facts import facts_from_files, facts_of
from framegen.run.identity import Identity
from framegen.run.shots import shots_of
from framegen.storyboard import load_storyboard
from framegen.sweep.plan import Run
from framegen.sweep.run import sweep_fingerprint


def write_model(folder):
    """A diffusers folder with tiny-random's configs and a weight file: enough for keys."""
    from framegen.models.tiny import SD1_UNET, tiny_scheduler

    (folder / "unet").mkdir(parents=True)
    (folder / "vae").mkdir()
    (folder / "unet" / "config.json").write_text(json.dumps({**SD1_UNET, "_class_name": "UNet2DConditionModel"}))
    (folder / "vae" / "config.json").write_text(json.dumps({"block_out_channels": [8, 8, 8, 8]}))
    tiny_scheduler().save_config(folder / "scheduler")
    index = {"_class_name": "StableDiffusionPipeline", "scheduler": ["diffusers", "DDIMScheduler"]}
    (folder / "model_index.json").write_text(json.dumps(index))
    save_file({"w": torch.zeros(4)}, folder / "unet" / "diffusion_pytorch_model.safetensors")


@pytest.fixture
def world(tmp_path):
    """A storyboard naming every kind of input, and the files it names."""
    write_model(tmp_path / "model")
    save_file({"lora_unet_x.lora_down.weight": torch.zeros(2, 2)}, tmp_path / "style.safetensors")
    (tmp_path / "net").mkdir()
    (tmp_path / "net" / "config.json").write_text("{}")
    save_file({"w": torch.zeros(2)}, tmp_path / "net" / "diffusion_pytorch_model.safetensors")
    for name, colour in (("pose-a.png", "black"), ("pose-b.png", "white"), ("mask.png", "white"), ("photo.png", "red")):
        Image.new("RGB", (64, 64), colour).save(tmp_path / name)
    spec = {
        "version": 1,
        "model": {
            "id": "model", "dtype": "float32", "device": "cpu",
            "lora": [{"path": "style.safetensors", "name": "style"}], "controlnet": [{"id": "net", "scale": 1.0}],
        },
        "render": {"width": 64, "height": 64, "steps": 8, "guidance": 7.5, "seed": 7, "negative_prompt": ""},
        "anchor": {"prompt": "girl, red shirt, blue skirt", "control": ["pose-a.png"]},
        "frames": [
            {
                "name": "edit", "prompt": "girl, green shirt, blue skirt", "control": ["pose-b.png"], "tween": 1,
                "lora": {"style": 0.5}, "hold": 1,
                "swap": [
                    {"mode": "full", "layers": ["OUT3"], "steps": "1-3"},
                    {"mode": "threshold", "layers": ["OUT4"], "steps": "4-8", "threshold": 0.1},
                    {"mode": "mask", "layers": ["OUT5"], "steps": "4-8", "mask": {"image": "mask.png"}},
                    {"mode": "mask", "layers": ["OUT6"], "steps": "4-8", "mask": {"auto": "attention"}},
                ],
            }
        ],
        "video": {"fps": 8},
        "report": {"background": {"segmenter": "none"}},
    }  # fmt: skip
    return tmp_path, spec


def with_image(spec: dict) -> dict:
    """The storyboard with a real image as the anchor (no ControlNet: one family of inputs at a time)."""
    spec = copy.deepcopy(spec)
    spec["model"]["controlnet"] = []
    del spec["anchor"]["control"], spec["frames"][0]["control"]
    spec["anchor"]["image"] = "photo.png"
    return spec


def keys(folder, spec: dict) -> dict:
    """(render) the key of the frame and of its in-between; (sweep) the folder's fingerprint and the run's key."""
    board = load_storyboard(copy.deepcopy(spec), folder=folder)
    identity = Identity(board, facts_from_files(board.spec.model, board.spec.anchor.image is not None))
    _, tween, *_, frame = shots_of(board)  # the anchor, the frame's first in-between, ..., the frame
    run = Run(tuple(spec["frames"][0]["swap"]), "whole", "run", "")  # the frame's own rules, as a sweep run
    return {
        "frame": identity.shot(frame),
        "tween": identity.shot(tween),
        "sweep": (sweep_fingerprint(board, board.frames[0], [run], identity.facts), run.key),
    }


def rewrite(path, data: bytes = b"changed"):
    """New bytes for a file, as a user's edit or a new download would give it."""
    if path.suffix == ".png":
        Image.new("RGB", (64, 64), "blue").save(path)
    else:
        save_file({"w": torch.ones(3)}, path)


def frame(spec):
    return spec["frames"][0]


def rule(spec, i):
    return frame(spec)["swap"][i]


CHANGES = {  # what changes pixels -> (how to change it, whether a sweep renders it)
    "model weights": (lambda s, f: rewrite(f / "model" / "unet" / "diffusion_pytorch_model.safetensors"), True),
    "variant": (lambda s, f: s["model"].update(variant="fp16"), True),
    "dtype": (lambda s, f: s["model"].update(dtype="bfloat16"), True),
    "device kind": (lambda s, f: s["model"].update(device="cuda"), True),
    "scheduler": (lambda s, f: s["model"].update(scheduler="euler"), True),
    "size": (lambda s, f: s["render"].update(width=72), True),
    "steps": (lambda s, f: s["render"].update(steps=9), True),
    "guidance": (lambda s, f: s["render"].update(guidance=5.0), True),
    "seed": (lambda s, f: s["render"].update(seed=8), True),
    "negative prompt": (lambda s, f: s["render"].update(negative_prompt="blurry"), True),
    # prompts whose edit words stay the same (the words are in the key too): only the text differs
    "anchor prompt": (lambda s, f: s["anchor"].update(prompt="blue skirt, girl, red shirt"), True),
    "frame prompt": (lambda s, f: frame(s).update(prompt="blue skirt, girl, green shirt"), True),
    # the same prompt as a delta: other edit words, so another attention mask
    "edit words": (lambda s, f: frame(s).update(prompt=None, replace={"red": "green"}), True),
    "rule mode": (lambda s, f: rule(s, 0).update(mode="threshold", threshold=0.5), True),
    "rule layers": (lambda s, f: rule(s, 0).update(layers=["OUT2"]), True),
    "rule steps": (lambda s, f: rule(s, 0).update(steps="1-2"), True),
    "rule threshold": (lambda s, f: rule(s, 1).update(threshold=0.2), True),
    "rule reduce": (lambda s, f: rule(s, 1).update(reduce="position"), True),
    "rule relative": (lambda s, f: rule(s, 1).update(relative=True), True),
    "mask kind": (lambda s, f: rule(s, 2).update(mask={"grid": ["10", "01"]}), True),
    "mask words": (lambda s, f: rule(s, 3)["mask"].update(words=["skirt"]), True),
    "mask layers": (lambda s, f: rule(s, 3)["mask"].update(layers=["OUT4"]), True),
    "mask threshold": (lambda s, f: rule(s, 3)["mask"].update(threshold=0.3), True),
    "mask dilate": (lambda s, f: rule(s, 3)["mask"].update(dilate=2), True),
    "mask image bytes": (lambda s, f: rewrite(f / "mask.png"), True),
    "LoRA file": (lambda s, f: rewrite(f / "style.safetensors"), True),
    "LoRA scale": (lambda s, f: s["model"]["lora"][0].update(scale=0.8), True),
    "frame's LoRA scale": (lambda s, f: frame(s).update(lora={"style": 0.25}), True),
    "ControlNet weights": (lambda s, f: rewrite(f / "net" / "diffusion_pytorch_model.safetensors"), True),
    "ControlNet scale": (lambda s, f: s["model"]["controlnet"][0].update(scale=0.5), True),
    "anchor control image bytes": (lambda s, f: rewrite(f / "pose-a.png"), True),
    "frame control image bytes": (lambda s, f: rewrite(f / "pose-b.png"), True),
    "in-between position": (lambda s, f: frame(s).update(tween=2), False),
}
IMAGE_CHANGES = {
    "anchor image bytes": lambda s, f: rewrite(f / "photo.png"),
    "inversion refinement": lambda s, f: s["anchor"]["inversion"].update(refine=1),
    "inversion method": lambda s, f: s["anchor"]["inversion"].update(method="ddim"),
}
SAME = {  # what decides no pixels
    "frame name": lambda s, f: frame(s).update(name="renamed"),
    "hold": lambda s, f: frame(s).update(hold=3),
    "fps": lambda s, f: s["video"].update(fps=24),
    "crf": lambda s, f: s["video"].update(crf=30),
    "checks": lambda s, f: s.update(checks={"max_background_mse": 10}),
    "output": lambda s, f: s.update(output="elsewhere"),
    "layer spelled otherwise": lambda s, f: rule(s, 0).update(layers=["out03"]),  # the same module
}


@pytest.mark.parametrize("name", sorted(CHANGES))
def test_each_input_that_changes_pixels_changes_the_key(world, name):
    folder, spec = world
    before = keys(folder, spec)
    change, swept = CHANGES[name]
    changed = copy.deepcopy(spec)
    change(changed, folder)
    after = keys(folder, changed)
    assert after["tween"] != before["tween"], name
    if name != "in-between position":  # a frame does not depend on the in-betweens before it
        assert after["frame"] != before["frame"], name
    if swept:
        assert after["sweep"] != before["sweep"], name


@pytest.mark.parametrize("name", sorted(IMAGE_CHANGES))
def test_a_real_anchor_image_and_its_inversion_are_in_every_key(world, name):
    folder, spec = world
    spec = with_image(spec)
    spec["anchor"]["inversion"] = {}
    before = keys(folder, spec)
    IMAGE_CHANGES[name](spec, folder)
    after = keys(folder, spec)
    assert after["frame"] != before["frame"] and after["tween"] != before["tween"] and after["sweep"] != before["sweep"]


@pytest.mark.parametrize("name", sorted(SAME))
def test_inputs_that_decide_no_pixels_leave_the_key_alone(world, name):
    folder, spec = world
    before = keys(folder, spec)
    changed = copy.deepcopy(spec)
    SAME[name](changed, folder)
    after = keys(folder, changed)
    assert (after["frame"], after["tween"]) == (before["frame"], before["tween"])
    if name != "layer spelled otherwise":  # sweep runs name layers as the sweep command canonicalised them
        assert after["sweep"] == before["sweep"]


def test_the_facts_read_from_files_are_the_loaded_pipelines(tmp_path):
    """The keys of a render that loads nothing equal those a loaded model would give."""
    from framegen.models.load import load_pipeline
    from framegen.storyboard import ModelSpec

    for spec, image_anchor in [
        (ModelSpec(id="tiny-random"), False),
        (ModelSpec(id="tiny-random", scheduler="euler"), False),
        (ModelSpec(id="demo"), True),
        (ModelSpec(id="demo", prediction="v", dtype="bfloat16"), False),
    ]:
        files, loaded = facts_from_files(spec, image_anchor), facts_of(load_pipeline(spec, image_anchor=image_anchor))
        assert files.scheduler_fields == loaded.scheduler_fields, spec
        assert (files.dtype, files.device, files.config.native) == (loaded.dtype, loaded.device, loaded.config.native)
        assert files.config.layers.layers == loaded.config.layers.layers and files.config.family == loaded.config.family


def test_a_render_with_nothing_to_render_loads_no_model(tmp_path, monkeypatch):
    import framegen.run.job as job
    from framegen.run.job import render_storyboard

    spec = {
        "version": 1, "model": {"id": "tiny-random"}, "render": {"width": 64, "height": 64, "steps": 3, "seed": 2},
        "anchor": {"prompt": "girl, red shirt"}, "swap": [{"mode": "full", "layers": ["OUT3"], "steps": "1-2"}],
        "frames": [{"name": "green", "replace": {"red shirt": "green shirt"}, "tween": 1}],
        "report": {"background": {"segmenter": "none"}},
    }  # fmt: skip
    path = tmp_path / "board.yaml"
    path.write_text(yaml.safe_dump(spec))
    first = render_storyboard(load_storyboard(path))
    monkeypatch.setattr(job, "load_pipeline", lambda *args, **kwargs: pytest.fail("a model was loaded"))
    again = render_storyboard(load_storyboard(path))
    assert again.anchor_cache == "not needed" and all(frame["reused"] for frame in again.frames)
    assert [f["background_mse"] for f in again.frames] == [f["background_mse"] for f in first.frames]
    spec["frames"][0]["hold"] = 4  # no pixel changes: still nothing to render
    path.write_text(yaml.safe_dump(spec))
    held = render_storyboard(load_storyboard(path))
    assert held.anchor_cache == "not needed" and held.report["video"]["frame_count"] == 1 + 1 + 4
