"""`auto: noise` (DiffEdit): the region where the denoiser's prediction under the frame's
prompt differs from the one under the anchor's, for the anchor's own final latents noised
half-way, a few times: |difference| averaged over channels and draws, above `threshold`
(default 1.5) times its mean, dilated (default 1 latent cell). A U-Net predicts the noise
(the training schedule's forward process noises the latents, so any scheduler works); a
flow transformer predicts the velocity, at the flow's own sigma (x = (1 - s) x0 + s noise).
Costs 2 x NOISE_DRAWS denoiser evaluations per frame."""

from __future__ import annotations

import torch

from .anchor import AnchorState
from .automask import AttentionStore, keep_mask
from .encoding import encoded
from .families import denoiser, family_of
from .masks import MaskSource

NOISE_THRESHOLD = 1.5  # times the mean difference
NOISE_DILATE = 1
NOISE_DRAWS = 4
NOISE_STRENGTH = 0.5  # how far into the schedule the anchor is noised
FLUX_GUIDANCE = 3.5  # FLUX.1-dev's embedded guidance for the predictions (the mask compares prompts)


class NoiseMask(MaskSource):
    """A frame's DiffEdit mask, computed before each frame pass (`begin`) from the
    anchor's final latents (`anchor.latents`, left by the anchor pass)."""

    kind = "noise"

    def __init__(
        self, anchor: AnchorState, anchor_prompt: str, frame_prompt: str, seed: int, threshold: float, dilate: int,
        latent_size: tuple[int, int] = (0, 0),
    ):  # fmt: skip
        super().__init__()
        self.anchor, self.prompts, self.seed = anchor, (anchor_prompt, frame_prompt), seed
        self.tokens = (latent_size[1] // 2, latent_size[0] // 2)  # (h, w) of FLUX's packed latents
        self.threshold, self.dilate = threshold, dilate
        self.tensor: torch.Tensor | None = None

    def begin(self, pipe) -> list[AttentionStore]:
        self.tensor, self._resized = self.compute(pipe, self.anchor.latents), {}
        return []

    def mask(self) -> torch.Tensor:
        return self.tensor

    @torch.no_grad()
    def compute(self, pipe, anchor_latents: torch.Tensor) -> torch.Tensor:
        device, dtype = anchor_latents.device, anchor_latents.dtype
        generator = torch.Generator("cpu").manual_seed(self.seed)
        noise = torch.randn((NOISE_DRAWS, *anchor_latents.shape[1:]), generator=generator).to(device, dtype)
        family = family_of(denoiser(pipe).config)
        predict = _flux if family.name == "flux" else _sd3 if family.name == "sd3" else _unet
        anchor, frame = (predict(pipe, anchor_latents, noise, prompt, self.tokens) for prompt in self.prompts)
        difference = (frame - anchor).abs().float().mean(dim=0)  # over the draws
        if difference.dim() == 2:  # FLUX's packed tokens: (h/2 * w/2, channels) -> the token grid
            difference = difference.T.reshape(-1, *self.tokens)
        difference = difference.mean(dim=0).cpu()
        region = difference / difference.mean().clamp_min(1e-12)
        return keep_mask(region, tuple(region.shape), self.threshold, self.dilate)


def _unet(pipe, latents, noise, prompt, tokens):
    """The noise a U-Net predicts under `prompt` at NOISE_STRENGTH of its training schedule."""
    steps = pipe.scheduler.config.num_train_timesteps
    timestep = int(steps * NOISE_STRENGTH)
    alpha_bar = pipe.scheduler.alphas_cumprod[timestep].to(latents.device, latents.dtype)
    noisy = alpha_bar.sqrt() * latents + (1 - alpha_bar).sqrt() * noise
    embeds = encoded(pipe, prompt, guided=False)["prompt_embeds"].expand(len(noise), -1, -1)
    t = torch.full((len(noise),), timestep, device=latents.device)
    return pipe.unet(noisy, t, encoder_hidden_states=embeds).sample


def _sd3(pipe, latents, noise, prompt, tokens):
    """SD3's velocity under `prompt` at sigma NOISE_STRENGTH (its timestep is sigma x 1000)."""
    n, text = len(noise), encoded(pipe, prompt, guided=False)
    noisy = (1 - NOISE_STRENGTH) * latents + NOISE_STRENGTH * noise
    return pipe.transformer(
        hidden_states=noisy, timestep=torch.full((n,), NOISE_STRENGTH * 1000, device=latents.device),
        encoder_hidden_states=text["prompt_embeds"].expand(n, -1, -1),
        pooled_projections=text["pooled_prompt_embeds"].expand(n, -1), return_dict=False,
    )[0]  # fmt: skip


def _flux(pipe, latents, noise, prompt, tokens):
    """FLUX's velocity under `prompt` at sigma NOISE_STRENGTH, on its packed latents (an
    (h, w) grid of `tokens`, whose row and column the image ids give)."""
    n, text, model = len(noise), encoded(pipe, prompt), pipe.transformer
    noisy = (1 - NOISE_STRENGTH) * latents + NOISE_STRENGTH * noise
    h, w = tokens
    ids = torch.zeros(h, w, 3, device=latents.device, dtype=latents.dtype)
    ids[..., 1], ids[..., 2] = torch.arange(h, device=ids.device)[:, None], torch.arange(w, device=ids.device)
    guidance = torch.full((n,), FLUX_GUIDANCE, device=latents.device) if model.config.guidance_embeds else None
    embeds = text["prompt_embeds"]
    return model(
        hidden_states=noisy, timestep=torch.full((n,), NOISE_STRENGTH, device=latents.device), guidance=guidance,
        pooled_projections=text["pooled_prompt_embeds"].expand(n, -1), encoder_hidden_states=embeds.expand(n, -1, -1),
        txt_ids=torch.zeros(embeds.shape[1], 3, device=latents.device, dtype=latents.dtype),
        img_ids=ids.reshape(-1, 3), return_dict=False,
    )[0]  # fmt: skip
