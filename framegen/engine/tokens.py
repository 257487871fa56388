"""A transformer's tokens as rules see them: the image tokens of a (B, S, C) tensor as
their grid, (B, C, h, w), so one rule works on every family; text tokens (a single-stream
block's first ones, or a joint block's other output) stay where they are."""

from __future__ import annotations

import torch
from diffusers.hooks._helpers import TransformerBlockRegistry


def latent_size(sample: torch.Tensor, kwargs) -> tuple[int, int]:
    """(w, h) of the latents: a U-Net's or SD3's (B, C, H, W) input, or FLUX's packed
    tokens, whose grid the image ids hold (row, column) and which pack 2x2 latent cells."""
    if sample.dim() == 4:
        return sample.shape[-1], sample.shape[-2]
    ids = kwargs["img_ids"].reshape(-1, 3)
    return 2 * (int(ids[:, 2].max()) + 1), 2 * (int(ids[:, 1].max()) + 1)


def image_index(module) -> int:
    """Where a block's tuple output holds the image (diffusers' own block registry:
    FLUX's and SD3's blocks return (text, image))."""
    try:
        return TransformerBlockRegistry.get(type(module)).return_hidden_states_index or 0
    except ValueError:
        return 0


def to_grid(tokens: torch.Tensor, grid: tuple[int, int]) -> torch.Tensor:
    """The last w*h tokens (the image's; text comes first) of (B, S, C) as (B, C, h, w)."""
    w, h = grid
    return tokens[:, tokens.shape[1] - w * h :].transpose(1, 2).reshape(tokens.shape[0], -1, h, w)


def from_grid(image: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
    """`tokens` with its image tokens replaced by `image` (B, C, h, w)."""
    image = image.flatten(2).transpose(1, 2)
    text = tokens.shape[1] - image.shape[1]
    return torch.cat([tokens[:, :text], image], dim=1) if text else image.contiguous()
