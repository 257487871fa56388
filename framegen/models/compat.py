"""Whether a LoRA or a ControlNet fits a model, read from the LoRA's safetensors header and
the ControlNet's config against the model's denoiser config: before anything loads, so a
file made for another family or size is one line naming it and what was expected."""

from __future__ import annotations

import functools
import json
import re
from pathlib import Path

from ..engine.families import FAMILIES
from .locate import built_in, locate, safetensors_header

_LORA_TENSOR = re.compile(r"lora|\.alpha$", re.IGNORECASE)
# a block's image query projection, the input side of its LoRA: as wide as the transformer
_QUERY_DOWN = re.compile(r"(attn\.to_q|img_attn[._]qkv|x_block[._]attn[._]qkv).*(lora_A|lora_down|lora\.down)\.weight$")


def lora_problem(path: Path, config) -> str | None:
    """Whether the file's tensors are a LoRA's, made for model.id's family (its key names
    say), and whether each layer it changes is in model.id's denoiser with the shapes it has."""
    try:
        header = safetensors_header(path)
    except ValueError:
        return None  # said already, when the file was located
    if not any(_LORA_TENSOR.search(name) for name in header):
        return f"'{path}' is not a LoRA: none of its {len(header)} tensors is a LoRA's (lora_down / lora_A ...)"
    family = config.family
    own = family.name if family.transformer else "unet"
    for other, names in _FAMILY_NAMES.items():
        found = next((name for name in header if other != own and names.search(name)), None)
        if found is not None:
            label = "a U-Net (SD1.x/2.x/XL)" if other == "unet" else FAMILIES[other].label
            changed = found.split(".lora")[0].removeprefix("unet.").removeprefix("transformer.")
            return f"'{path}' is a LoRA for {label}: it changes {changed}; model.id is {family.label}"
    problem = transformer_lora_problem(path, header, config) if family.transformer else None
    return problem or shape_problem(path, header, config)


# names only one family's denoiser has, in any of the layouts LoRAs are saved in
_FAMILY_NAMES = {
    "unet": re.compile(r"down_blocks|up_blocks|mid_block|input_blocks|output_blocks|middle_block"),
    "flux": re.compile(r"double_blocks|single_blocks|single_transformer_blocks"),
    "sd3": re.compile(r"joint_blocks|context_block|x_block"),
}
_TEXT_ENCODER = re.compile(r"^(lora_te\d?_|text_encoder|te\d?\.|cond_stage_model|conditioner)")
# a LoRA tensor's name: the module it changes, and which half (down: the input side, up: the output side)
_HALF = re.compile(
    r"^(?P<module>.+?)(\.processor)?[._](lora_A|lora_B|lora_down|lora_up|lora\.down|lora\.up|lora_linear_layer\.down|"
    r"lora_linear_layer\.up)(\.[a-z_]+)?\.weight$"
)
_ORIGINAL_LAYOUT = re.compile(r"double_blocks|single_blocks|joint_blocks")
# kohya names an original-layout U-Net block: input_blocks_4_1_... (LDM numbering)
_LDM_BLOCK = re.compile(r"^(input_blocks|output_blocks)_(\d+)_(\d+)_(.+)$|^middle_block_(\d+)_(.+)$")


def shape_problem(path: Path, header: dict, config) -> str | None:
    """The first LoRA tensor that changes a block model.id's denoiser lacks, or a layer whose
    input or output width is not what the LoRA was made for (read from the header; the
    denoiser is built from its config on the meta device: no weights)."""
    shapes = denoiser_shapes(config)
    underscored = {name.replace(".", "_"): name for name in shapes}
    for name, entry in header.items():
        match = _HALF.match(name)
        if match is None or _TEXT_ENCODER.match(name) or len(entry.get("shape") or ()) < 2:
            continue
        module = match["module"].replace(".processor.", ".").removeprefix("base_model.model.")
        module = module.removeprefix("unet.").removeprefix("transformer.").removeprefix("lora_unet_")
        if _ORIGINAL_LAYOUT.search(module):  # BFL's or Stability's names: transformer_lora_problem reads their width
            continue
        target = module if module in shapes else underscored.get(module)
        if target is None and _LDM_BLOCK.match(module):
            block, target = ldm_module(module, config, underscored)
            if block is not None and target is None:
                continue  # a resnet's insides in a block model.id has (named otherwise in diffusers)
        if target is None:
            if _block_exists(module, shapes, underscored):
                continue  # inside a block model.id has, in a naming framegen does not map: loading decides
            return f"'{path}' is a LoRA for another model: it changes {module}, which model.id's denoiser lacks"
        inputs, outputs = shapes[target]
        down = re.search(r"lora_A|down", match.group(3)) is not None
        width, expected = (entry["shape"][1], inputs) if down else (entry["shape"][0], outputs)
        if width != expected and down and re.search(r"attn2[._]to_[kv]", module):  # the text encoder's width
            return (
                f"'{path}' is a LoRA for a U-Net that reads {width}-wide text features; model.id's "
                f"({config.family.label}) reads {expected}"
            )
        if width != expected:
            side = "input" if down else "output"
            return (
                f"'{path}' is a LoRA for another model: its {module} has a {width}-wide {side}; "
                f"model.id's ({config.family.label}) has {expected}"
            )
    return None


def _block_exists(module: str, shapes: dict, underscored: dict) -> bool:
    """Whether the block a LoRA's module name starts with (`down_blocks.3`, `transformer_blocks_40`) is model.id's."""
    dotted = re.match(r"^[a-z_]+\.\d+", module)
    if dotted:
        return any(name.startswith(dotted[0] + ".") for name in shapes)
    flat = re.match(r"^[a-z_]+?_\d+_", module)
    return flat is not None and any(name.startswith(flat[0]) for name in underscored)


def ldm_module(name: str, config, underscored: dict[str, str]) -> tuple[str | None, str | None]:
    """(the block, the diffusers module) a kohya name in the original U-Net layout stands for
    (`input_blocks_4_1_transformer_blocks_0_attn1_to_q`), by framegen's own LDM layer table:
    no block when model.id's U-Net has none of that number, no module for a resnet's insides
    (named otherwise in diffusers)."""
    match = _LDM_BLOCK.match(name)
    if match[5] is not None:  # middle_block: 1 is the attention
        block, part, rest = "MID", int(match[5]), match[6]
    else:
        block, part, rest = f"{'IN' if match[1] == 'input_blocks' else 'OUT'}{match[2]}", int(match[3]), match[4]
    layer = config.layers.by_alias.get(block)
    if layer is None:
        return None, None
    if part != 1 or not layer.cross_attention:
        return block, None
    module = "mid_block.attentions.0" if block == "MID" else layer.module
    return block, underscored.get(f"{module.replace('.', '_')}_{rest}")


def denoiser_shapes(config) -> dict[str, tuple[int, int]]:
    """Every weighted layer of the denoiser `config` describes: module path -> (input width,
    output width), from the model built on the meta device (no memory, no weights); built
    once for every LoRA of a storyboard and every check of it."""
    return _built_shapes(config.family.denoiser_class, json.dumps(config.denoiser, sort_keys=True))


@functools.lru_cache(maxsize=4)
def _built_shapes(denoiser_class: str, config: str) -> dict[str, tuple[int, int]]:
    import diffusers
    import torch

    with torch.device("meta"):
        model = getattr(diffusers, denoiser_class).from_config(json.loads(config))
    return {
        name: (module.weight.shape[1], module.weight.shape[0])
        for name, module in model.named_modules()
        if isinstance(getattr(module, "weight", None), torch.Tensor) and module.weight.dim() >= 2
    }


def transformer_lora_problem(path: Path, header: dict, config) -> str | None:
    """A LoRA for a transformer of another width (FLUX.1 3072, SD3.5-medium 1536, SD3.5-large
    2432...), read from its query projections in any layout (BFL's fused qkv too)."""
    family = config.family
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
