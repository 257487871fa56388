"""framegen's built-in tiny models by name: `tiny-random` (SD1.x-shaped, tiny.py),
`tiny-random-flux` and `tiny-random-sd3` (tiny_dit.py), built in code, offline."""

from __future__ import annotations

from . import tiny_dit
from .tiny import NATIVE_SIZE, SD1_UNET, VAE_SCALE, tiny_pipeline, tiny_scheduler

TINY = ("tiny-random", "tiny-random-flux", "tiny-random-sd3")


def tiny_build(name: str, t5: bool = True):
    """The pipeline of a built-in tiny model (CPU, float32); `t5=False`: SD3's without T5."""
    if name == "tiny-random-sd3":
        return tiny_dit.tiny_sd3_pipeline(t5=t5)
    return tiny_dit.tiny_flux_pipeline() if name == "tiny-random-flux" else tiny_pipeline()


def tiny_config(name: str) -> tuple[dict, int]:
    """(the denoiser's config, the VAE's scale) of a built-in tiny model, without building it."""
    transformers = {"tiny-random-flux": tiny_dit.FLUX_TRANSFORMER, "tiny-random-sd3": tiny_dit.SD3_TRANSFORMER}
    if name in transformers:
        return dict(transformers[name], sample_size=NATIVE_SIZE[0] // VAE_SCALE), VAE_SCALE
    return dict(SD1_UNET, mid_block_type="UNetMidBlock2DCrossAttn"), VAE_SCALE


def tiny_scheduler_of(name: str):
    return tiny_dit.flow_scheduler(flux=name == "tiny-random-flux") if name != "tiny-random" else tiny_scheduler()
