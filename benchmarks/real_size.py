"""Real-size architectures, random weights, offline: the code paths at SD1.5, SD2.1-v and
SDXL size.

    OMP_NUM_THREADS=2 python benchmarks/real_size.py [--families sd15,sd21-v,sdxl] [--size 256] [--steps 4]

For each family, builds the pipeline from framegen's shipped configs and CLIP tokenizer
(framegen/models/configs/) with random weights in bfloat16, saves it as a diffusers folder and as
one checkpoint in the original layout (tools/ldm_checkpoint.py), and renders a storyboard
on each with `framegen render` in a fresh process (the file with HF_HUB_OFFLINE=1): a
whole-tensor phase, then a drawn mask, an attention mask and a relative threshold on the
family's own layers. Prints per family: parameters, folder size, build and render wall
time, the render's peak RSS, the anchor cache's bytes against the minimum predicted from
the layer table, and whether the single file renders the folder's frames byte for byte.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import yaml
from PIL import Image

from framegen.models.published import FAMILIES, random_pipeline

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tools/, beside benchmarks/
from tools.ldm_checkpoint import pipeline_to_ldm  # noqa: E402

# the render's own peak (VmHWM): getrusage's ru_maxrss survives exec, so in a child of this
# script, which built the model, it would report the builder's peak
CHILD = """
import re, sys
from framegen.cli import main
code = main(sys.argv[1:])
status = open("/proc/self/status").read()
print("peak-rss-kb", re.search(r"VmHWM:\\s+(\\d+) kB", status)[1], file=sys.stderr)
sys.exit(code)
"""

RULES = {  # the paper's shape on each family's own composition layers
    "sd": ("OUT3, OUT4", "OUT3, OUT4, OUT5, OUT6, OUT10"),
    "sdxl": ("OUT0, OUT1", "OUT0, OUT1, OUT2, OUT3, OUT6"),
}


def build(family: str, folder: Path, file: Path, seed: int = 0) -> int:
    """The family's pipeline with random weights, saved to `folder` and as one original-layout
    checkpoint `file`; returns its parameter count."""
    from safetensors.torch import save_file

    pipe = random_pipeline(family, seed=seed)
    pipe.save_pretrained(folder, safe_serialization=True)
    save_file(pipeline_to_ldm(pipe), str(file))
    parts = ("unet", "vae", "text_encoder", "text_encoder_2")
    return sum(
        p.numel() for name in parts if getattr(pipe, name, None) is not None for p in getattr(pipe, name).parameters()
    )


def storyboard(family: str, folder: Path, size: int, steps: int) -> dict:
    first, second = RULES["sdxl" if family == "sdxl" else "sd"]
    half = steps // 2
    phase = {"mode": "full", "layers": first, "steps": f"1-{half}"}
    later = {"layers": second, "steps": f"{half + 1}-{steps}"}
    grid = {"mode": "mask", **later, "mask": {"grid": ["1111", "1001", "1111"]}}
    attention = {"mode": "mask", **later, "mask": {"auto": "attention"}}
    threshold = {"mode": "threshold", **later, "threshold": 0.1, "relative": True}
    return {
        "version": 1,
        "model": {"id": str(folder), "dtype": "bfloat16", "device": "cpu", "scheduler": "ddim"},  # one call a step
        "render": {"width": size, "height": size, "steps": steps, "guidance": 5.0, "seed": 1111},
        "anchor": {"prompt": "girl, white hair, red shirt, blue skirt, grass, day, house, tree"},
        "frames": [
            {"name": "grid", "replace": {"red shirt": "green shirt"}, "swap": [phase, grid]},
            {"name": "attention", "replace": {"blue skirt": "black pants"}, "swap": [phase, attention]},
            {"name": "threshold", "add": "night", "remove": "day", "swap": [phase, threshold]},
        ],
        "report": {"background": {"segmenter": "none"}},
    }


def render(board: dict, where: Path, offline: bool = False):
    """`framegen render` of `board` in a fresh process: (seconds, peak RSS bytes, report) or the error."""
    path = where / "board.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(board, sort_keys=False))
    env = dict(os.environ, **({"HF_HUB_OFFLINE": "1"} if offline else {}))
    start = time.perf_counter()
    command = [sys.executable, "-c", CHILD, "render", "-q", str(path), "-o", str(where / "out")]
    child = subprocess.run(command, capture_output=True, text=True, env=env)
    seconds = time.perf_counter() - start
    if child.returncode != 0:
        return f"render failed ({child.returncode}): {child.stderr.strip()[-300:]}"
    peak = int(next(line for line in child.stderr.splitlines() if line.startswith("peak-rss-kb")).split()[1]) * 1024
    return seconds, peak, json.loads((where / "out" / "report.json").read_text())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--families", default=",".join(FAMILIES))
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--steps", type=int, default=4)
    parser.add_argument("--keep", type=Path, help="keep the built folders and renders here")
    args = parser.parse_args()

    print(f"random weights, bfloat16 on CPU, {args.size}x{args.size}, {args.steps} steps, 3 frames + anchor")
    print(
        "| family | parameters | folder GB | build s | render s | render peak RSS GB | cache bytes (= minimum) "
        "| single file GB | file render s (offline) | file pixels == folder pixels |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as temporary:
        root = args.keep or Path(temporary)
        for family in args.families.split(","):
            folder, file = root / family / "model", root / family / "model.safetensors"
            start = time.perf_counter()
            parameters = build(family, folder, file)
            built = time.perf_counter() - start
            gigabytes = sum(f.stat().st_size for f in folder.rglob("*") if f.is_file()) / 1e9
            board = storyboard(family, folder, args.size, args.steps)
            from_folder = render(board, root / family / "folder")
            board["model"]["id"] = str(file)
            from_file = render(board, root / family / "file", offline=True)
            if isinstance(from_folder, str) or isinstance(from_file, str):
                print(f"| {family} | {from_folder if isinstance(from_folder, str) else from_file} |")
                continue
            (seconds, peak, report), (file_seconds, _, _) = from_folder, from_file
            minimum = predicted_bytes(folder, report)
            cache = f"{report['cache_bytes']:,} ({'=' if report['cache_bytes'] == minimum else '!='} {minimum:,})"
            same = all(  # pixels: the PNGs' metadata name the model they came from
                np.array_equal(
                    *(np.asarray(Image.open(root / family / way / "out" / name)) for way in ("folder", "file"))
                )
                for name in ("anchor.png", "frames/0001.png", "frames/0002.png", "frames/0003.png")
            )
            print(
                f"| {family} | {parameters / 1e9:.2f} B | {gigabytes:.1f} | {built:.0f} | {seconds:.0f} | "
                f"{peak / 1e9:.1f} | {cache} | {file.stat().st_size / 1e9:.1f} | {file_seconds:.0f} | {same} |"
            )
    print(f"this process's peak RSS (building): {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6:.1f} GB")


def predicted_bytes(folder: Path, report: dict) -> int:
    """The cache's minimum from the layer table's shapes, for the pairs the report's rules name."""
    from diffusers import DiffusionPipeline

    from framegen.engine.layers import LATENTS
    from framegen.engine.placement import cache_bytes
    from framegen.models.schedulers import set_scheduler
    from framegen.storyboard.deltas import parse_steps

    pipe = DiffusionPipeline.from_pretrained(folder, dtype=torch.bfloat16)
    set_scheduler(pipe, "ddim")  # the storyboard's: calls per step decide the bytes
    resolved = report["storyboard"]["resolved"]["render"]
    needed = set()
    for frame in report["frames"]:
        for rule in frame["rules"]:
            steps = parse_steps(rule["steps"], resolved["steps"])
            needed |= {(module, step) for module in rule["modules"] if module != LATENTS for step in steps}
    width, height = report["storyboard"]["width"], report["storyboard"]["height"]
    return cache_bytes(pipe, needed, width, height, resolved["steps"], resolved["guidance"])


if __name__ == "__main__":
    main()
