"""A prompt encoded as each family's pipeline takes it back (`pipe(**encoded(...))`): the
text embeddings, and per family the pooled embedding (SDXL, FLUX, SD3) and the negative
prompt's (families with classifier-free guidance; FLUX.1 embeds its guidance)."""

from __future__ import annotations

from .families import denoiser, family_of

POSITIVE = ("prompt_embeds", "pooled_prompt_embeds")  # what depends on the prompt; the rest on the negative


def encoded(pipe, prompt: str, negative: str | None = None, guided: bool = True) -> dict:
    """`prompt` (and, `guided`, the negative prompt) encoded for `pipe`, by keyword."""
    family, device = family_of(denoiser(pipe).config), pipe.device
    if family.name == "flux":
        embeds, pooled, _ = pipe.encode_prompt(prompt, prompt_2=None, device=device)
        return {"prompt_embeds": embeds, "pooled_prompt_embeds": pooled}
    if family.name == "sd3":
        embeds, uncond, pooled, uncond_pooled = pipe.encode_prompt(
            prompt, None, None, device=device, do_classifier_free_guidance=guided, negative_prompt=negative
        )
    elif family.pooled_text:  # SDXL
        embeds, uncond, pooled, uncond_pooled = pipe.encode_prompt(
            prompt, device=device, do_classifier_free_guidance=guided, negative_prompt=negative
        )
    else:
        embeds, uncond = pipe.encode_prompt(prompt, device, 1, guided, negative)
        return {"prompt_embeds": embeds, "negative_prompt_embeds": uncond}
    return {
        "prompt_embeds": embeds, "negative_prompt_embeds": uncond,
        "pooled_prompt_embeds": pooled, "negative_pooled_prompt_embeds": uncond_pooled,
    }  # fmt: skip
