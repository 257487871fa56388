"""Scale (issue #6), measured in one run:

    python benchmarks/scale.py [--frames 8]

1. Throughput of the demo model at render.batch 1, 2 and 4 (frames per second, ratio
   to batch 1), frames of the demo storyboard's kind with the paper's two-phase rules.
2. Device bytes held by the anchor cache under each `render.cache` mode for the paper's
   setting (waifu-diffusion = SD1.5-shaped U-Net, 640x896, fp16, guidance, 50 steps,
   full OUT3+OUT4 steps 1-20 then mask OUT3,4,5,6,10 steps 21-50), from tensor shapes
   on the meta device: no weights are loaded.
3. A second render with `cache: disk` against the first (anchor reused, frames
   rendered again), and a third with every frame reused too.
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from pathlib import Path

import torch

from framegen.models.demo import load_pipeline
from framegen.run.job import render_storyboard
from framegen.storyboard import load_storyboard

COLOURS = ["green", "yellow", "purple", "pink", "orange", "black", "gray", "brown", "white", "blue", "red"]

BOARD = """
version: 1
model: {{id: demo, scheduler: ddim}}
render: {{steps: 30, guidance: 3.0, seed: 3, batch: {batch}, cache: {cache}}}
anchor: {{prompt: "girl, white hair, red shirt, blue skirt, grass, day, house, tree"}}
swap:
  - {{mode: full, layers: [OUT3, OUT4], steps: "1-12"}}
  - {{mode: mask, layers: [OUT3, OUT4, OUT5, OUT6, OUT10], steps: "13-30",
     mask: {{grid: ["1111", "1001", "1001", "1111"]}}}}
frames:
{frames}
report: {{background: {{segmenter: none}}}}
"""

SD15_UNET = dict(
    sample_size=64, in_channels=4, out_channels=4, layers_per_block=2, block_out_channels=(320, 640, 1280, 1280),
    down_block_types=("CrossAttnDownBlock2D",) * 3 + ("DownBlock2D",),
    up_block_types=("UpBlock2D",) + ("CrossAttnUpBlock2D",) * 3,
    cross_attention_dim=768, attention_head_dim=8,
)  # fmt: skip


def board(folder: Path, frames: int, batch: int = 1, cache: str = "device") -> Path:
    lines = "\n".join(
        f'  - {{name: f{i}, replace: {{"red shirt": "{COLOURS[i % len(COLOURS)]} shirt"}}}}' for i in range(frames)
    )
    path = folder / f"b{batch}-{cache}.yaml"
    path.write_text(BOARD.format(batch=batch, cache=cache, frames=lines))
    return path


def paper_cache_bytes() -> dict[str, int]:
    """Per (module, step) bytes of the paper's needed pairs on an SD1.5-shaped U-Net."""
    from diffusers import UNet2DConditionModel

    from framegen.engine.layers import LayerMap

    with torch.device("meta"):
        unet = UNet2DConditionModel(**SD15_UNET).to(torch.float16)
    layers = LayerMap.of(unet)
    sizes: dict[str, int] = {}
    hooks = [
        unet.get_submodule(layers.module_path(name)).register_forward_hook(
            lambda module, args, output, name=name: sizes.__setitem__(
                name, (output[0] if isinstance(output, tuple) else output).nbytes
            )
        )
        for name in ("OUT3", "OUT4", "OUT5", "OUT6", "OUT10")
    ]
    latents = torch.empty(2, 4, 896 // 8, 640 // 8, device="meta", dtype=torch.float16)  # [uncond, cond]
    unet(
        latents,
        torch.tensor(999, device="meta"),
        encoder_hidden_states=torch.empty(2, 77, 768, device="meta", dtype=torch.float16),
    )
    for hook in hooks:
        hook.remove()
    steps = {name: list(range(1, 21)) for name in ("OUT3", "OUT4")}
    for name in ("OUT3", "OUT4", "OUT5", "OUT6", "OUT10"):
        steps[name] = steps.get(name, []) + list(range(21, 51))
    per_step = {s: sum(sizes[n] for n in steps if s in steps[n]) for s in range(1, 51)}
    total = sum(per_step.values())
    two_steps = max(per_step[s] + per_step.get(s + 1, 0) for s in per_step)
    largest = max(sizes.values())
    return {"device": total, "cpu": two_steps, "disk": largest, "sizes": sizes}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--frames", type=int, default=8)
    args = parser.parse_args()
    pipe = load_pipeline()
    pipe.set_progress_bar_config(disable=True)
    threads = torch.get_num_threads()
    print(f"CPU, torch threads {threads}; demo model 64x64, 30 DDIM steps, guidance 3, {args.frames} frames")
    with tempfile.TemporaryDirectory() as folder:
        folder = Path(folder)
        render_storyboard(load_storyboard(board(folder, 2)), folder / "warm", pipe=pipe)  # first calls allocate
        print("\n| render.batch | frames/s | vs batch 1 |\n|---|---|---|")
        base = None
        for batch in (1, 2, 4):
            out = folder / f"batch{batch}"
            start = time.perf_counter()
            render_storyboard(load_storyboard(board(folder, args.frames, batch)), out, pipe=pipe)
            seconds = time.perf_counter() - start
            rate = args.frames / seconds
            base = base or rate
            print(f"| {batch} | {rate:.2f} | {rate / base:.2f}x |")

        print("\n| render.cache: disk | wall s | vs first |\n|---|---|---|")
        path, out = board(folder, args.frames, 1, "disk"), folder / "disk"
        times = []
        for label in ("first (anchor built)", "second (anchor reused, frames rendered)", "third (everything reused)"):
            if label.startswith("second"):
                shutil.rmtree(out / "frames")
            start = time.perf_counter()
            report = render_storyboard(load_storyboard(path), out, pipe=pipe).report
            times.append(time.perf_counter() - start)
            print(f"| {label}: anchor_cache {report['anchor_cache']} | {times[-1]:.2f} | {times[-1] / times[0]:.2f}x |")

    paper = paper_cache_bytes()
    print("\nPaper setting on an SD1.5-shaped U-Net (meta device), 640x896 fp16 with guidance:")
    print("per-call tensor bytes: " + ", ".join(f"{n} {b:,}" for n, b in paper["sizes"].items()))
    print("| render.cache | device bytes held by the cache |\n|---|---|")
    print(f"| device | {paper['device']:,} (all 50 steps) |")
    print(f"| cpu | {paper['cpu']:,} (two steps in flight: {paper['cpu'] / paper['device']:.3f} of device) |")
    print(f"| disk | {paper['disk']:,} (one tensor at a time, read from disk) |")
    print(
        "GPU: no GPU was lent to this task, so batch-4 vs batch-1 and cpu vs device cache time on CUDA "
        "are not measured."
    )


if __name__ == "__main__":
    main()
