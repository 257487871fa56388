"""Transformers at real size, random weights, offline: FLUX.1's real width (3072, 24 heads)
with fewer blocks, and SD3.5-medium's whole architecture without T5, at 256x256.

    OMP_NUM_THREADS=2 python benchmarks/dit_real_size.py [--families flux-dev,sd35-medium] [--size 256] [--steps 2]

For each, builds the pipeline from framegen's shipped configs and tokenizers
(framegen/models/configs/, tools/dit_configs.py) with random weights in bfloat16, saves it as
a diffusers folder and as the single files users download (tools/dit_checkpoint.py: the
transformer in Black Forest Labs' or Stability's layout, clip_l, clip_g, t5xxl and ae as files
of their own), and renders one storyboard with every rule kind (full, drawn mask, threshold,
kv whole and inside an attention mask, LATENTS blended by attention and by noise masks) on
each with `framegen render` in a fresh process, the single files with HF_HUB_OFFLINE=1.
SD3.5-medium's file loads with the published configs alone; FLUX with fewer blocks than
FLUX.1-dev names its folder as `model.config`. Prints per family: parameters, build and
render wall time, the render's peak RSS, cache bytes against the minimum the layer table
predicts, and whether the files render the folder's frames pixel for pixel.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tools/ and benchmarks/, beside each other
from benchmarks.real_size import render  # noqa: E402
from framegen.models.published import random_pipeline  # noqa: E402
from tools.dit_checkpoint import save_files  # noqa: E402

CHANGES = {  # what differs from the published model: fewer blocks for FLUX, no T5 for SD3.5-medium
    "flux-dev": {"transformer": {"num_layers": 2, "num_single_layers": 2}, "text_encoder_2": {"num_layers": 2}},
    "sd35-medium": {"text_encoder_3": None},
}
BLOCKS = {"flux-dev": (["D0", "D1", "S0", "S1"], ["S0", "S1"]), "sd35-medium": ([f"D{i}" for i in range(24)],
          [f"D{i}" for i in range(12, 24)])}  # fmt: skip


def storyboard(family: str, model: dict, size: int, steps: int) -> dict:
    blocks, late = BLOCKS[family]
    half = max(1, steps // 2)
    first, then = {"steps": f"1-{half}"}, {"steps": f"{min(half + 1, steps)}-{steps}"}
    return {
        "version": 1,
        "model": {"dtype": "bfloat16", "device": "cpu", **model, **({"t5": False} if family.startswith("sd3") else {})},
        "render": {"width": size, "height": size, "steps": steps, "guidance": 3.5, "seed": 1111},
        "anchor": {"prompt": "girl, white hair, red shirt, blue skirt, grass, day, house, tree"},
        "frames": [
            {"name": "full-mask", "replace": {"red shirt": "green shirt"}, "swap": [
                {"mode": "full", "layers": blocks[:2], **first},
                {"mode": "mask", "layers": late, **then, "mask": {"grid": ["1111", "1001", "1111"]}}]},
            {"name": "kv-threshold", "replace": {"blue skirt": "black pants"}, "swap": [
                {"mode": "kv", "layers": blocks, **first},
                {"mode": "threshold", "layers": late, **then, "threshold": 0.1, "relative": True}]},
            {"name": "kv-attention", "add": "night", "remove": "day", "swap": [
                {"mode": "kv", "layers": blocks, "mask": {"auto": "attention"}},
                {"mode": "mask", "layers": ["LATENTS"], **then, "mask": {"auto": "attention"}}]},
            {"name": "noise", "replace": {"house": "castle"}, "swap": [
                {"mode": "mask", "layers": ["LATENTS"], **then, "mask": {"auto": "noise"}}]},
        ],
        "report": {"background": {"segmenter": "none"}},
    }  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--families", default=",".join(CHANGES))
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--steps", type=int, default=2)
    parser.add_argument("--keep", type=Path, help="keep the built folders and renders here")
    args = parser.parse_args()
    print(f"random weights, bfloat16 on CPU, {args.size}x{args.size}, {args.steps} steps, 4 frames + anchor")
    print("| model | transformer parameters | build s | folder render s | peak RSS GB | cache bytes (= minimum) "
          "| files render s (offline) | files == folder, pixels |")  # fmt: skip
    print("|---|---|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as temporary:
        root = args.keep or Path(temporary)
        for family in args.families.split(","):
            start = time.perf_counter()
            pipe = random_pipeline(family, changes=CHANGES[family])
            parameters = sum(p.numel() for p in pipe.transformer.parameters())
            pipe.save_pretrained(root / family / "model", safe_serialization=True)
            layouts = {"files": False, "comfy": True} if family == "flux-dev" else {"files": False}
            files = {way: {k: str(v) for k, v in save_files(pipe, root / family / way, comfy).items()}
                     for way, comfy in layouts.items()}  # fmt: skip
            built = time.perf_counter() - start
            del pipe
            for way in files if family == "flux-dev" else ():  # fewer blocks than FLUX.1-dev: the folder describes them
                files[way]["config"] = str(root / family / "model")
            model = {"id": str(root / family / "model")}
            folder = render(storyboard(family, model, args.size, args.steps), root / family / "folder")
            singles = {way: render(storyboard(family, parts, args.size, args.steps), root / family / f"{way}-render",
                                   offline=True) for way, parts in files.items()}  # fmt: skip
            for way, single in singles.items():
                print(row(family, way, parameters, built, folder, single, root))


def row(family: str, way: str, parameters: int, built: float, folder, single, root: Path) -> str:
    """One table row: the folder's render against one layout of single files."""
    layout = {"files": "BFL's layout" if family.startswith("flux") else "Stability's layout", "comfy": "ComfyUI's"}[way]
    name = f"{family} ({', '.join(f'{k}: {v}' for k, v in CHANGES[family].items())}); files in {layout}"
    if isinstance(folder, str) or isinstance(single, str):
        return f"| {name} | {folder if isinstance(folder, str) else single} |"
    (seconds, peak, report), (file_seconds, _, _) = folder, single
    minimum = predicted(root / family / "model", report)
    cache = f"{report['cache_bytes']:,} ({'=' if report['cache_bytes'] == minimum else '!='} {minimum:,})"
    same = all(
        np.array_equal(*(np.asarray(Image.open(root / family / w / "out" / png)) for w in ("folder", f"{way}-render")))
        for png in ["anchor.png"] + [f"frames/{i:04d}.png" for i in range(1, 5)]
    )
    return (f"| {name} | {parameters / 1e9:.2f} B | {built:.0f} | {seconds:.0f} | {peak / 1e9:.1f} | {cache} "
            f"| {file_seconds:.0f} | {same} |")  # fmt: skip


def predicted(folder: Path, report: dict) -> int:
    """The cache's minimum from the layer table's shapes, for the (module, step) pairs the
    report's rules name."""
    from benchmarks.dit_cache_sizes import meta_pipe
    from framegen.engine.layers import KV, LayerMap
    from framegen.engine.placement import cache_bytes
    from framegen.storyboard.deltas import parse_steps

    pipe = meta_pipe(folder)
    layers = LayerMap.of(pipe.transformer)
    resolved = report["storyboard"]["resolved"]["render"]
    needed = set()
    for frame in report["frames"]:
        for rule in frame["rules"]:
            steps = parse_steps(rule["steps"], resolved["steps"])
            kv = KV if rule["mode"] == "kv" else ""  # a kv rule: the keys and values of each block's attention
            paths = [path for module in rule["modules"] for path in layers.resolve(kv + module)]
            needed |= {(path, step) for path in paths for step in steps}
    return cache_bytes(pipe, needed, resolved["width"], resolved["height"], resolved["steps"], resolved["guidance"])


if __name__ == "__main__":
    main()
