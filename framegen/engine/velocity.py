"""A flow transformer's velocity, called as its pipeline calls it: FLUX.1 on packed latents
(B, h/2 * w/2, 4C) with image and text position ids, its timestep as sigma and its guidance
embedded; SD3 on latents (B, C, h, w) with its timestep as sigma x 1000. `t` is the
scheduler's timestep (sigma x 1000) for every row. Used by the flow inversion and by noise masks."""

from __future__ import annotations

import torch


def velocity(pipe, latents: torch.Tensor, t: float | torch.Tensor, text: dict, grid=None, guidance=None):
    """The velocity at `latents` for `text` (`prompt_embeds`, `pooled_prompt_embeds`, a row
    per latents row); `grid`: FLUX's (h, w) of packed tokens; `guidance`: FLUX.1-dev's
    embedded guidance (ignored by a transformer without one)."""
    model, n, device, dtype = pipe.transformer, len(latents), latents.device, latents.dtype
    timestep = torch.as_tensor(t, device=device).expand(n).to(dtype)
    embeds, pooled = text["prompt_embeds"], text["pooled_prompt_embeds"]
    if grid is None:  # SD3
        return model(
            hidden_states=latents, timestep=timestep, encoder_hidden_states=embeds, pooled_projections=pooled,
            return_dict=False,
        )[0]  # fmt: skip
    embedded = torch.full((n,), guidance, device=device) if model.config.guidance_embeds else None
    return model(
        hidden_states=latents, timestep=timestep / 1000, guidance=embedded, pooled_projections=pooled,
        encoder_hidden_states=embeds, txt_ids=torch.zeros(embeds.shape[1], 3, device=device, dtype=dtype),
        img_ids=pipe._prepare_latent_image_ids(n, *grid, device, dtype), return_dict=False,
    )[0]  # fmt: skip
