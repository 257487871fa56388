"""The bundled `demo` model: a tiny SD1.x-shaped pipeline trained from scratch on
procedural scenes (see README.md in this folder), plus an ONNX person segmenter with
rembg's u2net contract. Loads fully offline from package data.

    from framegen.models import demo
    pipe = demo.load_pipeline()
    image = pipe("girl, blonde hair, red shirt, blue skirt, grass, day, house",
                 width=64, height=64, num_inference_steps=25, guidance_scale=3).images[0]

Importing this module is cheap: torch and diffusers are imported inside the functions.
"""

from __future__ import annotations

from pathlib import Path

WEIGHTS_DIR: Path = Path(__file__).resolve().parent / "weights"
CONTROLNET_DIR: Path = Path(__file__).resolve().parent / "controlnet"  # `demo-control`: silhouette -> person
NATIVE_SIZE = (64, 64)  # width, height
TEXT_LENGTH = 32  # tokens, including <|startoftext|> and <|endoftext|>


def load_pipeline(dtype=None):
    """The demo StableDiffusionPipeline (U-Net, VAE, CLIP text encoder and tokenizer,
    DDIM-compatible scheduler config), loaded offline from safetensors in WEIGHTS_DIR."""
    import torch
    from diffusers import StableDiffusionPipeline

    if not (WEIGHTS_DIR / "model_index.json").is_file():
        raise FileNotFoundError(
            f"demo weights missing in {WEIGHTS_DIR}; train them from the checkout root with "
            "`python -m tools.demo.train --out demo-train --install framegen/models/demo/weights`"
        )
    pipe = StableDiffusionPipeline.from_pretrained(
        WEIGHTS_DIR,
        dtype=dtype or torch.float32,
        safety_checker=None,
        feature_extractor=None,
        requires_safety_checker=False,
        use_safetensors=True,
        local_files_only=True,
    )
    pipe.set_progress_bar_config(disable=True)
    return pipe


def segmenter_path() -> Path:
    """The ONNX person segmenter (rembg u2net contract: [1,3,320,320] in, [1,1,320,320] out).
    framegen uses it through rembg's `u2net_custom` session (framegen.output.segmenters.RembgSegmenter)."""
    return WEIGHTS_DIR / "segmenter.onnx"
