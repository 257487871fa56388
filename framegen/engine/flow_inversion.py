"""A real image inverted along a flow-matching render's own schedule (FLUX.1, SD3.x):
inverse Euler on the scheduler's sigmas, so a pass from the noise it ends at rebuilds the image.

    latents, grid = flow_latents(pipe, image)                 # packed for FLUX
    inverted = invert_flow(pipe, latents, prompt, steps, grid=grid)   # .noise, .trajectory
    pipe(prompt, latents=inverted.noise, ...)                 # ~ the image again

A forward Euler step goes from sigma s_(i-1) to s_i with the velocity where it starts:
x_i = x_(i-1) + (s_i - s_(i-1)) v(x_(i-1), s_(i-1)). Inverting it needs that velocity at the
unknown x_(i-1); plain inverse Euler takes it at the known x_i and s_i instead, and each of
`refine` fixed-point refinements takes it again where the step landed (one transformer call
each), which brings the forward step's end back onto x_i. A refined step's last velocity was
taken at s_(i-1) next to x_(i-1), which is where the next step starts: it stands in for that
step's first velocity (as FireFlow reuses its midpoint's), so `refine: 1` costs steps + 1
transformer calls, one more than plain inverse Euler, instead of twice as many. `nudge` > 1 scales the image's
latents before inverting (Stable Flow's latent nudging: 1.15 there), so the trajectory, and
the reconstruction, hold the scaled latents.
"""

from __future__ import annotations

import numpy as np
import torch
from PIL import Image

from .encoding import POSITIVE, encoded
from .families import family_of
from .inversion import Inversion, encode
from .velocity import velocity


def flow_latents(pipe, image: Image.Image) -> tuple[torch.Tensor, tuple[int, int] | None]:
    """The image's latents as the pipeline's denoising loop holds them, and FLUX's token
    grid: FLUX's packed (1, h/2 * w/2, 4C) and (h/2, w/2); SD3's (1, C, h, w) and None."""
    latents = encode(pipe, image)
    if family_of(pipe.transformer.config).name != "flux":
        return latents, None
    _, c, h, w = latents.shape
    return pipe._pack_latents(latents, 1, c, h, w), (h // 2, w // 2)


def schedule(pipe, steps: int, tokens: int):
    """A copy of the pipe's scheduler with the timesteps its pipeline sets for `steps` steps
    on `tokens` image tokens (FLUX: sigmas from 1 to 1/steps; both: the shift for the size)."""
    from diffusers.pipelines.flux.pipeline_flux import calculate_shift

    scheduler = type(pipe.scheduler).from_config(pipe.scheduler.config)
    config, options = scheduler.config, {}
    if config.get("use_dynamic_shifting"):
        options["mu"] = calculate_shift(
            tokens, config.get("base_image_seq_len", 256), config.get("max_image_seq_len", 4096),
            config.get("base_shift", 0.5), config.get("max_shift", 1.15),
        )  # fmt: skip
    if family_of(pipe.transformer.config).name == "flux":
        options["sigmas"] = np.linspace(1.0, 1 / steps, steps)
    scheduler.set_timesteps(None if "sigmas" in options else steps, device=pipe.device, **options)
    return scheduler


@torch.no_grad()
def invert_flow(
    pipe, latents: torch.Tensor, prompt: str, steps: int, guidance: float = 1.0, negative_prompt: str = "",
    refine: int = 0, nudge: float = 1.0, on_step=None, grid=None, embedded_guidance: float = 3.5,
) -> Inversion:  # fmt: skip
    """Inverse Euler of `latents` (and FLUX's `grid`: flow_latents') for `prompt` over the render's `steps`.
    `guidance` > 1: SD3's classifier-free guidance against `negative_prompt` while inverting;
    `embedded_guidance`: FLUX.1-dev's guidance embedding (the render's, so that the anchor
    pass retraces the inversion). `on_step(i)` after each of the `steps` steps."""
    flux, patch = grid is not None, pipe.transformer.config.get("patch_size", 1)
    tokens = latents.shape[1] if flux else (latents.shape[2] // patch) * (latents.shape[3] // patch)
    scheduler = schedule(pipe, steps, tokens)
    sigmas, times = scheduler.sigmas.tolist(), scheduler.timesteps.tolist() + [0.0]
    guided = guidance > 1 and not flux
    text = encoded(pipe, prompt, negative_prompt or None, guided)
    if guided:
        text = {key: torch.cat([text["negative_" + key], text[key]]) for key in POSITIVE}

    def velocity_at(x, i):
        if not guided:
            return velocity(pipe, x, times[i], text, grid, embedded_guidance)
        unconditional, conditional = velocity(pipe, torch.cat([x, x]), times[i], text).chunk(2)
        return unconditional + guidance * (conditional - unconditional)

    x, v = latents * nudge, None
    visited = [x]
    for i in range(steps, 0, -1):  # undo forward step i: from sigmas[i] back to sigmas[i - 1]
        step = sigmas[i] - sigmas[i - 1]
        if v is None or not refine:
            v = velocity_at(x, i)
        landed = x - step * v
        for _ in range(refine):
            v = velocity_at(landed, i - 1)
            landed = x - step * v
        x = landed
        visited.append(x)
        if on_step is not None:
            on_step(steps - i + 1)
    # forward step i ends where the inversion was after steps - i of its own steps
    return Inversion(noise=x, trajectory=[visited[steps - i] for i in range(1, steps + 1)])
