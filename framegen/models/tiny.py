"""`tiny-random`: an SD1.x-shaped pipeline with small random weights, built offline.

Every LDM layer name (IN0..IN11, MID, OUT0..OUT11) exists and sits where it sits on
SD1.5, so the swap machinery can be tested exactly without downloading anything. The
weights come from a fixed seed, so two builds are bit-identical on the same machine.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

SEED = 0
NATIVE_SIZE = (128, 128)  # width, height
TEXT_LENGTH = 77  # as SD's CLIP; the byte-level tokenizer spends one token per character
VAE_SCALE = 8  # four VAE blocks: three halvings

# SD1.x structure at a fraction of the width; sdxl=True gives the SDXL layout
# (no attention in the first down block, 3 levels) for layer-map tests.
SD1_UNET = dict(
    sample_size=16,
    in_channels=4,
    out_channels=4,
    layers_per_block=2,
    block_out_channels=(32, 32, 64, 64),
    down_block_types=("CrossAttnDownBlock2D",) * 3 + ("DownBlock2D",),
    up_block_types=("UpBlock2D",) + ("CrossAttnUpBlock2D",) * 3,
    cross_attention_dim=32,
    attention_head_dim=8,
    norm_num_groups=8,
)
SDXL_UNET = dict(
    sample_size=16,
    in_channels=4,
    out_channels=4,
    layers_per_block=2,
    block_out_channels=(32, 64, 64),
    down_block_types=("DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"),
    up_block_types=("CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"),
    transformer_layers_per_block=(1, 2, 2),
    cross_attention_dim=32,
    attention_head_dim=8,
    norm_num_groups=8,
)


def byte_level_tokenizer_files(folder: Path) -> Path:
    """Write a CLIP tokenizer whose vocabulary is the 256 byte symbols (plain and
    word-final) and no merges: any text tokenizes, one token per character."""
    from transformers.convert_slow_tokenizer import bytes_to_unicode

    symbols = list(bytes_to_unicode().values())
    vocab = {s: i for i, s in enumerate(symbols + [s + "</w>" for s in symbols])}
    vocab["<|startoftext|>"] = len(vocab)
    vocab["<|endoftext|>"] = len(vocab)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "vocab.json").write_text(json.dumps(vocab))
    (folder / "merges.txt").write_text("#version: 0.2\n")
    (folder / "tokenizer_config.json").write_text(
        json.dumps({"model_max_length": TEXT_LENGTH, "tokenizer_class": "CLIPTokenizer"})
    )
    return folder


def tiny_tokenizer():
    """The byte-level tokenizer, read from files written to a temporary folder that is
    removed again (the tokenizer holds its vocabulary in memory)."""
    from transformers import CLIPTokenizer

    with tempfile.TemporaryDirectory(prefix="framegen-tiny-tok-") as folder:
        return CLIPTokenizer.from_pretrained(byte_level_tokenizer_files(Path(folder)))


def tiny_unet(sdxl: bool = False):
    import torch
    from diffusers import UNet2DConditionModel

    torch.manual_seed(SEED)
    return UNet2DConditionModel(**(SDXL_UNET if sdxl else SD1_UNET))


def tiny_scheduler():
    """SD's DDIM schedule (scaled-linear betas), as SD1.5 ships it."""
    from diffusers import DDIMScheduler

    return DDIMScheduler(
        beta_start=0.00085,
        beta_end=0.012,
        beta_schedule="scaled_linear",
        clip_sample=False,
        set_alpha_to_one=False,
        steps_offset=1,
    )


def tiny_pipeline():
    """The `tiny-random` StableDiffusionPipeline (CPU, float32)."""
    import torch
    from diffusers import AutoencoderKL, StableDiffusionPipeline
    from transformers import CLIPTextConfig, CLIPTextModel

    unet = tiny_unet()
    torch.manual_seed(SEED + 1)
    vae = AutoencoderKL(
        in_channels=3,
        out_channels=3,
        down_block_types=("DownEncoderBlock2D",) * 4,
        up_block_types=("UpDecoderBlock2D",) * 4,
        block_out_channels=(8, 8, 8, 8),
        layers_per_block=1,
        latent_channels=4,
        norm_num_groups=4,
        sample_size=NATIVE_SIZE[0],
    )
    torch.manual_seed(SEED + 2)
    tokenizer = tiny_tokenizer()
    text_encoder = CLIPTextModel(
        CLIPTextConfig(
            vocab_size=len(tokenizer),
            hidden_size=32,
            intermediate_size=64,
            num_hidden_layers=2,
            num_attention_heads=4,
            max_position_embeddings=TEXT_LENGTH,
            bos_token_id=tokenizer.bos_token_id,
            eos_token_id=tokenizer.eos_token_id,
            pad_token_id=tokenizer.pad_token_id,
        )
    )
    return StableDiffusionPipeline(
        vae=vae,
        text_encoder=text_encoder,
        tokenizer=tokenizer,
        unet=unet,
        scheduler=tiny_scheduler(),
        safety_checker=None,
        feature_extractor=None,
        requires_safety_checker=False,
    )


def tiny_sd2_pipeline():
    """An SD2.x-shaped StableDiffusionPipeline with small random weights: linear projections
    in the transformers, a text encoder with OpenCLIP's activation (a single file stores it
    in OpenCLIP's layout), v-prediction. For the SD2 code paths; not a `model.id`."""
    import torch
    from diffusers import DDIMScheduler, StableDiffusionPipeline, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel

    components = tiny_pipeline().components
    torch.manual_seed(SEED)
    components["unet"] = UNet2DConditionModel(
        **{**SD1_UNET, "attention_head_dim": (2, 2, 4, 4)}, use_linear_projection=True
    )
    torch.manual_seed(SEED + 2)
    text = components["text_encoder"].config.to_dict()
    components["text_encoder"] = CLIPTextModel(CLIPTextConfig(**{**text, "hidden_act": "gelu"}))
    components["scheduler"] = DDIMScheduler.from_config(components["scheduler"].config, prediction_type="v_prediction")
    return StableDiffusionPipeline(**components)


def tiny_sdxl_pipeline():
    """An SDXL-shaped StableDiffusionXLPipeline with small random weights (two text
    encoders, the pooled embedding and size conditioning through the time embedding),
    for the SDXL code paths. Not a `model.id`: tests build it."""
    import torch
    from diffusers import AutoencoderKL, EulerDiscreteScheduler, StableDiffusionXLPipeline, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection

    tokenizer = tiny_tokenizer()
    text = dict(vocab_size=len(tokenizer), intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
                max_position_embeddings=TEXT_LENGTH, bos_token_id=tokenizer.bos_token_id,
                eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id)  # fmt: skip
    torch.manual_seed(SEED)
    unet = UNet2DConditionModel(
        **{**SDXL_UNET, "cross_attention_dim": 32 + 16},  # the two encoders' hidden states, concatenated
        addition_embed_type="text_time",
        addition_time_embed_dim=8,
        projection_class_embeddings_input_dim=6 * 8 + 16,  # six size numbers, and the pooled embedding
    )
    torch.manual_seed(SEED + 1)
    vae = AutoencoderKL(
        block_out_channels=(8, 8, 8, 8), down_block_types=("DownEncoderBlock2D",) * 4,
        up_block_types=("UpDecoderBlock2D",) * 4, layers_per_block=1, latent_channels=4, norm_num_groups=4,
    )  # fmt: skip
    torch.manual_seed(SEED + 2)
    text_encoder = CLIPTextModel(CLIPTextConfig(hidden_size=32, **text))
    text_encoder_2 = CLIPTextModelWithProjection(CLIPTextConfig(hidden_size=16, projection_dim=16, **text))
    scheduler = EulerDiscreteScheduler(
        beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear", steps_offset=1, timestep_spacing="leading"
    )
    return StableDiffusionXLPipeline(
        vae=vae, text_encoder=text_encoder, text_encoder_2=text_encoder_2, tokenizer=tokenizer,
        tokenizer_2=tokenizer, unet=unet, scheduler=scheduler,
    )  # fmt: skip


def acting_controlnet(unet, std: float = 0.2, seed: int = 11):
    """A ControlNet copied from `unet` (diffusers' `from_unet`) whose zero convolutions get
    random weights, so its residuals act: for tests and benchmarks of ControlNet paths
    (a trained one starts them at zero)."""
    import torch
    from diffusers import ControlNetModel

    net = ControlNetModel.from_unet(unet)
    generator = torch.Generator().manual_seed(seed)
    zero_convolutions = ("controlnet_down_blocks", "controlnet_mid_block", "controlnet_cond_embedding.conv_out")
    with torch.no_grad():
        for name, parameter in net.named_parameters():
            if name.startswith(zero_convolutions):
                parameter.copy_(torch.randn(parameter.shape, generator=generator) * std)
    return net


def stick_figure(x: float, size: int = 64):
    """A control image: a white stick figure standing at `x` (pixels) on black, drawn for
    a 64-pixel image and scaled to `size`."""
    from PIL import Image, ImageDraw

    image = Image.new("RGB", (size, size), "black")
    draw, unit = ImageDraw.Draw(image), size / 64
    draw.ellipse((x - 4 * unit, 10 * unit, x + 4 * unit, 18 * unit), fill="white")
    for line in ((x, 18 * unit, x, 40 * unit), (x, 40 * unit, x - 6 * unit, 56 * unit),
                 (x, 40 * unit, x + 6 * unit, 56 * unit)):  # fmt: skip
        draw.line(line, fill="white", width=max(1, round(2 * unit)))
    return image
