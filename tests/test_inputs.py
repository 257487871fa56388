"""Careless and hostile inputs to the newer features (#22): each is one line and the right
exit code, before loading where the storyboard and its files can tell; nothing of the
user's changes; nothing is left in the temp folder."""

import os
import subprocess
import sys

import yaml

BOARD = {
    "version": 1,
    "model": {"id": "tiny-random"},
    "render": {"width": 64, "height": 64, "steps": 2, "seed": 1},
    "anchor": {"prompt": "girl, red shirt"},
    "swap": [{"mode": "full", "layers": ["OUT3"], "steps": "1"}],
    "frames": [{"name": "blue", "replace": {"red shirt": "blue shirt"}}],
    "report": {"background": {"segmenter": "none"}},
}


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
