"""LoRAs on tiny-random, offline: diffusers and kohya/A1111 files, per-frame scales, the
exact bounds with a LoRA loaded, and the keys that cover the LoRA files and scales."""

import json

import numpy as np
import pytest
import torch
import yaml
from PIL import Image

from framegen.cli import main

BOARD = {
    "version": 1,
    "model": {"id": "tiny-random"},
    "render": {"width": 64, "height": 64, "steps": 4, "guidance": 7.5, "seed": 5},
    "anchor": {"prompt": "girl, white hair, blue skirt"},
    "swap": [{"mode": "full", "layers": ["OUT3", "OUT4"], "steps": "1-2"}],
    "frames": [
        {"name": "red", "replace": {"blue skirt": "red skirt"}},
        {"name": "plain", "replace": {"blue skirt": "green skirt"}, "swap": []},
    ],
    "report": {"background": {"segmenter": "none"}},
}


@pytest.fixture(scope="module")
def loras(tmp_path_factory):
    """A random LoRA on the tiny U-Net's attention projections, in diffusers' format and
    converted to kohya's (lora_unet_<module>.lora_down / lora_up / alpha)."""
    from diffusers import StableDiffusionPipeline
    from peft import LoraConfig, get_peft_model_state_dict
    from safetensors.torch import load_file, save_file

    from framegen.models.tiny import tiny_pipeline

    folder = tmp_path_factory.mktemp("loras")
    source = tiny_pipeline()
    torch.manual_seed(5)
    config = LoraConfig(r=4, lora_alpha=4, target_modules=["to_q", "to_k", "to_v", "to_out.0"], init_lora_weights=False)
    source.unet.add_adapter(config)
    StableDiffusionPipeline.save_lora_weights(
        folder / "diffusers", unet_lora_layers=get_peft_model_state_dict(source.unet), safe_serialization=True
    )
    diffusers_file = folder / "diffusers" / "pytorch_lora_weights.safetensors"
    kohya = {}
    for key, tensor in load_file(diffusers_file).items():
        module, _, kind = key.removeprefix("unet.").rpartition(".lora_")
        name = "lora_unet_" + module.replace(".", "_")
        kohya[f"{name}.{'lora_down' if kind.startswith('A') else 'lora_up'}.weight"] = tensor
        kohya[f"{name}.alpha"] = torch.tensor(4.0)
    save_file(kohya, folder / "kohya.safetensors")
    return {"diffusers": diffusers_file, "kohya": folder / "kohya.safetensors"}


def render(tmp_path, name, **changes):
    spec = json.loads(json.dumps(BOARD))
    for key, value in changes.items():
        target, _, field = key.rpartition(".")
        (spec[target] if target else spec)[field] = value
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    assert main(["render", "-q", str(path), "-o", str(tmp_path / name)]) == 0
    out = tmp_path / name
    frames = [np.asarray(Image.open(out / "frames" / f"{i:04d}.png")) for i in (1, 2)]
    return np.asarray(Image.open(out / "anchor.png")), frames, json.loads((out / "report.json").read_text())


def test_a_lora_at_scale_zero_renders_bit_for_bit_as_none_and_both_formats_agree(tmp_path, loras):
    anchor, frames, _ = render(tmp_path, "none")
    zero = render(tmp_path, "zero", **{"model.lora": [{"path": str(loras["diffusers"]), "scale": 0.0}]})
    assert np.array_equal(zero[0], anchor) and all(np.array_equal(a, b) for a, b in zip(zero[1], frames))
    one = render(tmp_path, "one", **{"model.lora": [{"path": str(loras["diffusers"]), "name": "style"}]})
    kohya = render(tmp_path, "kohya", **{"model.lora": [{"path": str(loras["kohya"]), "name": "style"}]})
    assert not np.array_equal(one[0], anchor)  # the LoRA does something
    assert np.array_equal(kohya[0], one[0]) and all(np.array_equal(a, b) for a, b in zip(kohya[1], one[1]))


def test_a_frame_can_turn_a_lora_off_or_change_its_scale(tmp_path, loras):
    _, plain, _ = render(tmp_path, "none")
    lora = {"model.lora": [{"path": str(loras["diffusers"]), "name": "style"}]}
    frames = [BOARD["frames"][0], {**BOARD["frames"][1], "lora": {"style": 0}}]
    anchor, off, report = render(tmp_path, "off", frames=frames, **lora)
    # the unswapped frame with its LoRA off is the plain model's frame; the anchor keeps the LoRA
    assert np.array_equal(off[1], plain[1])
    with_lora, on, _ = render(tmp_path, "on", **lora)
    assert np.array_equal(anchor, with_lora) and not np.array_equal(on[1], off[1])
    half = [BOARD["frames"][0], {**BOARD["frames"][1], "lora": {"style": 0.5}}]
    _, halfway, _ = render(tmp_path, "half", frames=half, **lora)
    assert not np.array_equal(halfway[1], off[1]) and not np.array_equal(halfway[1], on[1])


def test_hooks_and_the_exact_bound_hold_with_a_lora_loaded(loras):
    from framegen.engine import AnchorCache, LayerMap, SwapRule, needed_pairs, record, swapping
    from framegen.models.tiny import tiny_pipeline

    pipe = tiny_pipeline()
    pipe.set_progress_bar_config(disable=True)
    before = LayerMap.of(pipe.unet)
    pipe.load_lora_weights(str(loras["diffusers"]), adapter_name="style")
    after = LayerMap.of(pipe.unet)
    assert [layer.module for layer in after.layers] == [layer.module for layer in before.layers]
    text = frozenset(layer.module for layer in after.cross_attention_layers())
    rules = [SwapRule("full", text, frozenset(range(1, 5)))]
    cache = AnchorCache(needed_pairs(rules))

    def generate(prompt, clock):
        generator = torch.Generator("cpu").manual_seed(1)
        options = dict(width=64, height=64, num_inference_steps=4, generator=generator, output_type="np")
        return pipe(prompt, callback_on_step_end=clock.callback, **options).images[0]

    with record(pipe, 4, cache) as clock:
        anchor = generate("girl, white hair", clock)
    with swapping(pipe, 4, cache, rules) as clock:
        frame = generate("boy, black hair, night", clock)
    assert np.array_equal(frame, anchor)


def test_keys_cover_the_lora_files_and_scales(tmp_path, loras):
    from framegen.models.facts import facts_from_files
    from framegen.run.identity import Identity
    from framegen.run.shots import frame_shot
    from framegen.storyboard import load_storyboard

    def keys(lora, frames=BOARD["frames"]):
        board = load_storyboard({**BOARD, "model": {"id": "tiny-random", "lora": lora}, "frames": frames}, tmp_path)
        identity = Identity(board, facts_from_files(board.spec.model))
        anchor = identity.anchor
        return anchor, [identity.shot(frame_shot(plan)) for plan in board.frames]

    base = keys([{"path": str(loras["diffusers"]), "name": "style"}])
    assert keys([{"path": str(loras["diffusers"]), "name": "style", "scale": 0.7}])[0] != base[0]
    assert keys([{"path": str(loras["kohya"]), "name": "style"}])[0] != base[0]  # other bytes
    one_frame = keys(
        [{"path": str(loras["diffusers"]), "name": "style"}],
        [BOARD["frames"][0], {**BOARD["frames"][1], "lora": {"style": 0}}],
    )
    assert one_frame[0] == base[0] and one_frame[1][0] == base[1][0] and one_frame[1][1] != base[1][1]


@pytest.mark.parametrize(
    "lora, frames, message",
    [
        ([{"path": "missing.safetensors"}], None, "model.lora[0].path: no such file"),
        ([{"path": "notes.txt"}], None, "model.lora[0].path: 'NOTES' is not a .safetensors checkpoint"),
        ([], [{"name": "a", "lora": {"style": 0}}], "frames[0].lora.style: no LoRA named 'style' (known: none"),
    ],
)
def test_lora_mistakes_are_one_line_before_loading(tmp_path, capsys, lora, frames, message):
    (tmp_path / "notes.txt").write_text("not weights")
    spec = {**BOARD, "model": {"id": "tiny-random", "lora": lora}, "frames": frames or BOARD["frames"]}
    path = tmp_path / "board.yaml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    assert main(["validate", str(path)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and message.replace("NOTES", str(tmp_path / "notes.txt")) in err


def test_frames_with_other_lora_scales_do_not_share_a_batch():
    from framegen.run.render import batched

    scales = [("s", 1.0), ("s", 1.0), ("s", 0.0), ("s", 0.0), ("s", 0.0), ("s", 1.0)]
    groups = batched(list(range(6)), 2, alone=lambda i: False, key=lambda i: scales[i])
    assert groups == [[0, 1], [2, 3], [4], [5]]


def test_a_frame_with_its_own_lora_scales_is_reported_under_its_own_name(tmp_path, loras):
    from framegen.output.report import junit_xml

    lora = {"model.lora": [{"path": str(loras["diffusers"]), "name": "style"}], "checks": {"max_background_mse": 0}}
    frames = [{**BOARD["frames"][0], "lora": {"style": 0.5}}, BOARD["frames"][1]]
    spec = json.loads(json.dumps(BOARD))
    spec.update(frames=frames, model={"id": "tiny-random", **{"lora": lora["model.lora"]}}, checks=lora["checks"])
    path = tmp_path / "board.yaml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    assert main(["render", "-q", str(path), "-o", str(tmp_path / "out")]) == 1  # the limit 0 fails both frames
    report = json.loads((tmp_path / "out" / "report.json").read_text())
    assert [frame["name"] for frame in report["frames"]] == ["red", "plain"]
    assert report["checks"][0]["failing_frames"] == ["red", "plain"]
    xml = "".join(junit_xml(report))
    assert 'name="red"' in xml and 'name="style"' not in xml
