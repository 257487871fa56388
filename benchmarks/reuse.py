"""A render with nothing left to render, at SD1.5 size: the time and memory it takes to
conclude that every shot is already in place.

    python benchmarks/reuse.py [--keep DIR] [--framegen OTHER_CHECKOUT]

Builds SD1.5's architecture with random weights (framegen's shipped configs, bfloat16) as
one original-layout checkpoint, renders a storyboard of 3 frames (one with 2 in-betweens)
from it at 64x64 in 2 steps (float32, as `dtype: auto` is on a CPU) with `framegen render`
in a fresh process, then renders it again unchanged, and prints both runs' wall time and
peak RSS (the child's own VmHWM). `--framegen DIR` runs
another checkout's framegen (on PYTHONPATH) instead, for a before/after table.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
import yaml

from framegen.models.published import random_pipeline

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tools/, beside benchmarks/
from tools.ldm_checkpoint import pipeline_to_ldm  # noqa: E402

# the peak of this process's own memory (VmHWM): getrusage's ru_maxrss survives exec, so in a
# child of this script it would report the parent's peak (the built checkpoint) instead
CHILD = """
import re, sys
import framegen
print("framegen-from", framegen.__file__, file=sys.stderr)
from framegen.cli import main
code = main(sys.argv[1:])
status = open("/proc/self/status").read()
print("peak-rss-kb", re.search(r"VmHWM:\\s+(\\d+) kB", status)[1], file=sys.stderr)
sys.exit(code)
"""


def checkpoint(root: Path) -> Path:
    """SD1.5 with random weights as one original-layout file (built once per --keep folder)."""
    from safetensors.torch import save_file

    file = root / "sd15.safetensors"
    if not file.is_file():
        save_file(pipeline_to_ldm(random_pipeline("sd15", dtype=torch.bfloat16)), str(file))
    return file


def storyboard(file: Path) -> dict:
    return {
        "version": 1,
        "model": {"id": str(file), "scheduler": "ddim"},  # dtype auto: float32 on a CPU
        "render": {"width": 64, "height": 64, "steps": 2, "seed": 1},
        "anchor": {"prompt": "girl, red shirt, blue skirt, outdoor"},
        "swap": [{"mode": "full", "layers": "OUT3, OUT4", "steps": "1"}],
        "frames": [
            {"name": "green", "replace": {"red shirt": "green shirt"}},
            {"name": "walk", "add": "walking", "tween": 2},
            {"name": "night", "replace": {"outdoor": "night"}},
        ],
        "report": {"background": {"segmenter": "none"}},
    }


def render(board: Path, out: Path, framegen: Path | None) -> tuple[float, int, dict]:
    """(wall seconds, peak RSS bytes, report.json) of `framegen render` in a fresh process."""
    env = dict(os.environ, HF_HUB_OFFLINE="1")
    if framegen is not None:
        env["PYTHONPATH"] = str(framegen)
    start = time.perf_counter()
    child = subprocess.run(
        [sys.executable, "-c", CHILD, "render", "-q", str(board), "-o", str(out)],
        capture_output=True,
        text=True,
        env=env,
        cwd=board.parent,  # not a checkout: `python -c` puts the working folder first on the path
    )
    seconds = time.perf_counter() - start
    if child.returncode != 0:
        raise SystemExit(f"render failed ({child.returncode}): {child.stderr.strip()[-500:]}")
    lines = child.stderr.splitlines()
    peak = int(next(line for line in lines if line.startswith("peak-rss-kb")).split()[1]) * 1024
    print(next(line for line in lines if line.startswith("framegen-from")))
    return seconds, peak, json.loads((out / "report.json").read_text())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--keep", type=Path, help="keep the checkpoint and renders here (and reuse the checkpoint)")
    parser.add_argument("--framegen", type=Path, help="another checkout to run (its folder holding framegen/)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as temporary:
        root = args.keep or Path(temporary)
        root.mkdir(parents=True, exist_ok=True)
        start = time.perf_counter()
        file = checkpoint(root)
        print(f"checkpoint: {file.stat().st_size / 1e9:.2f} GB ({time.perf_counter() - start:.0f} s)")
        board = root / "board.yaml"
        board.write_text(yaml.safe_dump(storyboard(file), sort_keys=False))
        out = root / ("out-" + (args.framegen.name if args.framegen else "this"))
        print("SD1.5 single file (bfloat16 weights), rendered in float32 (dtype auto on a CPU), 64x64, 2 steps")
        print("| render | wall s | peak RSS GB | anchor cache | frames reused |")
        print("|---|---|---|---|---|")
        for name in ("first", "again, nothing changed"):
            seconds, peak, report = render(board, out, args.framegen)
            reused = sum(frame["reused"] for frame in report["frames"])
            print(
                f"| {name} | {seconds:.1f} | {peak / 1e9:.2f} | {report['anchor_cache']} "
                f"| {reused} of {len(report['frames'])} |"
            )


if __name__ == "__main__":
    main()
