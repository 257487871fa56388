"""The hostile inputs of the recent features, one test per class of answer that went wrong:
the gate reading its own limits, integers and text the libraries under framegen refuse,
model facts that only loading used to tell, the live page's port, and the library's voice.
Each is one line and exit 2 (before loading where the files can tell), never a traceback or
an exception's class name; tests/test_fuzz.py generates the cases these stand for."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml
from safetensors.torch import save_file

from framegen.cli import main

from .conftest import QUICK_BOARD
from .test_fuzz import CRASH


def answer(capsys, *argv) -> tuple[int, str]:
    """(exit code, the one line on stderr)."""
    code = main([str(a) for a in argv])
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and not CRASH.search(err), err
    return code, lines[0]


def board_file(tmp_path: Path, spec: dict | str, name: str = "board.yaml") -> Path:
    path = tmp_path / name
    path.write_text(spec if isinstance(spec, str) else yaml.safe_dump(spec, allow_unicode=False))
    return path


def quick(**changes) -> dict:
    spec = json.loads(json.dumps(QUICK_BOARD))
    for dotted, value in changes.items():
        *parents, key = dotted.split(".")
        target = spec
        for part in parents:
            target = target[int(part)] if part.isdigit() else target.setdefault(part, {})
        target[key] = value
    if spec["model"]["id"] in ("tiny-random-flux", "tiny-random-sd3"):  # a transformer's layer names
        spec["swap"] = [{"mode": "full", "layers": ["D0"], "steps": "1"}]
    return spec


# ------------------------------------------------------------------ the gate reads its own limits


@pytest.fixture(scope="module")
def report(tmp_path_factory) -> dict:
    folder = tmp_path_factory.mktemp("gate")
    path = board_file(folder, quick(**{"checks.max_background_mse": 1e6}))
    assert main(["render", "-q", str(path), "-o", str(folder / "out")]) == 0
    return json.loads((folder / "out" / "report.json").read_text())


@pytest.mark.parametrize(
    "checks, shown",
    [
        ({"max_background_mse": float("nan")}, "max_background_mse: NaN: Input should be a finite number"),
        ({"max_flicker": float("inf")}, "max_flicker: Infinity: Input should be a finite number"),
        ({"max_background_mse": "100"}, 'max_background_mse: "100": Input should be a valid number'),
        ({"max_background_mse": True}, "max_background_mse: true: Input should be a valid number"),
        ({"max_background_mse": -1}, "max_background_mse: -1: Input should be greater than or equal to 0"),
        (None, "checks: null: Input should be a valid dictionary"),
        ("missing-resolved", "its storyboard's resolved settings are missing"),
    ],
)
def test_the_gate_refuses_limits_in_a_report_it_cannot_trust(report, tmp_path, capsys, checks, shown):
    """Before: `ok: ... <= nan` (exit 0), or a crash naming the exception's class."""
    edited = json.loads(json.dumps(report))
    if checks == "missing-resolved":
        del edited["storyboard"]["resolved"]
    else:
        edited["storyboard"]["resolved"]["checks"] = checks
    path = tmp_path / "report.json"
    path.write_text(json.dumps(edited))
    code, line = answer(capsys, "check", path)
    assert code == 2 and line.startswith(f"{path}: ") and shown in line, line


def test_a_report_render_wrote_passes_the_gate_with_its_own_limits(report, tmp_path, capsys):
    path = tmp_path / "report.json"
    path.write_text(json.dumps(report))
    assert main(["check", str(path)]) == 0
    assert capsys.readouterr().out.startswith("ok: 1 frames, worst background MSE ")


# --------------------------------------------------------------- integers, booleans and text


@pytest.mark.parametrize(
    "changes, where, shown",
    [
        ({"render.seed": 2**64}, "render.seed", "less than or equal to 18446744073709551615"),
        ({"render.seed": -1}, "render.seed", "greater than or equal to 0"),
        ({"render.width": 2**40}, "render.width", "less than or equal to 16384"),
        ({"frames.0.tween": True}, "frames[0].tween", "true is a YAML boolean"),
        ({"frames.0.hold": 2.5}, "frames[0].hold", "2.5 is not a whole number"),
        ({"render.guidance": float("nan")}, "render.guidance", "finite number"),
        ({"anchor.prompt": "girl, red shirt\ud800"}, "anchor.prompt", "the lone surrogate U+D800"),
        ({"model.lora": [{"path": "a\x00b.safetensors"}]}, "model.lora[0].path", "holds a NUL character"),
        ({"frames.0.name": "two\nlines"}, "frames[0].name", "should match pattern"),
    ],
)
def test_a_value_no_library_under_framegen_takes_is_one_positioned_line(tmp_path, capsys, changes, where, shown):
    path = board_file(tmp_path, quick(**changes))
    code, line = answer(capsys, "validate", path)
    assert code == 2 and f": {where}: " in line and shown in line, line
    assert line.startswith(f"{path}:") and line.split(":")[1].isdigit()  # the line of the value


def test_a_seed_at_the_top_of_the_generators_range_renders(tmp_path, capsys):
    path = board_file(tmp_path, quick(**{"render.seed": 2**64 - 1}))
    assert main(["render", "-q", str(path), "-o", str(tmp_path / "out")]) == 0, capsys.readouterr().err


def test_a_character_yaml_refuses_is_placed_at_its_line(tmp_path, capsys):
    path = board_file(tmp_path, 'version: 1\nmodel: {id: tiny-random}\nanchor: {prompt: "a\x07b"}\nframes: [{}]\n')
    code, line = answer(capsys, "validate", path)
    assert code == 2 and line == f"{path}:3:20: invalid YAML: the character U+0007 is not allowed in YAML text"


def test_a_storyboard_nested_thousands_deep_is_one_line(tmp_path, capsys):
    path = board_file(tmp_path, "a: " + "[" * 5000 + "]" * 5000 + "\n")
    code, line = answer(capsys, "validate", path)
    assert code == 2 and "nested too deeply" in line


def test_a_value_is_shown_escaped_so_one_line_stays_one(tmp_path, capsys):
    path = board_file(tmp_path, quick(**{"model.scheduler": "ddim\x1e\x1b[31mred"}))
    code, line = answer(capsys, "validate", path)
    assert code == 2 and "\\x1e\\x1b[31mred" in line


# ---------------------------------------------------------------- model facts before loading


def test_a_noise_scheduler_on_a_flow_model_is_one_line_before_loading(tmp_path, capsys):
    """Before: `set_timesteps() got an unexpected keyword argument 'mu'` after loading."""
    for name in ("ddim", "euler"):
        path = board_file(tmp_path, quick(**{"model.id": "tiny-random-flux", "model.scheduler": name}))
        code, line = answer(capsys, "validate", path)
        assert code == 2 and ": model.scheduler: FLUX.1 is a flow-matching model" in line, line


def test_a_module_path_of_another_familys_layout_is_refused_by_validate(tmp_path, capsys):
    spec = quick(**{"model.id": "tiny-random-flux"})
    spec["swap"] = [{"mode": "full", "layers": ["up_blocks.1.attentions.0"], "steps": "1"}]
    code, line = answer(capsys, "validate", board_file(tmp_path, spec))
    assert code == 2 and "swap[0].layers: unknown layer 'up_blocks.1.attentions.0'" in line
    spec["swap"][0]["layers"] = ["transformer_blocks.0.attn"]  # inside one of its own blocks: still accepted
    assert main(["validate", str(board_file(tmp_path, spec))]) == 0


@pytest.fixture(scope="module")
def flux_files(tmp_path_factory):
    from framegen.models.tiny_dit import tiny_flux_pipeline
    from tools.dit_checkpoint import save_files

    root = tmp_path_factory.mktemp("flux-files")
    pipe = tiny_flux_pipeline()
    pipe.save_pretrained(root / "folder", safe_serialization=True)
    return root, save_files(pipe, root / "parts")


def test_a_transformer_file_that_does_not_fit_its_config_is_one_line_before_loading(tmp_path, capsys, flux_files):
    """Before: `split_with_sizes ...` from inside diffusers' converter, exit 3."""
    root, parts = flux_files
    spec = quick(**{"model.id": "tiny-random-flux"})
    spec["model"] = {key: str(value) for key, value in parts.items()}
    code, line = answer(capsys, "validate", board_file(tmp_path, spec))
    assert code == 2 and ": model.id: " in line
    assert "has 2 double_blocks; the published flux-dev config has 19; give `model.config`" in line
    spec["model"]["config"] = str(root / "folder")  # the config that describes it
    assert main(["validate", str(board_file(tmp_path, spec))]) == 0, capsys.readouterr().err


def lora(path: Path, modules: dict[str, tuple[int, int]], kohya: bool = False, prefix: str = "unet.") -> Path:
    """A LoRA file changing `modules` (name -> (input, output) width), in diffusers' or kohya's names."""
    tensors = {}
    for name, (inputs, outputs) in modules.items():
        if kohya:
            tensors[f"lora_unet_{name.replace('.', '_')}.lora_down.weight"] = torch.zeros(4, inputs)
            tensors[f"lora_unet_{name.replace('.', '_')}.lora_up.weight"] = torch.zeros(outputs, 4)
        else:
            tensors[f"{prefix}{name}.lora_A.weight"] = torch.zeros(4, inputs)
            tensors[f"{prefix}{name}.lora_B.weight"] = torch.zeros(outputs, 4)
    save_file(tensors, path)
    return path


SD15_QUERY = "down_blocks.0.attentions.0.transformer_blocks.0.attn1.to_q"


@pytest.mark.parametrize(
    "model, make, shown",
    [
        # SD1.5's widths on the tiny U-Net: before, 3-15 lines of diffusers' size mismatches, then exit 3
        ("tiny-random", lambda d: lora(d / "sd15.safetensors", {SD15_QUERY: (320, 320)}), "320-wide input"),
        ("tiny-random", lambda d: lora(d / "k.safetensors", {SD15_QUERY: (320, 320)}, kohya=True), "320-wide input"),
        # SDXL in kohya's original-layout names: its text width on an SD1 U-Net's own numbering
        ("tiny-random", lambda d: save_file({
            "lora_unet_input_blocks_1_1_transformer_blocks_0_attn2_to_k.lora_down.weight": torch.zeros(4, 2048),
            "lora_unet_input_blocks_1_1_transformer_blocks_0_attn2_to_k.lora_up.weight": torch.zeros(32, 4),
        }, d / "xl.safetensors") or d / "xl.safetensors", "2048-wide text features"),
        ("tiny-random", lambda d: lora(d / "deep.safetensors", {"down_blocks.7.attentions.0.proj_in": (32, 32)}),
         "it changes down_blocks.7.attentions.0.proj_in, which model.id's denoiser lacks"),
        # a FLUX.1 LoRA on SD3 of the same width: before, partly applied without a word
        ("tiny-random-sd3", lambda d: lora(d / "flux.safetensors", {"single_transformer_blocks.0.attn.to_q": (32, 32),
         "transformer_blocks.0.attn.to_q": (32, 32)}, prefix="transformer."), "is a LoRA for FLUX.1: it changes"),
        ("tiny-random-flux", lambda d: lora(d / "unet.safetensors", {SD15_QUERY: (32, 32)}), "is a LoRA for a U-Net"),
    ],
)  # fmt: skip
def test_a_lora_made_for_another_model_is_one_line_before_loading(tmp_path, capsys, model, make, shown):
    path = make(tmp_path)
    spec = quick(**{"model.id": model, "model.lora": [{"path": str(path)}]})
    for command in ("validate", "render"):
        code, line = answer(capsys, command, board_file(tmp_path, spec), *(["-q"] if command == "render" else []))
        assert code == 2 and ": model.lora[0].path: " in line and shown in line, line
    assert not [p for p in (tmp_path / "out").rglob("*") if p.is_file()]  # nothing loaded, nothing written


def test_a_lora_made_for_the_model_passes(tmp_path, capsys):
    path = lora(tmp_path / "ok.safetensors", {"up_blocks.1.attentions.0.transformer_blocks.0.attn1.to_q": (64, 64)})
    spec = quick(**{"model.lora": [{"path": str(path)}]})
    assert main(["validate", str(board_file(tmp_path, spec))]) == 0, capsys.readouterr().err


# ------------------------------------------------------------------------ commands and options


def test_framegen_layers_answers_files_it_cannot_read_in_one_line(tmp_path, capsys):
    path = lora(tmp_path / "style.safetensors", {SD15_QUERY: (32, 32)})
    code, line = answer(capsys, "layers", path)
    assert code == 2 and "is not a Stable Diffusion checkpoint" in line and "a LoRA? list it under model.lora" in line
    code, line = answer(capsys, "layers", "./models/nowhere")
    assert code == 2 and "no such folder" in line  # a local path, not a hub id


def test_a_hub_id_offline_is_one_line_with_no_librarys_warning(tmp_path):
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_HOME": str(tmp_path / "hub")}
    result = subprocess.run([sys.executable, "-m", "framegen", "layers", "org/name"], capture_output=True, text=True,
                            env=env, cwd=tmp_path, timeout=120)  # fmt: skip
    assert result.returncode == 3 and result.stderr.count("\n") == 1, result.stderr
    assert "warning" not in result.stderr and "cannot read the configs of 'org/name'" in result.stderr


@pytest.mark.parametrize(
    "argv, shown",
    [
        (["sweep", "B", "--probe", "--batch", "0"], "--batch: 0 images per batch"),
        (["sweep", "B", "--probe", "--min-foreground-mse", "nan"], "--min-foreground-mse: nan is no limit"),
        (["render", "B", "--watch", "--port", "70000"], "--port: 70000 is not a port"),
        (["check", "R", "--max-flicker", "inf"], "--max-flicker: inf is no limit"),
        (["layers", "demo", "--width", "-8"], "--width: -8 pixels"),
    ],
)
def test_an_option_value_out_of_range_is_one_line_before_anything_loads(tmp_path, capsys, argv, shown):
    argv = [str(board_file(tmp_path, QUICK_BOARD)) if a == "B" else str(tmp_path / "r.json") if a == "R" else a
            for a in argv]  # fmt: skip
    code, line = answer(capsys, *argv)
    assert code == 2 and line.startswith(f"framegen {argv[0]}: argument ") and shown in line, line


def test_the_sweep_refuses_a_kv_probe_of_a_layer_without_attention(tmp_path, capsys):
    path = board_file(tmp_path, quick(**{"model.id": "tiny-random-flux"}))
    code, line = answer(capsys, "sweep", path, "--probe", "--kv", "--layers", "FINAL", "-q")
    assert code == 2 and line.startswith("--layers: 'FINAL' has no attention for a kv rule"), line


def test_watch_owns_its_port_before_anything_loads(tmp_path, capsys):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        code, line = answer(capsys, "render", board_file(tmp_path, QUICK_BOARD), "--watch", "--port", port)
    assert (
        code == 2
        and line == f"--port {port}: 127.0.0.1:{port} is in use; give another port, or --port 0 for any free one"
    )
    assert not (tmp_path / "out").exists()


def test_a_write_error_on_standard_output_is_one_line():
    if not Path("/dev/full").exists():
        pytest.skip("no /dev/full here")
    with open("/dev/full", "w") as full:
        result = subprocess.run([sys.executable, "-m", "framegen", "schema"], stdout=full, stderr=subprocess.PIPE,
                                text=True, timeout=60)  # fmt: skip
    assert result.returncode == 3 and result.stderr == "framegen: cannot write its output: No space left on device\n"


@pytest.mark.parametrize("kind", ["device", "pipe", "folder"])
def test_a_storyboard_that_is_no_file_is_one_line_not_an_endless_read(tmp_path, capsys, kind):
    """Before: `validate /dev/zero` read without end, its memory growing."""
    if kind == "device":
        path = Path("/dev/zero")
    elif kind == "pipe":
        path = tmp_path / "pipe.yaml"
        os.mkfifo(path)
    else:
        path = tmp_path
    code, line = answer(capsys, "validate", path)
    assert code == 2 and line.startswith(f"{path}: cannot read storyboard: it is "), line


def test_a_storyboard_larger_than_any_is_refused_before_it_is_read(tmp_path, capsys):
    path = tmp_path / "huge.yaml"
    path.write_bytes(b"version: 1\n")
    os.truncate(path, 65 << 20)  # sparse: no disk is written
    code, line = answer(capsys, "validate", path)
    assert code == 2 and line == f"{path}: cannot read storyboard: it is over 64 MB, too large for one"
