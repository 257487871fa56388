"""Careless and hostile inputs to the newer features (#22): each is one line and the right
exit code, before loading where the storyboard and its files can tell; nothing of the
user's changes; nothing is left in the temp folder."""

import json
import os
import subprocess
import sys

import pytest
import torch
import yaml
from PIL import Image

from .conftest import QUICK_BOARD as BOARD


def test_a_render_leaves_nothing_in_the_temp_folder(tmp_path):
    temp = tmp_path / "temp"
    temp.mkdir()
    path = tmp_path / "board.yaml"
    path.write_text(yaml.safe_dump(BOARD))
    env = dict(os.environ, TMPDIR=str(temp), FRAMEGEN_CACHE=str(tmp_path / "cache"))
    env.pop("TORCHINDUCTOR_CACHE_DIR", None)
    command = [sys.executable, "-m", "framegen", "render", "-q", str(path)]
    run = subprocess.run(command, capture_output=True, text=True, env=env, cwd=tmp_path)
    assert run.returncode == 0, run.stderr[-2000:]
    assert sorted(p.name for p in temp.iterdir()) == []


@pytest.fixture(scope="module")
def rendered(tmp_path_factory):
    """A tiny render's output folder (report.json, frames), made once."""
    from framegen.cli import main

    folder = tmp_path_factory.mktemp("rendered")
    path = folder / "board.yaml"
    path.write_text(yaml.safe_dump(BOARD))
    assert main(["render", "-q", str(path), "-o", str(folder / "out")]) == 0
    return folder / "out"


def cli(capsys, *args) -> tuple[int, str, str]:
    from framegen.cli import main

    code = main([str(a) for a in args])
    out, err = capsys.readouterr()
    return code, out, err


def one_line(err: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert "Error" not in lines[0] and "Errno" not in lines[0] and "Traceback" not in lines[0], lines[0]
    return lines[0]


@pytest.mark.parametrize("limit", ["nan", "inf", "-1"])
def test_a_limit_that_is_no_number_is_an_input_error(rendered, capsys, limit):
    code, _, err = cli(capsys, "check", rendered / "report.json", "--max-background-mse", limit)
    assert code == 2 and "--max-background-mse" in one_line(err) and "finite number" in err


@pytest.mark.parametrize(
    "value, shown", [(None, "no shared background"), ("missing", "no background MSE in the report")]
)
def test_a_frame_without_a_measurement_fails_the_gate_naming_the_frame(rendered, tmp_path, capsys, value, shown):
    report = json.loads((rendered / "report.json").read_text())
    if value == "missing":
        del report["frames"][0]["background_mse"]
    else:
        report["frames"][0]["background_mse"] = value
    path = tmp_path / "report.json"
    path.write_text(json.dumps(report))
    code, _, err = cli(capsys, "check", path, "--max-background-mse", 1e9)
    assert code == 1 and err.startswith(f"check failed: frame 'blue': {shown}")


@pytest.mark.parametrize(
    "value, shown",
    [(float("nan"), "NaN: Input should be a finite number"), (float("inf"), "Infinity: Input should be a finite"),
     ("12", '"12": Input should be a valid number'), (-1.0, "-1.0: Input should be greater than or equal to 0"),
     (True, "true: Input should be a valid number")],
)  # fmt: skip
def test_a_measurement_render_never_writes_is_a_report_check_cannot_trust(rendered, tmp_path, capsys, value, shown):
    """render writes a finite number >= 0 or null: anything else was edited, and the gate
    says so in one line (exit 2) rather than judging a frame by it."""
    report = json.loads((rendered / "report.json").read_text())
    report["frames"][0]["background_mse"] = value
    path = tmp_path / "report.json"
    path.write_text(json.dumps(report))  # json writes NaN and Infinity, as a careless script would
    code, _, err = cli(capsys, "check", path, "--max-background-mse", 1e9)
    assert code == 2 and one_line(err).startswith(f"{path}: frames[0].background_mse: {shown}"), err


def test_a_blank_frame_is_reported_as_blank_not_as_a_number(tmp_path):
    from PIL import Image

    from framegen.output.measure import Measure
    from framegen.output.report import run_checks
    from framegen.output.segmenters import NoSegmenter

    (tmp_path / "frames").mkdir()
    Image.new("RGB", (16, 16), "black").save(tmp_path / "frames" / "0001.png")  # NaN latents decode to this
    entry = {"name": "nan", "index": 1, "image": "frames/0001.png", "heatmap": "heatmaps/0001.png", "reused": False}
    reference = Image.new("RGB", (16, 16), "gray")
    image = Image.open(tmp_path / "frames" / "0001.png")
    frame = Measure(reference, reference, NoSegmenter()).frame(entry, image, 1.0, tmp_path)
    assert frame["blank"] and frame["background_mse"] is None and frame["foreground_mse"] is None
    assert frame["flicker"] is None
    assert run_checks([frame], 1e9)[0]["failing_frames"] == ["nan"]


@pytest.mark.parametrize(
    "change, where",
    [
        (
            lambda s: s["model"].update(lora=[{"path": "style.safetensors", "scale": float("nan")}]),
            "model.lora[0].scale",
        ),
        (lambda s: s["model"].update(lora=[{"path": "style.safetensors", "scale": 50}]), "model.lora[0].scale"),
        (lambda s: s["frames"][0].update(lora={"style": float("inf")}), "frames[0].lora.style"),
        (lambda s: s["model"].update(controlnet=[{"id": "net", "scale": 50}]), "model.controlnet[0].scale"),
        (lambda s: s.update(checks={"max_background_mse": float("nan")}), "checks.max_background_mse"),
        (lambda s: s["render"].update(guidance=float("inf")), "render.guidance"),
    ],
)
def test_nan_infinite_or_absurd_numbers_are_refused_before_loading(tmp_path, capsys, change, where):
    spec = json.loads(json.dumps(BOARD))
    change(spec)
    path = tmp_path / "board.yaml"
    path.write_text(yaml.safe_dump(spec))
    code, _, err = cli(capsys, "validate", path)
    assert code == 2 and f": {where}: " in err.splitlines()[0], err


REPORTS = {
    "missing": (None, "no such file"),
    "binary": (b"\x89PNG\r\n\x1a\n\x00\x00\xff", "a binary file"),
    "truncated": (b'{"framegen_version": "0.3.0", "frames": [{"name": "a"', "cut short"),
    "not JSON": (b"frames: []\n", "not JSON at line 1"),
    "another tool's JSON": (b'{"results": []}', "no framegen_version"),
    "hand-edited": (b'{"framegen_version": "0.3.0", "frames": [{"name": 3}]}', "frames[0].name: 3: Input should be"),
}


@pytest.mark.parametrize("name", sorted(REPORTS))
def test_check_on_a_report_that_is_not_one_is_one_line(tmp_path, capsys, name):
    content, message = REPORTS[name]
    path = tmp_path / "report.json"
    if content is not None:
        path.write_bytes(content)
    code, _, err = cli(capsys, "check", path, "--max-background-mse", 10)
    assert code == 2 and message in one_line(err)


def test_report_on_a_folder_that_is_not_a_render_or_lost_a_frame_is_one_line(rendered, tmp_path, capsys):
    import shutil

    code, _, err = cli(capsys, "report", tmp_path)
    assert code == 2 and "holds no report.json" in one_line(err)
    copy = tmp_path / "copy"
    shutil.copytree(rendered, copy)
    (copy / "frames" / "0001.png").unlink()
    code, _, err = cli(capsys, "report", copy)
    assert code == 2 and "frames/0001.png named in report.json are gone" in one_line(err)


def test_junit_never_replaces_the_report_nor_a_users_file_without_force(rendered, tmp_path, capsys):
    import shutil

    shutil.copy(rendered / "report.json", tmp_path / "report.json")
    report = tmp_path / "report.json"
    notes = tmp_path / "notes.xml"
    notes.write_text("my notes")
    code, _, err = cli(capsys, "check", report, "--max-background-mse", 1e9, "--junit", report)
    assert code == 2 and "is the file being read" in one_line(err)
    code, _, err = cli(capsys, "check", report, "--max-background-mse", 1e9, "--junit", notes)
    assert code == 2 and "--force" in one_line(err) and notes.read_text() == "my notes"
    assert cli(capsys, "check", report, "--max-background-mse", 1e9, "--junit", notes, "--force")[0] == 0
    assert notes.read_text().startswith("<?xml")
    assert cli(capsys, "check", report, "--max-background-mse", 1e9, "--junit", notes)[0] == 0  # framegen's now
    notes.write_text(notes.read_text() + "<!-- mine -->")  # changed by the user: theirs again
    code, _, err = cli(capsys, "check", report, "--max-background-mse", 1e9, "--junit", notes)
    assert code == 2 and notes.read_text().endswith("<!-- mine -->")


def lora_file(path, keys: dict) -> str:
    from safetensors.torch import save_file

    save_file({key: torch.zeros(*shape) for key, shape in keys.items()}, path)
    return path.name


TEXT_DOWN = "unet.down_blocks.0.attentions.0.transformer_blocks.0.attn2.to_k.lora_A.weight"


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda d: lora_file(d / "full.safetensors", {"model.diffusion_model.out.2.weight": (4, 4)}), "is not a LoRA"),
        (lambda d: lora_file(d / "sdxl.safetensors", {TEXT_DOWN: (4, 2048)}), "2048-wide text features"),
        (lambda d: cut(d / "cut.safetensors", lora_file(d / "cut.safetensors", {TEXT_DOWN: (4, 32)})), "cut short"),
    ],
)
def test_a_lora_that_is_none_or_for_another_model_is_one_line_before_loading(tmp_path, capsys, make, message):
    name = make(tmp_path)
    spec = dict(BOARD, model={"id": "tiny-random", "lora": [{"path": name}]})
    path = tmp_path / "board.yaml"
    path.write_text(yaml.safe_dump(spec))
    code, _, err = cli(capsys, "validate", path)
    line = one_line(err)
    assert code == 2 and "model.lora[0].path" in line and message in line and name in line


def cut(path, name: str) -> str:
    path.write_bytes(path.read_bytes()[:-64])
    return name


def test_a_controlnet_for_another_unet_or_as_one_file_is_one_line_before_loading(tmp_path, capsys):
    (tmp_path / "xl").mkdir()
    (tmp_path / "xl" / "config.json").write_text(json.dumps({"block_out_channels": [320, 640, 1280]}))
    lora_file(tmp_path / "xl" / "diffusion_pytorch_model.safetensors", {"w": (4,)})
    lora_file(tmp_path / "net.safetensors", {"controlnet_cond_embedding.conv_in.weight": (16, 3, 3, 3)})
    Image.new("RGB", (64, 64)).save(tmp_path / "pose.png")
    cases = {"xl": "is a ControlNet for another U-Net (block_out_channels [320, 640, 1280]",
             "net.safetensors": "is a single file; a ControlNet loads from its diffusers folder",
             "mynet": "no such file or folder"}  # fmt: skip
    for name, message in cases.items():
        spec = dict(BOARD, model={"id": "tiny-random", "controlnet": [{"id": name}]}, anchor={**BOARD["anchor"]})
        spec["anchor"]["control"] = ["pose.png"]
        path = tmp_path / "board.yaml"
        path.write_text(yaml.safe_dump(spec))
        code, _, err = cli(capsys, "validate", path)
        assert code == 2 and "model.controlnet[0].id" in one_line(err) and message in err, (name, err)


def test_a_16_bit_anchor_image_is_read_at_its_true_values(tmp_path):
    import numpy as np

    from framegen.run.anchor import load_anchor_image
    from framegen.run.render import RenderSettings
    from framegen.storyboard import load_storyboard

    Image.fromarray(np.full((64, 64), 32768, np.uint16)).save(tmp_path / "grey16.png")  # mid-grey, 16 bits
    spec = dict(BOARD, anchor={"prompt": "girl, red shirt", "image": "grey16.png"})
    board = load_storyboard(spec, folder=tmp_path)
    image = load_anchor_image(board, RenderSettings.of(board.spec, 64))
    assert np.asarray(image)[0, 0].tolist() == [128, 128, 128]  # not white


def test_an_image_over_pils_pixel_limit_is_one_line_naming_its_size(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)
    Image.new("L", (64, 64), 255).save(tmp_path / "huge.png")
    spec = dict(BOARD, swap=[{"mode": "mask", "layers": ["OUT3"], "steps": "1", "mask": {"image": "huge.png"}}])
    path = tmp_path / "board.yaml"
    path.write_text(yaml.safe_dump(spec))
    code, _, err = cli(capsys, "validate", path)
    assert code == 2 and "swap[0].mask.image: " in one_line(err) and "64x64 = 4,096 pixels, over the 1,000" in err


def test_a_librarys_warning_is_one_framegen_line(capsys, monkeypatch):
    import warnings

    import framegen.cli as cli_module

    def warns(args):
        message = "Palette images with Transparency expressed in bytes should be converted\nsecond line"
        warnings.warn(message, UserWarning, stacklevel=1)
        return 0

    monkeypatch.setattr(cli_module, "cmd_schema", warns)
    assert cli_module.main(["schema"]) == 0
    err = capsys.readouterr().err
    assert err == "framegen: warning: Palette images with Transparency expressed in bytes should be converted\n"


def test_an_image_framegen_cannot_read_as_rgb_is_one_line(tmp_path, capsys):
    Image.new("LAB", (64, 64)).save(tmp_path / "lab.tif")
    spec = dict(BOARD, swap=[{"mode": "mask", "layers": ["OUT3"], "steps": "1", "mask": {"image": "lab.tif"}}])
    path = tmp_path / "board.yaml"
    path.write_text(yaml.safe_dump(spec))
    code, _, err = cli(capsys, "validate", path)
    assert code == 2 and "has LAB pixels" in one_line(err)


@pytest.mark.parametrize("weights", ["none", "pickle", "cut short"])
def test_a_controlnet_folder_without_whole_safetensors_weights_is_one_line(tmp_path, capsys, weights):
    net = tmp_path / "net"
    net.mkdir()
    (net / "config.json").write_text("{}")
    if weights == "pickle":
        (net / "diffusion_pytorch_model.bin").write_bytes(b"\x80\x04pickle")
    if weights == "cut short":
        cut(
            net / "diffusion_pytorch_model.safetensors",
            lora_file(net / "diffusion_pytorch_model.safetensors", {"w": (64,)}),
        )
    Image.new("RGB", (64, 64)).save(tmp_path / "pose.png")
    spec = dict(BOARD, model={"id": "tiny-random", "controlnet": [{"id": "net"}]})
    spec["anchor"] = {**BOARD["anchor"], "control": ["pose.png"]}
    path = tmp_path / "board.yaml"
    path.write_text(yaml.safe_dump(spec))
    code, _, err = cli(capsys, "validate", path)
    expected = "cut short" if weights == "cut short" else "holds no .safetensors weights"
    assert code == 2 and "model.controlnet[0].id" in one_line(err) and expected in err
