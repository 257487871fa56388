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
from .encoding import POSITIVE, encoded
from .families import denoiser, family_of
from .masks import MaskSource
from .velocity import velocity

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
        """One denoiser batch: NOISE_DRAWS draws under the anchor's prompt, then the same
        draws under the frame's; |difference| averaged over draws and channels."""
        device, dtype, n = anchor_latents.device, anchor_latents.dtype, NOISE_DRAWS
        generator = torch.Generator("cpu").manual_seed(self.seed)
        noise = torch.randn((n, *anchor_latents.shape[1:]), generator=generator).to(device, dtype)
        texts = [encoded(pipe, prompt, guided=False) for prompt in self.prompts]
        text = {
            key: torch.cat([t[key].expand(n, *t[key].shape[1:]) for t in texts]) for key in POSITIVE if key in texts[0]
        }
        family = family_of(denoiser(pipe).config)
        predict = _flow if family.transformer else _unet
        predicted = predict(pipe, anchor_latents, noise, text, self.tokens if family.name == "flux" else None).float()
        difference = (predicted[n:] - predicted[:n]).abs()
        if difference.dim() == 3:  # FLUX's packed tokens: (draws, h/2 * w/2, channels) -> the token grid
            difference = difference.mean(dim=(0, 2)).reshape(self.tokens)
        else:
            difference = difference.mean(dim=(0, 1))
        difference = difference.cpu()
        region = difference / difference.mean().clamp_min(1e-12)
        return keep_mask(region, tuple(region.shape), self.threshold, self.dilate)


def _unet(pipe, latents, noise, text, tokens):
    """The noise a U-Net predicts at NOISE_STRENGTH of its training schedule, for the
    draws twice over (`text`: the two prompts' embeddings, a draw's worth each)."""
    steps = pipe.scheduler.config.num_train_timesteps
    timestep = int(steps * NOISE_STRENGTH)
    alpha_bar = pipe.scheduler.alphas_cumprod[timestep].to(latents.device, latents.dtype)
    noisy = alpha_bar.sqrt() * latents + (1 - alpha_bar).sqrt() * noise
    t = torch.full((2 * len(noise),), timestep, device=latents.device)
    return pipe.unet(torch.cat([noisy, noisy]), t, encoder_hidden_states=text["prompt_embeds"]).sample


def _flow(pipe, latents, noise, text, tokens):
    """A flow transformer's velocity at sigma NOISE_STRENGTH, likewise (FLUX: on its packed
    latents, an (h, w) grid of `tokens`; SD3: `tokens` is None)."""
    noisy = (1 - NOISE_STRENGTH) * latents + NOISE_STRENGTH * noise
    return velocity(pipe, torch.cat([noisy, noisy]), NOISE_STRENGTH * 1000, text, tokens, FLUX_GUIDANCE)
