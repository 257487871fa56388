"""The published component configs of the model families framegen knows (SD1.5, SD2.1-v,
SDXL base), shipped as small JSON files in `configs/`: facts about architectures, no
weights. They build real-size pipelines offline (benchmarks/real_size.py), and describe
what a single-file checkpoint of each family holds."""

from __future__ import annotations

import json
from pathlib import Path

FOLDER = Path(__file__).resolve().parent / "configs"
FAMILIES = ("sd15", "sd21-v", "sdxl")


def configs(family: str) -> dict[str, dict]:
    """Component name (unet, vae, text_encoder, text_encoder_2, scheduler) -> its config;
    `pipeline` -> {"class": the diffusers pipeline class name}."""
    if family not in FAMILIES:
        raise KeyError(f"unknown model family '{family}' (known: {', '.join(FAMILIES)})")
    return {path.stem: json.loads(path.read_text()) for path in sorted((FOLDER / family).glob("*.json"))}
