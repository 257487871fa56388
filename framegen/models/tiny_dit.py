"""`tiny-random-flux` and `tiny-random-sd3`: FLUX.1- and SD3.5-shaped pipelines with small
random weights, built offline, for the transformer code paths (the real pipeline classes,
blocks, schedulers and text encoders; only the widths are small).

FLUX: two double-stream and two single-stream blocks (D0, D1, S0, S1), CLIP and T5 text
encoders, the flow-matching scheduler with FLUX.1-dev's resolution-dependent shift and an
embedded guidance. SD3: two joint blocks (D0, D1; D0 with SD3.5-medium's image-only
second attention), CLIP-L, CLIP-G and T5 encoders, real classifier-free guidance.
Weights come from fixed seeds, so two builds are bit-identical on the same machine.
"""

from __future__ import annotations

from .tiny import NATIVE_SIZE, SEED, TEXT_LENGTH, tiny_tokenizer

T5_LENGTH = 64  # tokens the tiny T5 encodes (FLUX.1 uses 512, SD3 256)

FLUX_TRANSFORMER = dict(
    patch_size=1, in_channels=16, num_layers=2, num_single_layers=2, attention_head_dim=16, num_attention_heads=2,
    joint_attention_dim=32, pooled_projection_dim=32, guidance_embeds=True, axes_dims_rope=(4, 4, 8),
)  # fmt: skip
SD3_TRANSFORMER = dict(
    sample_size=32, patch_size=2, in_channels=4, out_channels=4, num_layers=2, attention_head_dim=8,
    num_attention_heads=4, joint_attention_dim=64, caption_projection_dim=32, pooled_projection_dim=64,
    pos_embed_max_size=32, dual_attention_layers=(0,), qk_norm="rms_norm",
)  # fmt: skip


def tiny_t5_tokenizer(words: tuple[str, ...] = (), length: int = T5_LENGTH):
    """A T5 tokenizer (SentencePiece unigram, no start token, `</s>` at the end) over
    printable ASCII, one token per character, and each of `words` one piece (demo-flow's)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors
    from transformers import T5TokenizerFast

    space, char = (-3.0, -4.0) if words else (-1.0, -2.0)  # a word's piece outscores its letters
    pieces = [("<pad>", 0.0), ("</s>", 0.0), ("<unk>", 0.0), ("\u2581", space)]
    pieces += [("\u2581" + word, -1.0) for word in words] + [(chr(c), char) for c in range(32, 127)]
    tokenizer = Tokenizer(models.Unigram(pieces, unk_id=2, byte_fallback=False))
    tokenizer.pre_tokenizer, tokenizer.decoder = pre_tokenizers.Metaspace(), decoders.Metaspace()
    tokenizer.post_processor = processors.TemplateProcessing(single="$A </s>", special_tokens=[("</s>", 1)])
    return T5TokenizerFast(
        tokenizer_object=tokenizer, eos_token="</s>", pad_token="<pad>", unk_token="<unk>", extra_ids=0,
        model_max_length=length,
    )  # fmt: skip


def _t5(tokenizer, width: int):
    from transformers import T5Config, T5EncoderModel

    config = T5Config(vocab_size=len(tokenizer), d_model=width, d_ff=2 * width, d_kv=8, num_layers=2, num_heads=4)
    return T5EncoderModel(config).eval()  # a built module trains (T5's dropout) until told otherwise


def _clip(tokenizer, width: int, projection: bool):
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection

    config = CLIPTextConfig(
        vocab_size=len(tokenizer), hidden_size=width, intermediate_size=2 * width, num_hidden_layers=2,
        num_attention_heads=4, max_position_embeddings=TEXT_LENGTH, projection_dim=width,
        bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id,
    )  # fmt: skip
    return (CLIPTextModelWithProjection if projection else CLIPTextModel)(config)


def _vae():
    from diffusers import AutoencoderKL

    return AutoencoderKL(
        block_out_channels=(8, 8, 8, 8), down_block_types=("DownEncoderBlock2D",) * 4,
        up_block_types=("UpDecoderBlock2D",) * 4, layers_per_block=1, latent_channels=4, norm_num_groups=4,
        scaling_factor=1.5, shift_factor=0.1, sample_size=NATIVE_SIZE[0],  # the native size FLUX's config lacks
    )  # fmt: skip


def flow_scheduler(flux: bool):
    """The flow-matching Euler scheduler as FLUX.1-dev (a shift that grows with the image)
    or SD3.5 (a fixed shift of 3) ship it."""
    from diffusers import FlowMatchEulerDiscreteScheduler

    if flux:
        return FlowMatchEulerDiscreteScheduler(
            shift=3.0, use_dynamic_shifting=True, base_shift=0.5, max_shift=1.15, base_image_seq_len=256,
            max_image_seq_len=4096,
        )  # fmt: skip
    return FlowMatchEulerDiscreteScheduler(shift=3.0)


def _seeded(transformer_class, config: dict):
    """The transformer and the VAE, each from its seed, and the CLIP and T5 tokenizers; the
    text encoders the caller builds next draw from SEED + 2."""
    import torch

    torch.manual_seed(SEED)
    transformer = transformer_class(**config)
    torch.manual_seed(SEED + 1)
    vae = _vae()
    torch.manual_seed(SEED + 2)
    return transformer, vae, tiny_tokenizer(), tiny_t5_tokenizer()


def tiny_flux_pipeline():
    """The `tiny-random-flux` FluxPipeline (CPU, float32)."""
    from diffusers import FluxPipeline, FluxTransformer2DModel

    transformer, vae, tokenizer, tokenizer_2 = _seeded(FluxTransformer2DModel, FLUX_TRANSFORMER)
    text_encoder, text_encoder_2 = _clip(tokenizer, 32, projection=False), _t5(tokenizer_2, 32)
    return FluxPipeline(
        scheduler=flow_scheduler(flux=True), vae=vae, text_encoder=text_encoder, tokenizer=tokenizer,
        text_encoder_2=text_encoder_2, tokenizer_2=tokenizer_2, transformer=transformer,
    )  # fmt: skip


def tiny_sd3_pipeline(t5: bool = True):
    """The `tiny-random-sd3` StableDiffusion3Pipeline (CPU, float32); without `t5`, as
    diffusers allows, the T5 encoder's place is zeros."""
    from diffusers import SD3Transformer2DModel, StableDiffusion3Pipeline

    transformer, vae, tokenizer, tokenizer_3 = _seeded(SD3Transformer2DModel, SD3_TRANSFORMER)
    text_encoder, text_encoder_2 = _clip(tokenizer, 32, projection=True), _clip(tokenizer, 32, projection=True)
    text_encoder_3 = _t5(tokenizer_3, 64)
    return StableDiffusion3Pipeline(
        scheduler=flow_scheduler(flux=False), vae=vae, text_encoder=text_encoder,
        tokenizer=tokenizer, text_encoder_2=text_encoder_2, tokenizer_2=tokenizer,
        text_encoder_3=text_encoder_3 if t5 else None, tokenizer_3=tokenizer_3 if t5 else None,
        transformer=transformer,
    )  # fmt: skip
