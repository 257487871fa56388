"""Whether a LoRA or a ControlNet fits a model, read from the LoRA's safetensors header and
the ControlNet's config against the model's denoiser config: before anything loads, so a
file made for another family or size is one line naming it and what was expected."""

from __future__ import annotations

import json
import re
from pathlib import Path

from .locate import built_in, locate, safetensors_header

_LORA_TENSOR = re.compile(r"lora|\.alpha$", re.IGNORECASE)
_UNET_KEY = re.compile(
    r"down_blocks|up_blocks|mid_block|lora_unet_(down|up|mid|input|output)|input_blocks|output_blocks"
)
_TRANSFORMER_KEY = re.compile(
    r"^transformer\.|single_transformer_blocks|double_blocks|single_blocks|joint_blocks|transformer_blocks\.\d+\.attn\.add_"
)
# a block's image query projection, the input side of its LoRA: as wide as the transformer
_QUERY_DOWN = re.compile(r"(attn\.to_q|img_attn[._]qkv|x_block[._]attn[._]qkv).*(lora_A|lora_down|lora\.down)\.weight$")
_TEXT_KEY_DOWN = re.compile(r"attn2[._]to_k.*(lora_A|lora_down|lora\.down)\.weight$")  # reads the text features


def lora_problem(path: Path, config) -> str | None:
    """Whether the file's tensors are a LoRA's, and for a U-Net of model.id's text width."""
    try:
        header = safetensors_header(path)
    except ValueError:
        return None  # said already, when the file was located
    if not any(_LORA_TENSOR.search(name) for name in header):
        return f"'{path}' is not a LoRA: none of its {len(header)} tensors is a LoRA's (lora_down / lora_A ...)"
    if config.family.transformer or any(_TRANSFORMER_KEY.search(name) for name in header):
        return transformer_lora_problem(path, header, config)
    width = config.denoiser.get("cross_attention_dim")
    widths = {entry["shape"][-1] for name, entry in header.items() if _TEXT_KEY_DOWN.search(name) and entry["shape"]}
    if isinstance(width, int) and widths and width not in widths:
        return (
            f"'{path}' is a LoRA for a U-Net that reads {'/'.join(map(str, sorted(widths)))}-wide text features; "
            f"model.id's ({config.family.label}) reads {width}"
        )
    return None


def transformer_lora_problem(path: Path, header: dict, config) -> str | None:
    """A LoRA for a U-Net on a transformer, or the other way round, or for a transformer of
    another width (FLUX.1 3072, SD3.5-medium 1536, SD3.5-large 2432...)."""
    family = config.family
    unet = any(_UNET_KEY.search(name) for name in header)
    if family.transformer and unet:
        return f"'{path}' is a LoRA for a U-Net; model.id is {family.label}"
    if not family.transformer:
        return f"'{path}' is a LoRA for a transformer (FLUX.1 / SD3.x); model.id is {family.label}"
    width = config.denoiser["num_attention_heads"] * config.denoiser["attention_head_dim"]
    widths = {entry["shape"][-1] for name, entry in header.items() if _QUERY_DOWN.search(name) and entry["shape"]}
    if widths and width not in widths:
        found = "/".join(map(str, sorted(widths)))
        return f"'{path}' is a LoRA for a {found}-wide transformer; model.id's ({family.label}) is {width} wide"
    return None


def controlnet_config_problem(name: str, config) -> str | None:
    """Whether a local ControlNet's config fits model.id's U-Net (its widths and text width)."""
    location = locate(name, what="controlnet")
    folder = built_in(name) if location.kind == "built-in" else Path(location.path)
    try:
        net = json.loads((folder / "config.json").read_text())
    except (OSError, ValueError):
        return None  # a hub id, or said already when it was located
    keys = ("block_out_channels", "cross_attention_dim")
    ours, theirs = ({key: _listed(values.get(key)) for key in keys} for values in (config.denoiser, net))
    if any(theirs[key] is not None and theirs[key] != ours[key] for key in keys):
        shown = [", ".join(f"{key} {values[key]}" for key in keys) for values in (theirs, ours)]
        return f"'{folder}' is a ControlNet for another U-Net ({shown[0]}); model.id's has {shown[1]}"
    return None


def _listed(value):
    return list(value) if isinstance(value, list | tuple) else value
