"""Write the published component configs of the transformer families framegen knows into
framegen/models/configs/ (facts about architectures, no weights): FLUX.1-dev and -schnell,
SD3-medium, SD3.5-medium and SD3.5-large, in diffusers' folder layout, trimmed to the
fields that differ from the classes' defaults. The values are those of the models' own
diffusers configs (black-forest-labs/FLUX.1-*, stabilityai/stable-diffusion-3*); a single
file of one of these models loads offline with them (framegen/models/checkpoints.py).

    python tools/dit_configs.py
"""

import json
from pathlib import Path

CONFIGS = Path(__file__).resolve().parents[1] / "framegen" / "models" / "configs"

CLIP_L = {  # OpenAI's CLIP ViT-L/14 text tower: FLUX's text_encoder, SD3's text_encoder
    "model_type": "clip_text_model",
    "hidden_act": "quick_gelu",
    "hidden_size": 768,
    "intermediate_size": 3072,
    "num_attention_heads": 12,
    "num_hidden_layers": 12,
    "max_position_embeddings": 77,
    "vocab_size": 49408,
    "projection_dim": 768,
    "layer_norm_eps": 1e-05,
    "bos_token_id": 0,
    "eos_token_id": 2,
    "pad_token_id": 1,
}
CLIP_G = {  # OpenCLIP ViT-bigG/14 text tower: SD3's text_encoder_2
    **CLIP_L,
    "hidden_act": "gelu",
    "hidden_size": 1280,
    "intermediate_size": 5120,
    "num_attention_heads": 20,
    "num_hidden_layers": 32,
    "projection_dim": 1280,
}
T5_XXL = {  # google/t5-v1_1-xxl's encoder
    "model_type": "t5",
    "architectures": ["T5EncoderModel"],
    "d_ff": 10240,
    "d_kv": 64,
    "d_model": 4096,
    "dense_act_fn": "gelu_new",
    "feed_forward_proj": "gated-gelu",
    "is_gated_act": True,
    "layer_norm_epsilon": 1e-06,
    "num_heads": 64,
    "num_layers": 24,
    "relative_attention_max_distance": 128,
    "relative_attention_num_buckets": 32,
    "tie_word_embeddings": False,
    "vocab_size": 32128,
    "pad_token_id": 0,
    "eos_token_id": 1,
    "decoder_start_token_id": 0,
}
VAE_16 = {  # the 16-channel autoencoder of FLUX.1 and SD3; scaling and shift differ
    "_class_name": "AutoencoderKL",
    "act_fn": "silu",
    "block_out_channels": [128, 256, 512, 512],
    "down_block_types": ["DownEncoderBlock2D"] * 4,
    "up_block_types": ["UpDecoderBlock2D"] * 4,
    "in_channels": 3,
    "out_channels": 3,
    "latent_channels": 16,
    "layers_per_block": 2,
    "norm_num_groups": 32,
    "sample_size": 1024,
    "use_quant_conv": False,
    "use_post_quant_conv": False,
    "force_upcast": True,
    "mid_block_add_attention": True,
}
FLUX = {
    "_class_name": "FluxTransformer2DModel",
    "patch_size": 1,
    "in_channels": 64,
    "num_layers": 19,
    "num_single_layers": 38,
    "attention_head_dim": 128,
    "num_attention_heads": 24,
    "joint_attention_dim": 4096,
    "pooled_projection_dim": 768,
    "axes_dims_rope": [16, 56, 56],
}
FLOW = {"_class_name": "FlowMatchEulerDiscreteScheduler", "num_train_timesteps": 1000, "shift": 3.0}
FLUX_DEV_FLOW = {**FLOW, "use_dynamic_shifting": True, "base_shift": 0.5, "max_shift": 1.15,
                 "base_image_seq_len": 256, "max_image_seq_len": 4096}  # fmt: skip
SD3 = {
    "_class_name": "SD3Transformer2DModel",
    "sample_size": 128,
    "patch_size": 2,
    "in_channels": 16,
    "out_channels": 16,
    "num_layers": 24,
    "attention_head_dim": 64,
    "num_attention_heads": 24,
    "joint_attention_dim": 4096,
    "caption_projection_dim": 1536,
    "pooled_projection_dim": 2048,
    "pos_embed_max_size": 192,
}


def flux(guidance: bool, scheduler: dict) -> dict:
    return {
        "model_index.json": {
            "_class_name": "FluxPipeline",
            "scheduler": ["diffusers", "FlowMatchEulerDiscreteScheduler"],
            "text_encoder": ["transformers", "CLIPTextModel"],
            "text_encoder_2": ["transformers", "T5EncoderModel"],
            "tokenizer": ["transformers", "CLIPTokenizer"],
            "tokenizer_2": ["transformers", "T5TokenizerFast"],
            "transformer": ["diffusers", "FluxTransformer2DModel"],
            "vae": ["diffusers", "AutoencoderKL"],
        },
        "transformer/config.json": {**FLUX, "guidance_embeds": guidance},
        "vae/config.json": {**VAE_16, "scaling_factor": 0.3611, "shift_factor": 0.1159},
        "scheduler/scheduler_config.json": scheduler,
        "text_encoder/config.json": {**CLIP_L, "architectures": ["CLIPTextModel"]},
        "text_encoder_2/config.json": T5_XXL,
    }


def sd3(transformer: dict) -> dict:
    return {
        "model_index.json": {
            "_class_name": "StableDiffusion3Pipeline",
            "scheduler": ["diffusers", "FlowMatchEulerDiscreteScheduler"],
            "text_encoder": ["transformers", "CLIPTextModelWithProjection"],
            "text_encoder_2": ["transformers", "CLIPTextModelWithProjection"],
            "text_encoder_3": ["transformers", "T5EncoderModel"],
            "tokenizer": ["transformers", "CLIPTokenizer"],
            "tokenizer_2": ["transformers", "CLIPTokenizer"],
            "tokenizer_3": ["transformers", "T5TokenizerFast"],
            "transformer": ["diffusers", "SD3Transformer2DModel"],
            "vae": ["diffusers", "AutoencoderKL"],
        },
        "transformer/config.json": {**SD3, **transformer},
        "vae/config.json": {**VAE_16, "scaling_factor": 1.5305, "shift_factor": 0.0609},
        "scheduler/scheduler_config.json": FLOW,
        "text_encoder/config.json": {**CLIP_L, "architectures": ["CLIPTextModelWithProjection"]},
        "text_encoder_2/config.json": {**CLIP_G, "architectures": ["CLIPTextModelWithProjection"]},
        "text_encoder_3/config.json": T5_XXL,
    }


FAMILIES = {
    "flux-dev": flux(True, FLUX_DEV_FLOW),
    "flux-schnell": flux(False, {**FLOW, "shift": 1.0}),
    "sd3-medium": sd3({}),
    "sd35-medium": sd3({"pos_embed_max_size": 384, "qk_norm": "rms_norm", "dual_attention_layers": list(range(13))}),
    "sd35-large": sd3(
        {"num_layers": 38, "num_attention_heads": 38, "caption_projection_dim": 2432, "qk_norm": "rms_norm"}
    ),  # fmt: skip
}

if __name__ == "__main__":
    for family, files in FAMILIES.items():
        for name, config in files.items():
            path = CONFIGS / family / name
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps(config, indent=1) + "\n")
        print(f"wrote {CONFIGS / family}")
