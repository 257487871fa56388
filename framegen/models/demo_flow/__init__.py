"""The bundled `demo-flow` model: a tiny FLUX.1-shaped pipeline (FluxTransformer2DModel with
double- and single-stream blocks, loaded by diffusers' FluxPipeline) trained by flow matching
on the same procedural scenes as `demo` (see README.md in this folder). Loads offline.

    from framegen.models import demo_flow
    pipe = demo_flow.load_pipeline()
    image = pipe("girl, blonde hair, red shirt, blue skirt, grass, day, house",
                 width=128, height=128, num_inference_steps=24,
                 max_sequence_length=demo_flow.T5_LENGTH).images[0]
"""

from __future__ import annotations

from pathlib import Path

WEIGHTS_DIR: Path = Path(__file__).resolve().parent / "weights"
NATIVE_SIZE = (128, 128)  # width, height: 32x32 latents, a 16x16 grid of image tokens
T5_LENGTH = 32  # the T5 tokens it was trained with (its tokenizer's model_max_length)


def load_pipeline(dtype=None):
    """The demo-flow FluxPipeline, loaded offline from safetensors in WEIGHTS_DIR (its VAE's
    config names the native size, which FLUX transformer configs do not)."""
    import torch
    from diffusers import FluxPipeline

    if not (WEIGHTS_DIR / "model_index.json").is_file():
        raise FileNotFoundError(
            f"demo-flow weights missing in {WEIGHTS_DIR}; train them from the checkout root with "
            "`python -m tools.demo.train_flow --out demo-flow-train --install framegen/models/demo_flow/weights`"
        )
    pipe = FluxPipeline.from_pretrained(
        WEIGHTS_DIR, dtype=dtype or torch.float32, use_safetensors=True, local_files_only=True
    )
    pipe.set_progress_bar_config(disable=True)
    return pipe
