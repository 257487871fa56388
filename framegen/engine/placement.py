"""Where an anchor cache fits: its bytes predicted from the layer table's shapes, and the
choice between the device, host memory and disk."""

from __future__ import annotations

import os
from pathlib import Path

import torch

from .cache import AnchorCache, DiskCache
from .families import denoiser, family_of
from .layers import KV_PROJECTIONS, LATENTS, LayerMap


def cache_bytes(pipe, needed: set[tuple[str, int]], width: int, height: int, steps: int, guidance: float) -> int:
    """Bytes of the anchor cache for `needed` (module paths) on `pipe` at this size, from
    the layer table's shapes: a layer's output, or the keys or values of its attention
    (as wide as the layer), over its grid of image tokens; text tokens are not stored."""
    scheduler = type(pipe.scheduler).from_config(pipe.scheduler.config)  # the pipe's own stays untouched
    shifting = {"mu": 1.0} if scheduler.config.get("use_dynamic_shifting") else {}  # FLUX's: mu shifts, not counts
    scheduler.set_timesteps(steps, **shifting)
    calls_per_step = len(scheduler.timesteps) / steps
    model = denoiser(pipe)
    scale = pipe.vae_scale_factor
    batch = 2 if guidance > 1 and family_of(model.config).true_cfg else 1
    element = torch.empty((), dtype=model.dtype).element_size()
    layers = LayerMap(model.config)
    total = latents = 0
    for module, _ in needed:
        layer = layers.layer_of(module)
        if layer is None or (module != layer.module and not module.endswith(KV_PROJECTIONS)):
            continue  # a raw path inside a block: its width is not in the table
        w, h = layer.grid(width // scale, height // scale)
        if module == LATENTS:  # once per step, no guidance batch
            latents += layer.channels * w * h * element
        else:
            total += layer.channels * w * h * batch * element
    return int(total * calls_per_step) + latents


def free_memory(device) -> int:
    """Bytes free where a cache on `device` would live."""
    if device.type == "cuda":
        return torch.cuda.mem_get_info(device)[0]
    try:
        with open("/proc/meminfo") as meminfo:
            return next(int(line.split()[1]) * 1024 for line in meminfo if line.startswith("MemAvailable:"))
    except (OSError, StopIteration):
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")


def choose_cache(
    mode: str, needed: set[tuple[str, int]], device: torch.device, folder: Path, size: int | None = None
) -> AnchorCache:
    """The cache for `mode`: `device`, `cpu` (host memory; the device's own on a CPU),
    `disk` (in `folder`), or `auto`: on the device if the cache's `size` (cache_bytes)
    takes under half of its free memory, else in host memory under the same rule, else
    streamed from disk."""
    accelerator = device.type != "cpu"
    if mode == "disk":
        return DiskCache(needed, folder)
    if mode in ("device", "cpu"):
        return AnchorCache(needed, offload=mode == "cpu" and accelerator)
    if size < free_memory(device) / 2:
        return AnchorCache(needed)
    if accelerator and size < free_memory(torch.device("cpu")) / 2:
        return AnchorCache(needed, offload=True)
    return DiskCache(needed, folder)
