"""A prompt encoded as each family's pipeline takes it back (`pipe(**encoded(...))`): the
text embeddings, and per family the pooled embedding (SDXL, FLUX, SD3) and the negative
prompt's (families with classifier-free guidance; FLUX.1 embeds its guidance)."""

from __future__ import annotations

from .families import denoiser, family_of

POSITIVE = ("prompt_embeds", "pooled_prompt_embeds")  # what depends on the prompt; the rest on the negative


def text_length(pipe) -> dict:
    """FLUX and SD3 pad T5's text to a fixed length (512 and 256 tokens unless told): a T5
    tokenizer that says less (the tiny and demo models') gives the length its model knows."""
    family = family_of(denoiser(pipe).config)
    tokenizer = getattr(pipe, "tokenizer_2" if family.name == "flux" else "tokenizer_3", None)
    if not family.transformer or tokenizer is None:
        return {}
    return {"max_sequence_length": min(512 if family.name == "flux" else 256, tokenizer.model_max_length)}


def encoded(pipe, prompt: str, negative: str | None = None, guided: bool = True) -> dict:
    """`prompt` (and, `guided`, the negative prompt) encoded for `pipe`, by keyword."""
    family, device = family_of(denoiser(pipe).config), pipe.device
    if family.name == "flux":
        embeds, pooled, _ = pipe.encode_prompt(prompt, prompt_2=None, device=device, **text_length(pipe))
        return {"prompt_embeds": embeds, "pooled_prompt_embeds": pooled}
    if family.name == "sd3":
        embeds, uncond, pooled, uncond_pooled = pipe.encode_prompt(
            prompt,
            None,
            None,
            device=device,
            do_classifier_free_guidance=guided,
            negative_prompt=negative,
            **text_length(pipe),
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
