"""`framegen render / check / layers / validate` end to end on tiny-random."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from framegen.cli import main

from .conftest import TINY_BOARD


def run(capsys, *argv):
    code = main(list(map(str, argv)))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture(scope="module")
def rendered(tmp_path_factory):
    """One render of the tiny board, shared by the tests that only read its output."""
    folder = tmp_path_factory.mktemp("render")
    board = folder / "board.yaml"
    board.write_text(TINY_BOARD.lstrip())
    assert main(["render", "-q", str(board), "-o", str(folder / "out")]) == 0
    return folder / "out"


def test_help_does_not_import_torch():
    code = (
        "import sys\nfrom framegen.cli import main\n"
        "try:\n    main(['--help'])\nexcept SystemExit: pass\n"
        "print('torch' in sys.modules)"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert "usage: framegen" in result.stdout and result.stdout.strip().endswith("False")


def test_render_writes_frames_video_and_report(rendered):
    import imageio_ffmpeg
    from PIL import Image

    assert sorted(p.name for p in (rendered / "frames").iterdir()) == ["0001.png", "0002.png", "0003.png"]
    assert Image.open(rendered / "anchor.png").size == (64, 64)
    reader = imageio_ffmpeg.read_frames(str(rendered / "clip.mp4"))
    meta = next(reader)
    assert meta["size"] == (64, 64) and meta["codec"] == "h264" and meta["pix_fmt"].startswith("yuv420p")
    assert sum(1 for _ in reader) == 1 + 3 + 1 + 1  # anchor, then each frame `hold` times
    report = json.loads((rendered / "report.json").read_text())
    assert report["video"] == {"path": "clip.mp4", "fps": 4.0, "frame_count": 6}
    assert report["model"] == {"id": "tiny-random", "dtype": "float32", "device": "cpu"}
    assert [f["name"] for f in report["frames"]] == ["pants", "smile", "free"]
    pants = report["frames"][0]
    assert pants["rules"][0] == {
        "mode": "full",
        "layers": ["OUT3", "OUT4"],
        "modules": ["up_blocks.1.attentions.0", "up_blocks.1.attentions.1"],
        "steps": "1-3",
    }
    assert pants["rules"][1]["steps"] == "4-8" and pants["background_fraction"] == 1.0
    assert pants["background_mse"] > 0 and pants["foreground_mse"] is None
    # OUT3+OUT4 (16 and 16 channels... of the tiny U-Net) at 3 steps, plus the 5 mask layers at 5 steps
    assert report["cache_bytes"] > 0 and report["cache_entries"] == 2 * 3 + 5 * 5
    assert report["checks"] == []
    csv_lines = (rendered / "report.csv").read_text().splitlines()
    assert csv_lines[0].startswith("index,name,prompt,image,background_mse") and len(csv_lines) == 4
    assert not [p for p in rendered.rglob(".*")]  # no temporary files left


def test_frame_with_no_rules_is_a_plain_render(rendered, tiny_pipe):
    import numpy as np
    import torch
    from PIL import Image

    plain = tiny_pipe(
        "a full prompt instead of a delta", width=64, height=64, num_inference_steps=8, guidance_scale=7.5,
        generator=torch.Generator("cpu").manual_seed(7),
    ).images[0]  # fmt: skip
    assert np.array_equal(np.asarray(plain), np.asarray(Image.open(rendered / "frames" / "0003.png")))


def test_check_command_and_junit(rendered, capsys, tmp_path):
    report = rendered / "report.json"
    code, out, _ = run(capsys, "check", report, "--max-background-mse", 1e9, "--junit", tmp_path / "j.xml")
    assert code == 0 and out.startswith("ok: 3 frames")
    assert 'failures="0"' in (tmp_path / "j.xml").read_text()
    code, _, err = run(capsys, "check", report, "--max-background-mse", 0)
    assert code == 1
    assert "frame 'pants': background MSE" in err and "frame 'free'" in err
    code, _, err = run(capsys, "check", tmp_path / "j.xml", "--max-background-mse", 1)
    assert code == 2 and "not a framegen report" in err


def test_failing_check_exits_1_naming_frames(tmp_path, capsys):
    board = tmp_path / "b.yaml"
    board.write_text(TINY_BOARD.lstrip() + "checks: {max_background_mse: 0.001}\n")
    code, _, err = run(capsys, "render", "-q", board)
    assert code == 1
    assert err.count("check failed: frame") == 3  # every frame differs from the anchor somewhere
    assert json.loads((tmp_path / "out" / "b" / "report.json").read_text())["checks"][0]["passed"] is False


def test_invalid_input_is_one_line_exit_2(tmp_path, capsys):
    board = tmp_path / "b.yaml"
    board.write_text(TINY_BOARD.replace("[OUT3, OUT4]", "[OUT3, OUT13]").lstrip())
    code, out, err = run(capsys, "render", board)
    assert code == 2 and out == ""
    assert err.count("\n") == 1 and err.startswith(
        f"{board}:6:33: swap[0].layers: unknown layer 'OUT13' (known: IN0, IN1"
    )
    assert "Traceback" not in err


def test_runtime_failure_is_one_line_exit_3(tmp_path, capsys):
    """A model folder that exists but does not load: known only when loading."""
    (tmp_path / "model").mkdir()
    (tmp_path / "model" / "model_index.json").write_text('{"_class_name": "StableDiffusionPipeline"}')
    board = tmp_path / "b.yaml"
    board.write_text(TINY_BOARD.replace("id: tiny-random", "id: model").lstrip())
    code, _, err = run(capsys, "render", "-q", board)
    assert code == 3 and err.count("\n") == 1 and f"model '{tmp_path / 'model'}' could not be loaded" in err


def test_a_missing_local_model_is_invalid_input_before_loading(tmp_path, capsys):
    """Local model paths resolve against the storyboard's folder, and a missing one is a
    positioned line from `validate` too."""
    board = tmp_path / "b.yaml"
    board.write_text(TINY_BOARD.replace("id: tiny-random", "id: ./no/such/model").lstrip())
    for command in ("validate", "render"):
        code, _, err = run(capsys, command, board)
        assert code == 2 and err.count("\n") == 1
        assert err.startswith(f"{board}:2:13: model.id: no such folder '{tmp_path / 'no/such/model'}'")


def test_failed_render_leaves_earlier_output_intact(rendered, tmp_path, capsys, monkeypatch):
    import shutil

    from framegen.run.render import Renderer

    out = tmp_path / "out"
    shutil.copytree(rendered, out)
    before = {p.relative_to(out): p.read_bytes() for p in out.rglob("*") if p.is_file()}
    calls = []

    def failing(self, shots, on_step=None, controls=None):
        calls.append(shots[0][0])
        if len(calls) == 2:
            raise KeyboardInterrupt
        return original(self, shots, on_step, controls)

    original = Renderer.frames
    monkeypatch.setattr(Renderer, "frames", failing)
    board = tmp_path / "b.yaml"
    board.write_text(TINY_BOARD.replace("seed: 7", "seed: 8").lstrip())
    code, _, err = run(capsys, "render", "-q", board, "-o", out)
    assert code == 130 and "interrupted" in err
    after = {p.relative_to(out): p.read_bytes() for p in out.rglob("*") if p.is_file()}
    assert set(after) == set(before)  # nothing half-written, no temporary files
    changed = {str(p) for p in before if before[p] != after[p]}
    # finished images replaced whole, and recorded as framegen's; report and clip untouched
    assert changed == {"anchor.png", "frames/0001.png", "framegen-files.jsonl"}


def test_layers_command(capsys):
    code, out, _ = run(capsys, "layers", "tiny-random", "--cross-attention")
    lines = out.splitlines()
    assert code == 0 and len(lines) == 1 + 16
    assert lines[0].split()[:3] == ["name", "module", "channels"]
    assert lines[-1].split() == ["OUT11", "up_blocks.3.attentions.2", "32", "16x16", "text"]
    code, out, _ = run(capsys, "layers", "tiny-random", "--width", 640, "--height", 896)
    rows = {line.split()[0]: line.split()[1:] for line in out.splitlines()[1:]}
    assert rows["OUT3"] == ["up_blocks.1.attentions.0", "64", "20x28", "text"]
    assert rows["LATENTS"] == ["latents", "4", "80x112"]  # the scheduler's latents: full grid, no attention
    code, out, _ = run(capsys, "layers", "tiny-random-flux", "--width", 640, "--height", 896)
    lines = out.splitlines()
    rows = {line.split()[0]: line.split()[1:] for line in lines[1:]}
    assert code == 0 and lines[0].split()[3:6] == ["tokens", "at", "640x896"]
    assert list(rows) == ["D0", "D1", "S0", "S1", "FINAL", "LATENTS"]  # double-stream, single-stream, output
    assert rows["D1"] == [
        "transformer_blocks.1",
        "32",
        "40x56",
        "text",
        "+",
        "image,",
        "each",
        "stream",
        "its",
        "own",
        "weights",
    ]
    assert rows["S0"][:3] == ["single_transformer_blocks.0", "32", "40x56"] and rows["LATENTS"] == [
        "latents",
        "16",
        "40x56",
    ]


def test_validate_command(tmp_path, capsys):
    board = tmp_path / "b.yaml"
    board.write_text(TINY_BOARD.lstrip())
    code, out, _ = run(capsys, "validate", board)
    assert code == 0 and "ok (3 frames)" in out


def test_validate_hub_model_offline_defers_layer_check(capsys):
    paper = Path(__file__).resolve().parents[1] / "storyboards" / "paper.yaml"
    code, out, _ = run(capsys, "validate", paper)
    assert code == 0 and "layer names are checked when the model loads" in out


@pytest.mark.parametrize("name", ["demo.yaml", "demo-photo.yaml", "demo-walk.yaml", "demo-flow.yaml"])
def test_the_shipped_demo_storyboards_validate(capsys, name):
    path = Path(__file__).resolve().parents[1] / "storyboards" / name
    code, out, err = run(capsys, "validate", path)
    assert code == 0 and out.startswith(f"{path}: ok"), err
