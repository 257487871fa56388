"""A real image as the anchor: encode it with the pipeline's VAE and invert it to noise
along the render's own schedule (DDIM inversion), so a pass from that noise reconstructs
it and frames from that noise keep its scene.

    latents = encode(pipe, image)                         # image at the render's size
    inverted = invert(pipe, latents, prompt, steps)       # .noise, .trajectory
    pipe(prompt, latents=inverted.noise, ...)             # ~ the image again

The inversion runs diffusers' `DDIMInverseScheduler` with the U-Net's noise prediction
for the image's prompt (with `guidance` > 1, classifier-free guided against
`negative_prompt`). `trajectory[i - 1]` holds the latents the inversion passed through at
the end of forward step i, so `trajectory[-1]` is the image's own latents: the LATENTS
layer's anchor values for local blending (hooks.record's `latents`).
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass

import numpy as np
import torch
from PIL import Image

from .families import denoiser
from .masks import true_values

INVERSE_SCHEDULERS = {"DDIMScheduler": "DDIMInverseScheduler"}  # forward -> its inverse form in diffusers
FLOW_SCHEDULERS = ("FlowMatchEulerDiscreteScheduler",)  # inverted by inverse Euler (flow_inversion.py)


@dataclass
class Inversion:
    noise: torch.Tensor  # (1, C, h, w): where every pass starts
    trajectory: list[torch.Tensor]  # per forward step: the latents the inversion passed there


def fitted(image: Image.Image, width: int, height: int) -> Image.Image:
    """`image` centre-cropped to the aspect of width x height, then resized to it (Lanczos)."""
    w, h = image.size
    scale = min(w / width, h / height)
    crop_w, crop_h = round(width * scale), round(height * scale)
    left, top = (w - crop_w) // 2, (h - crop_h) // 2
    return image.crop((left, top, left + crop_w, top + crop_h)).resize((width, height), Image.Resampling.LANCZOS)


def fitted_file(path, width: int, height: int) -> Image.Image:
    """The RGB image at `path`, fitted to width x height."""
    with Image.open(path) as image:
        return fitted(true_values(image).convert("RGB"), width, height)


def inverse_scheduler(scheduler):
    """The inverse form of `scheduler` (same config); ValueError naming those that have one."""
    import diffusers

    name = INVERSE_SCHEDULERS.get(type(scheduler).__name__)
    if name is None:
        known = ", ".join(INVERSE_SCHEDULERS)
        raise ValueError(
            f"the scheduler {type(scheduler).__name__} has no inverse form in diffusers (these do: {known})"
        )
    cls = getattr(diffusers, name)
    accepted = inspect.signature(cls.__init__).parameters  # a config may carry another scheduler's keys
    return cls.from_config({key: value for key, value in scheduler.config.items() if key in accepted})


@torch.no_grad()
def encode(pipe, image: Image.Image) -> torch.Tensor:
    """The image's latents (the VAE posterior's mean, shifted and scaled): (1, C, h, w) in the denoiser's dtype."""
    vae = pipe.vae
    pixels = torch.from_numpy(np.asarray(image.convert("RGB"), dtype=np.float32) / 127.5 - 1).permute(2, 0, 1)[None]
    latents = vae.encode(pixels.to(vae.device, vae.dtype)).latent_dist.mean
    shift = getattr(vae.config, "shift_factor", None) or 0.0
    return ((latents - shift) * vae.config.scaling_factor).to(denoiser(pipe).dtype)


@torch.no_grad()
def invert(
    pipe, latents: torch.Tensor, prompt: str, steps: int, guidance: float = 1.0, negative_prompt: str = "",
    refine: int = 0, on_step=None,
) -> Inversion:  # fmt: skip
    """DDIM inversion of `latents` for `prompt` over the render's `steps` (SD1.x/2.x
    pipelines). Each step predicts the noise where it starts; `refine` > 0 predicts it
    again where the step lands, that many times (a fixed-point iteration: the forward
    step uses the noise at its own start, so each refinement brings the reconstruction
    closer, at one U-Net call each). A refined step's last prediction was made next to
    where the next step starts, one timestep earlier: it stands in for that step's first
    (as the flow inversion reuses its velocity), so `refine: 1` costs steps + 1 U-Net
    calls, not twice `steps`. `on_step(i)` after each of the `steps` steps."""
    inverse = inverse_scheduler(pipe.scheduler)
    inverse.set_timesteps(steps, device=latents.device)
    guided = guidance > 1
    cond, uncond = pipe.encode_prompt(prompt, latents.device, 1, guided, negative_prompt or None)
    context = torch.cat([uncond, cond]) if guided else cond

    def noise_at(x, t):
        noise = pipe.unet(torch.cat([x] * 2) if guided else x, t, encoder_hidden_states=context).sample
        if not guided:
            return noise
        unconditional, conditional = noise.chunk(2)
        return unconditional + guidance * (conditional - unconditional)

    visited, noise = [latents], None
    for i, t in enumerate(inverse.timesteps, start=1):
        if noise is None or not refine:
            noise = noise_at(latents, t)
        landed = inverse.step(noise, t, latents).prev_sample
        for _ in range(refine):
            noise = noise_at(landed, t)
            landed = inverse.step(noise, t, latents).prev_sample
        latents = landed
        visited.append(latents)
        if on_step is not None:
            on_step(i)
    # forward step i ends where the inversion was after steps - i of its own steps
    return Inversion(noise=latents, trajectory=[visited[steps - i] for i in range(1, steps + 1)])
