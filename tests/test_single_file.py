"""Single-file checkpoints in the original (LDM / A1111) layout, loaded with the network
cut: the family read from the keys, framegen's shipped configs and CLIP tokenizer, a
`model.config` for other architectures, the noise prediction, LoRAs, and one-line errors.
Checkpoints are written from random pipelines by tools/ldm_checkpoint.py."""

import re
import socket

import numpy as np
import pytest
import torch
import yaml
from PIL import Image
from safetensors.torch import save_file

from framegen.cli import main
from tools.ldm_checkpoint import save


@pytest.fixture
def no_network(monkeypatch):
    def refuse(*args, **kwargs):
        raise OSError("the network is cut in this test")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)


@pytest.fixture(scope="module")
def tiny_files(tmp_path_factory):
    """tiny-random (SD1), tiny SD2-v and tiny SDXL, each as a diffusers folder and as one original-layout file."""
    from framegen.models.tiny import tiny_pipeline, tiny_sd2_pipeline, tiny_sdxl_pipeline

    root = tmp_path_factory.mktemp("single")
    files = {}
    for name, make in (("sd1", tiny_pipeline), ("sd2", tiny_sd2_pipeline), ("sdxl", tiny_sdxl_pipeline)):
        pipe = make()
        pipe.save_pretrained(root / name, safe_serialization=True)
        save(pipe, root / f"{name}.safetensors")
        files[name] = (root / name, root / f"{name}.safetensors")
    return files


def board(model: dict, **render) -> dict:
    return {
        "version": 1,
        "model": model,
        "render": {"width": 64, "height": 64, "steps": 4, "guidance": 5.0, "seed": 3, **render},
        "anchor": {"prompt": "girl, white hair, blue skirt"},
        "swap": [{"mode": "full", "layers": ["OUT1"], "steps": "1-2"}],
        "frames": [{"name": "red", "replace": {"blue skirt": "red skirt"}}],
        "report": {"background": {"segmenter": "none"}},
    }


def render(tmp_path, name: str, spec: dict, capsys) -> list[np.ndarray]:
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(spec))
    assert main(["render", "-q", str(path), "-o", str(tmp_path / name)]) == 0, capsys.readouterr().err
    out = tmp_path / name
    return [np.asarray(Image.open(out / p)) for p in ("anchor.png", "frames/0001.png")]


def test_the_shipped_clip_tokenizer_gives_clips_token_ids_and_each_familys_padding():
    from framegen.models.published import tokenizers

    sd15, sd2, sdxl = tokenizers("sd15"), tokenizers("sd21-v"), tokenizers("sdxl")
    ids = sd15["tokenizer"]("a photo of a cat, red shirt").input_ids
    assert ids == [49406, 320, 1125, 539, 320, 2368, 267, 736, 2523, 49407]  # OpenAI CLIP's ids
    assert len(sd15["tokenizer"]) == 49408 and sd15["tokenizer"].model_max_length == 77
    assert sd15["tokenizer"].pad_token_id == sdxl["tokenizer"].pad_token_id == 49407  # <|endoftext|>
    assert sd2["tokenizer"].pad_token_id == sdxl["tokenizer_2"].pad_token_id == 0  # OpenCLIP pads with "!"


@pytest.mark.parametrize("name", ["sd1", "sd2", "sdxl"])
def test_a_single_file_with_model_config_renders_as_its_folder_bit_for_bit(
    tmp_path, capsys, tiny_files, no_network, name
):
    folder, file = tiny_files[name]
    from_folder = render(tmp_path, "folder", board({"id": str(folder)}), capsys)
    from_file = render(tmp_path, "file", board({"id": str(file), "config": str(folder)}), capsys)
    for a, b in zip(from_folder, from_file):
        assert np.array_equal(a, b)


def test_the_noise_prediction_comes_from_the_storyboard_or_a_v_pred_key(tmp_path, tiny_files, no_network):
    from safetensors.torch import load_file

    from framegen.models.load import load_pipeline
    from framegen.storyboard import ModelSpec

    folder, file = tiny_files["sd1"]
    marked = tmp_path / "marked.safetensors"
    save_file({**load_file(file), "v_pred": torch.zeros(0)}, marked)

    def prediction(path, config=folder, **spec):
        pipe = load_pipeline(ModelSpec(id=str(path), config=str(config), device="cpu", **spec))
        return pipe.scheduler.config.prediction_type

    assert prediction(tiny_files["sd2"][1], config=tiny_files["sd2"][0]) == "v_prediction"  # its config's
    assert prediction(file) == "epsilon"
    assert prediction(marked) == "v_prediction"
    assert prediction(marked, prediction="epsilon") == "epsilon"
    assert prediction(file, prediction="v") == "v_prediction"


@pytest.mark.parametrize("name", ["sd1", "sd2", "sdxl"])
def test_a_lora_applies_to_a_single_file_as_to_its_folder(tmp_path, capsys, tiny_files, no_network, name):
    from diffusers import DiffusionPipeline
    from peft import LoraConfig, get_peft_model_state_dict

    folder, file = tiny_files[name]
    source = DiffusionPipeline.from_pretrained(folder)
    torch.manual_seed(5)
    config = LoraConfig(r=4, lora_alpha=4, target_modules=["to_q", "to_v"], init_lora_weights=False)
    source.unet.add_adapter(config)
    layers = get_peft_model_state_dict(source.unet)
    type(source).save_lora_weights(tmp_path / "lora", unet_lora_layers=layers, safe_serialization=True)
    lora = [{"path": str(tmp_path / "lora" / "pytorch_lora_weights.safetensors"), "scale": 0.9}]
    plain = render(tmp_path, "plain", board({"id": str(file), "config": str(folder)}), capsys)
    from_folder = render(tmp_path, "folder", board({"id": str(folder), "lora": lora}), capsys)
    from_file = render(tmp_path, "file", board({"id": str(file), "config": str(folder), "lora": lora}), capsys)
    assert all(np.array_equal(a, b) for a, b in zip(from_folder, from_file))
    assert not np.array_equal(plain[0], from_file[0])


@pytest.mark.slow
def test_a_real_size_sd15_file_loads_offline_from_the_shipped_configs_alone(tmp_path, no_network):
    """The published SD1.5 architecture with random weights, as one file: no config, no
    tokenizer, no network; every weight arrives where it was."""
    from framegen.models.load import load_pipeline
    from framegen.models.published import random_pipeline
    from framegen.storyboard import ModelSpec

    pipe = random_pipeline("sd15", dtype=torch.bfloat16)
    save(pipe, tmp_path / "sd15.safetensors")
    loaded = load_pipeline(ModelSpec(id=str(tmp_path / "sd15.safetensors"), dtype="bfloat16", device="cpu"))
    for name in ("unet", "vae", "text_encoder"):
        ours, theirs = getattr(pipe, name).state_dict(), getattr(loaded, name).state_dict()
        assert ours.keys() == theirs.keys() and all(torch.equal(ours[k], theirs[k]) for k in ours), name
    assert loaded.scheduler.config.prediction_type == "epsilon" and loaded.unet.config.sample_size == 64
    assert loaded.tokenizer("a cat").input_ids == [49406, 320, 2368, 49407]


def header_only(path, keys: dict[str, tuple]) -> None:
    save_file({key: torch.zeros(shape) for key, shape in keys.items()}, path)


UNET_IN = "model.diffusion_model.input_blocks.0.0.weight"


@pytest.mark.parametrize(
    "keys, family",
    [
        ({UNET_IN: (1, 4, 1, 1), "cond_stage_model.transformer.text_model.final_layer_norm.weight": (1,)}, "sd15"),
        ({UNET_IN: (1, 4, 1, 1), "cond_stage_model.model.ln_final.weight": (1,)}, "sd21-v"),
        ({UNET_IN: (1, 4, 1, 1), "conditioner.embedders.1.model.ln_final.weight": (1,)}, "sdxl"),
    ],
)  # fmt: skip
def test_the_family_is_read_from_the_keys(tmp_path, keys, family):
    from framegen.models.checkpoints import Checkpoint

    header_only(tmp_path / "c.safetensors", keys)
    assert Checkpoint.read(tmp_path / "c.safetensors").family == family


@pytest.mark.parametrize(
    "keys, message",
    [
        ({"lora_unet_down_blocks_0.lora_down.weight": (1,)}, "is not a Stable Diffusion checkpoint: it has no U-Net"),
        ({UNET_IN: (1, 9, 1, 1), "cond_stage_model.model.x": (1,)}, "9 input channels (an inpainting"),
        ({UNET_IN: (1, 4, 1, 1), "conditioner.embedders.0.model.x": (1,)}, "is an SDXL refiner"),
        ({UNET_IN: (1, 4, 1, 1)}, "no text encoder framegen knows"),
    ],
)
def test_a_file_that_is_no_checkpoint_is_one_line_before_loading(tmp_path, capsys, keys, message):
    header_only(tmp_path / "c.safetensors", keys)
    path = tmp_path / "board.yaml"
    path.write_text(yaml.safe_dump(board({"id": "c.safetensors"})))
    assert main(["render", "-q", str(path)]) == 2
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert re.match(rf"{re.escape(str(path))}:\d+:\d+: model.id: ", line) and message in line, line
    if "no U-Net" in message:
        assert "a LoRA? list it under model.lora" in line


def test_a_truncated_file_and_a_misplaced_config_are_one_line(tmp_path, capsys, tiny_files):
    folder, file = tiny_files["sd1"]
    (tmp_path / "cut.safetensors").write_bytes(file.read_bytes()[:1000])
    cases = {
        "cut": ({"id": "cut.safetensors"}, "is not a safetensors checkpoint"),
        "folder": ({"id": str(folder), "config": str(folder)}, "model.config: `config` describes a single-file"),
        "missing": ({"id": str(file), "config": "./nowhere"}, "model.config: no such folder"),
    }
    for name, (model, message) in cases.items():
        path = tmp_path / f"{name}.yaml"
        path.write_text(yaml.safe_dump(board(model)))
        assert main(["render", "-q", str(path)]) == 2, name
        (line,) = capsys.readouterr().err.strip().splitlines()
        assert message in line, line


def test_a_checkpoint_whose_weights_do_not_fit_its_family_fails_in_one_line(tmp_path, capsys, tiny_files):
    """tiny-random's keys say SD1.x, but its shapes are not SD1.5's: its header says so
    before anything loads (validate too), exit 2."""
    _, file = tiny_files["sd1"]
    path = tmp_path / "board.yaml"
    path.write_text(yaml.safe_dump(board({"id": str(file)})))
    for command in ("validate", "render"):
        assert main([command, str(path)]) == 2
        (line,) = capsys.readouterr().err.strip().splitlines()
        place = rf"{re.escape(str(path))}:\d+:\d+: model.id: '{re.escape(str(file))}'"
        assert re.match(place + " does not fit the published sd15 config", line), line
        assert "input_blocks.0.0.weight is [32, 4, 3, 3], not [320, 4, 3, 3]" in line
        assert line.endswith("give `model.config`: a diffusers folder or hub id that describes it"), line


def test_framegen_layers_reads_a_single_files_layers_from_its_family(tmp_path, capsys):
    header_only(tmp_path / "xl.safetensors", {UNET_IN: (1, 4, 1, 1), "conditioner.embedders.1.model.x": (1,)})
    assert main(["layers", str(tmp_path / "xl.safetensors")]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert "grid at 1024x1024" in lines[0]  # SDXL's native size
    names = [line.split()[0] for line in lines[1:] if not line.startswith("LATENTS")]
    assert names[-1] == "OUT8" and "OUT9" not in names
