"""In-between frames: text conditioning part of the way from one prompt to another.

    conditioning = between(pipe, "girl, standing", "girl, waving", 0.5, negative_prompt="")
    pipe(**conditioning, num_inference_steps=30, ...)

Each token's embedding is interpolated spherically (slerp) between the two prompts'
encodings, which keeps the vectors' norms where a straight line would shrink them
midway; the pooled embedding (SDXL, FLUX, SD3) likewise. The negative prompt's encoding is unchanged.
"""

from __future__ import annotations

import torch

from .encoding import POSITIVE, encoded


def slerp(a: torch.Tensor, b: torch.Tensor, t: float) -> torch.Tensor:
    """Spherical interpolation along the last dimension (linear where a and b are parallel)."""
    a32, b32 = a.float(), b.float()
    dot = (a32 * b32).sum(-1, keepdim=True) / (a32.norm(dim=-1, keepdim=True) * b32.norm(dim=-1, keepdim=True) + 1e-8)
    omega = torch.acos(dot.clamp(-1.0, 1.0))
    sin = torch.sin(omega)
    parallel = sin.abs() < 1e-4
    safe = torch.where(parallel, torch.ones_like(sin), sin)
    spherical = (torch.sin((1 - t) * omega) * a32 + torch.sin(t * omega) * b32) / safe
    return torch.where(parallel, (1 - t) * a32 + t * b32, spherical).to(a.dtype)


@torch.no_grad()
def between(pipe, start: str, end: str, t: float, negative_prompt: str = "") -> dict:
    """Keyword arguments for `pipe(...)`: the conditioning `t` of the way from `start` to `end`."""
    a, b = encoded(pipe, start, negative_prompt or None), encoded(pipe, end, negative_prompt or None)
    return between_encoded(a, b, t)


def between_encoded(a: dict, b: dict, t: float) -> dict:
    """The same from two prompts' encodings (`encoded`'s), so a prompt is encoded once."""
    return {key: slerp(a[key], b[key], t) if key in POSITIVE else value for key, value in a.items()}
