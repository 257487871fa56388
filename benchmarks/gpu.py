"""framegen on a GPU in half precision: overhead per rule kind, batch throughput, and the
device memory each anchor-cache mode costs, as ratios measured in one run.

    python benchmarks/gpu.py                       # CUDA: SD1.5 at 512, SDXL, FLUX.1-dev, SD3.5-large at 1024
    python benchmarks/gpu.py --families sd15 --sizes 512 --steps 20 --repeats 3
    python benchmarks/gpu.py --cpu                 # the CPU fallback: tiny-random at 64, a smoke run

On CUDA the models are the shipped configs with random weights (benchmarks/real_size.py)
in float16 (the U-Nets) and bfloat16 (FLUX.1-dev and SD3.5-large at full size, as people run
them). Prints, per model: the plain diffusers call, the anchor with caching and a
frame per rule kind (whole tensors, a drawn mask, a relative threshold, an attention
mask) as ratios to plain; frames per second at render.batch 1/2/4/8 (and the ratio to
batch 1); and the peak device memory above the plain call's peak with the cache on the
device, in host memory (copied a step ahead) and on disk, against the cache's bytes per
step. Goals (issue #13): frames <= 1.03x plain; batch 4 >= 1.5x batch 1; `cache: cpu`
<= 3 steps' worth of the cache above plain. Without CUDA the same code runs at a tiny
size, so the script cannot rot (a test runs it); its numbers are not a benchmark.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import torch

from framegen.engine.cache import AnchorCache, DiskCache
from framegen.engine.families import denoiser
from framegen.run.prepare import prepare
from framegen.storyboard import load_storyboard

VITAL = "D0, D1, D17, D18, S6, S9, S34, S35, S37"  # Stable Flow's vital blocks of FLUX.1-dev
SD3_RULES = ("D0, D1, D2, D3", "D8, D9, D10, D11, D12, D13", "FINAL")
RULES = {  # the paper's two phases, and the family's exact bound (swapped everywhere: frame == anchor)
    "sd15": ("OUT3, OUT4", "OUT3, OUT4, OUT5, OUT6, OUT10", "OUT11"),
    "sdxl": ("OUT0, OUT1", "OUT0, OUT1, OUT2, OUT3, OUT6", "OUT8"),
    "flux-dev": (VITAL, "S20, S21, S22, S23, S24, S25", "FINAL"),
    "sd35-large": SD3_RULES,
    "sd35-medium": SD3_RULES,
    "tiny": ("OUT3, OUT4", "OUT3, OUT4, OUT5, OUT6, OUT10", "OUT11"),
    "tiny-flux": ("D0, D1", "S0, S1", "FINAL"),
}
DTYPES = {"sd15": torch.float16, "sdxl": torch.float16, "flux-dev": torch.bfloat16, "sd35-large": torch.bfloat16}


def storyboard(model_id: str, first: str, second: str, last: str, size: int, steps: int, batch: int = 1):
    half = steps // 2
    phase = {"mode": "full", "layers": first, "steps": f"1-{half}"}
    later = {"layers": second, "steps": f"{half + 1}-{steps}"}
    kinds = {
        "full": [phase],
        "mask": [phase, {"mode": "mask", **later, "mask": {"grid": ["1111", "1001", "1111"]}}],
        "threshold": [phase, {"mode": "threshold", **later, "threshold": 0.1, "relative": True}],
        "attention": [phase, {"mode": "mask", **later, "mask": {"auto": "attention"}}],
        "kv": [{**phase, "mode": "kv"}, {"mode": "kv", **later, "mask": {"grid": ["1111", "1001", "1111"]}}],
    }
    colours = ["green", "yellow", "purple", "black", "pink", "orange", "gray", "brown"]
    frames = [
        {"name": kind, "replace": {"red shirt": f"{colours[i]} shirt"}, "swap": rules}
        for i, (kind, rules) in enumerate(kinds.items())
    ]
    frames.append({"name": "exact", "replace": {"red shirt": "blue shirt"},
                   "swap": [{"mode": "full", "layers": last, "steps": f"1-{steps}"}]})  # fmt: skip
    frames += [
        {"name": f"batch{i}", "replace": {"red shirt": f"{colour} shirt"}, "swap": kinds["mask"]}
        for i, colour in enumerate(colours)
    ]
    return load_storyboard(
        {
            "version": 1,
            "model": {"id": model_id},
            "render": {"width": size, "height": size, "steps": steps, "guidance": 5.0, "seed": 1111, "batch": batch},
            "anchor": {"prompt": "girl, white hair, red shirt, blue skirt, grass, day, house, tree"},
            "frames": frames,
            "report": {"background": {"segmenter": "none"}},
        }
    )  # fmt: skip


def timed(run, repeats: int, synchronize) -> float:
    samples = []
    for _ in range(repeats):
        synchronize()
        start = time.perf_counter()
        run()
        synchronize()
        samples.append(time.perf_counter() - start)
    return statistics.median(samples)


def interleaved(runs: dict, repeats: int, synchronize) -> dict[str, float]:
    """Each run's median over `repeats` rounds of all runs in turn, so a drift of the
    device's clocks during the measurement falls on every run alike."""
    samples = {label: [] for label in runs}
    for _ in range(repeats):
        for label, run in runs.items():
            samples[label].append(timed(run, 1, synchronize))
    return {label: statistics.median(values) for label, values in samples.items()}


def device_syncs(run) -> int:
    """How often `run` makes the host wait for the device (each wait lets the GPU idle
    while the host queues the next kernels)."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        torch.cuda.set_sync_debug_mode("warn")
        try:
            run()
        finally:
            torch.cuda.set_sync_debug_mode("default")
    return sum("synchronizing" in str(warning.message) for warning in caught)


def measure(name: str, pipe, family: str, size: int, steps: int, repeats: int, cuda: bool) -> None:
    synchronize = torch.cuda.synchronize if cuda else (lambda: None)
    first, second, last = RULES[family]
    board = storyboard(f"random/{family}", first, second, last, size, steps)
    prepared = prepare(board, pipe)
    renderer, settings = prepared.renderer(), prepared.settings
    plans = {plan.name: plan for plan in board.frames}

    def plain():
        generator = torch.Generator("cpu").manual_seed(settings.seed)
        pipe(board.spec.anchor.prompt, width=size, height=size, num_inference_steps=steps,
             guidance_scale=settings.guidance, generator=generator)  # fmt: skip

    plain()  # warm-up: first calls allocate
    anchor = np.asarray(renderer.anchor(board.spec.anchor.prompt))
    exact = np.asarray(renderer.frame(*prepared.shot(plans["exact"])).image)
    print(f"\nexact bound ({last} swapped at every step): frame == anchor bit for bit: {np.array_equal(exact, anchor)}")
    runs = {"plain diffusers": plain, "anchor + caching": lambda: renderer.anchor(board.spec.anchor.prompt)}
    for kind in ("full", "mask", "threshold", "attention", "kv"):
        runs[f"frame: {kind}"] = lambda kind=kind: renderer.frame(*prepared.shot(plans[kind]))
    medians = interleaved(runs, repeats, synchronize)
    syncs = {label: device_syncs(run) if cuda else "-" for label, run in runs.items()}
    base = medians["plain diffusers"]
    print(
        f"\n### {name}, {size}x{size}, {steps} steps, {str(denoiser(pipe).dtype).removeprefix('torch.')}, {pipe.device}"
    )
    print(f"\n| variant | median s ({repeats} rounds) | vs plain | host waits for the device |\n|---|---|---|---|")
    for label, seconds in medians.items():
        print(f"| {label} | {seconds:.3f} | {seconds / base:.3f} | {syncs[label]} |")

    batch_plans = [plan for plan in board.frames if plan.name.startswith("batch")]
    print("\n| render.batch | frames/s | vs batch 1 |\n|---|---|---|")
    rate_one = None
    for size_of_batch in (1, 2, 4, 8):
        shots = [prepared.shot(plan) for plan in batch_plans[:size_of_batch]]
        seconds = timed(lambda shots=shots: renderer.frames(shots), min(repeats, 3), synchronize)
        rate = len(shots) / seconds
        rate_one = rate_one or rate
        print(f"| {size_of_batch} | {rate:.2f} | {rate / rate_one:.2f}x |")

    print("\n| render.cache | device bytes above plain's peak | cache bytes | per step | vs 3 steps' worth |")
    print("|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as folder:
        caches = {
            "device": AnchorCache(prepared.needed),
            "cpu": AnchorCache(prepared.needed, offload=True),
            "disk": DiskCache(prepared.needed, Path(folder) / "anchor-cache"),
        }
        plain_peak = peak_memory(plain, cuda)
        for mode, cache in caches.items():
            mode_renderer = prepared.renderer(cache)
            mode_renderer.anchor(board.spec.anchor.prompt)
            above = peak_memory(lambda r=mode_renderer: r.frame(*prepared.shot(plans["mask"])), cuda) - plain_peak
            if not cuda:  # no device memory to read: what the cache holds where the frame runs
                above = cache.nbytes if mode == "device" else 0
            per_step = max(cache.nbytes, 1) / steps
            print(f"| {mode} | {above:,} | {cache.nbytes:,} | {per_step:,.0f} | {above / (3 * per_step):.2f} |")
            cache.clear()


def peak_memory(run, cuda: bool) -> int:
    if not cuda:
        run()
        return 0
    torch.cuda.synchronize()
    torch.cuda.reset_peak_memory_stats()
    run()
    torch.cuda.synchronize()
    return torch.cuda.max_memory_allocated()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--families", default="sd15,sdxl,flux-dev,sd35-large")
    parser.add_argument("--sizes", default="512,1024,1024,1024", help="one per family")
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--cpu", action="store_true", help="the CPU fallback even where CUDA is available")
    args = parser.parse_args()

    if args.cpu or not torch.cuda.is_available():
        from framegen.models.tiny import tiny_pipeline

        print("CPU fallback (no CUDA, or --cpu): tiny-random at 64x64, float32: a smoke run, not a benchmark")
        pipe = tiny_pipeline()
        pipe.set_progress_bar_config(disable=True)
        measure("tiny-random", pipe, "tiny", 64, min(args.steps, 6), 1, cuda=False)
        from framegen.models.tiny_dit import tiny_flux_pipeline

        pipe = tiny_flux_pipeline()
        pipe.set_progress_bar_config(disable=True)
        measure("tiny-random-flux", pipe, "tiny-flux", 64, min(args.steps, 6), 1, cuda=False)
        return

    from framegen.models.published import random_pipeline

    print(f"CUDA: {torch.cuda.get_device_name()}, torch {torch.__version__}")
    for family, size in zip(args.families.split(","), (int(s) for s in args.sizes.split(","))):
        pipe = random_pipeline(family, dtype=DTYPES.get(family, torch.float16), device="cuda")
        pipe.set_progress_bar_config(disable=True)
        measure(family, pipe, family, size, args.steps, args.repeats, cuda=True)
        del pipe
        torch.cuda.empty_cache()


if __name__ == "__main__":
    main()
