"""`accelerate launch` with two CPU processes renders what one process renders."""

import json
import os
import socket
import subprocess
import sys

import pytest

from .conftest import TINY_BOARD


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


FLUX = {"tiny-random}": "tiny-random-flux}", "OUT3, OUT4]": "D0, S1]", "OUT3, OUT4, OUT5, OUT6, OUT10]": "S0, S1]",
        "mode: full, layers: [D0": "mode: kv, layers: [D0"}  # fmt: skip


@pytest.mark.parametrize("family", ["sd1", "flux"])
def test_two_processes_equal_one(tmp_path, family):
    text = TINY_BOARD.lstrip().replace(
        "smile, remove: outdoor}", "smile, remove: outdoor}\n  - {name: night, add: night}"
    )
    for old, new in FLUX.items() if family == "flux" else ():
        text = text.replace(old, new)
    board = tmp_path / "board.yaml"
    board.write_text(text)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    launch = [sys.executable, "-m", "accelerate.commands.accelerate_cli", "launch", "--multi_gpu",
              "--num_processes", "2", "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no",
              "--main_process_port", str(free_port())]  # fmt: skip
    two = subprocess.run(
        [*launch, "-m", "framegen", "render", "-q", str(board), "-o", str(tmp_path / "two")],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert two.returncode == 0, two.stderr[-2000:]
    one = subprocess.run(
        [sys.executable, "-m", "framegen", "render", "-q", str(board), "-o", str(tmp_path / "one")],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert one.returncode == 0, one.stderr[-2000:]

    assert (tmp_path / "two" / "clip.mp4").read_bytes() == (tmp_path / "one" / "clip.mp4").read_bytes()
    reports = [json.loads((tmp_path / name / "report.json").read_text()) for name in ("one", "two")]
    for key in ("background_mse", "foreground_mse", "rules", "masks", "reused", "image"):
        assert [f[key] for f in reports[0]["frames"]] == [f[key] for f in reports[1]["frames"]], key
    # the shared anchor cache went to disk, sealed by process 0
    assert (tmp_path / "two" / "anchor-cache" / "manifest.json").exists()
    assert len(reports[1]["frames"]) == 4
    from framegen.output.files import read_png_text

    made_by = [read_png_text(tmp_path / "two" / f["image"]).get("framegen-process") for f in reports[1]["frames"]]
    assert made_by == ["0", "1", "0", "1"]  # every other frame
