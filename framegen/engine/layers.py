"""Layer names: the LDM / A1111 aliases (IN0..IN11, MID, OUT0..OUT11) derived from a
U-Net's own config, so SD1.x, SD2.x and SDXL each get the right map.

The LDM U-Net numbers its input blocks in order: IN0 is the first convolution, then
each down block adds one block per layer (resnet + attention where there is one) and
one for its downsampler. Output blocks count layers_per_block + 1 per up block. The
swapped tensor is the block's output: the attention module's where the block has
cross-attention, else the resnet's (or the downsampler's / conv_in's). An up block's
upsampler is not part of the swapped tensor, as in the paper's table (OUT5 at 20x28).

One more name is not a module: LATENTS, the latents the scheduler hands from one step to
the next. Swapping them inside a mask is prompt-to-prompt's local blending: outside the
mask the frame's latents become the anchor's after every swapped step.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

LATENTS = "latents"  # module path of the LATENTS layer: not a module, see hooks.hooked


@dataclass(frozen=True)
class Layer:
    name: str  # LDM alias: IN4, MID, OUT3
    module: str  # diffusers module path: down_blocks.1.attentions.0
    channels: int
    level: int  # how many times the latent was halved before this layer
    cross_attention: bool

    @property
    def carries_control(self) -> bool:
        """Whether swapping this layer brings the anchor's ControlNet conditioning along: the
        ControlNet adds its residuals to the skip connections and the mid block after the
        IN and MID outputs, so only what comes later (OUT blocks, the latents) carries it."""
        return not self.name.startswith(("IN", "MID"))

    def grid(self, latent_width: int, latent_height: int) -> tuple[int, int]:
        """(width, height) of this layer's feature map; stride-2 convs round up."""
        w, h = latent_width, latent_height
        for _ in range(self.level):
            w, h = -(-w // 2), -(-h // 2)
        return w, h


def _per_block(value, count: int) -> list[int]:
    return list(value) if isinstance(value, (list, tuple)) else [value] * count


def layer_table(config) -> list[Layer]:
    """Every LDM block of a diffusers UNet2DConditionModel config, in LDM order."""
    down_types = list(config["down_block_types"])
    up_types = list(config["up_block_types"])
    channels = list(config["block_out_channels"])
    per_block = _per_block(config["layers_per_block"], len(down_types))
    table = [Layer("IN0", "conv_in", channels[0], 0, False)]
    for i, kind in enumerate(down_types):
        attention = "CrossAttn" in kind
        for j in range(per_block[i]):
            part = "attentions" if attention else "resnets"
            table.append(Layer(f"IN{len(table)}", f"down_blocks.{i}.{part}.{j}", channels[i], i, attention))
        if i < len(down_types) - 1:  # the last down block has no downsampler
            table.append(Layer(f"IN{len(table)}", f"down_blocks.{i}.downsamplers.0", channels[i], i + 1, False))
    mid_type = config.get("mid_block_type", "UNetMidBlock2DCrossAttn")
    if mid_type:  # None: this U-Net has no mid block
        table.append(Layer("MID", "mid_block", channels[-1], len(channels) - 1, "CrossAttn" in mid_type))
    reversed_channels, reversed_layers = channels[::-1], per_block[::-1]
    out = 0
    for k, kind in enumerate(up_types):
        attention = "CrossAttn" in kind
        for j in range(reversed_layers[k] + 1):
            part = "attentions" if attention else "resnets"
            level = len(channels) - 1 - k
            table.append(Layer(f"OUT{out}", f"up_blocks.{k}.{part}.{j}", reversed_channels[k], level, attention))
            out += 1
    return table + [Layer("LATENTS", LATENTS, config.get("in_channels", 4), 0, False)]


def canonical(name: str) -> str:
    """`in01` -> `IN1`, `M00` -> `MID`, `out03` -> `OUT3`; other names unchanged."""
    match = re.fullmatch(r"(IN|OUT)0*(\d+)", name.strip(), flags=re.IGNORECASE)
    if match:
        return f"{match[1].upper()}{match[2]}"
    if re.fullmatch(r"MID|M0*", name.strip(), flags=re.IGNORECASE):
        return "MID"
    if name.strip().lower() == LATENTS:
        return "LATENTS"
    return name.strip()


class UnknownLayer(KeyError, ValueError):
    """A layer name the U-Net does not have; the message lists the names it does."""

    def __str__(self) -> str:
        return self.args[0]


class LayerMap:
    """Resolves storyboard layer names to module paths for one U-Net.

    `modules` is the set of the U-Net's module paths (from `named_modules()`), which
    makes raw paths like `up_blocks.1.attentions.0.transformer_blocks.0` valid too;
    without it (`config_only`: a config read before loading weights) only the blocks are known.
    """

    def __init__(self, config, modules: set[str] | None = None):
        self.config_only = modules is None
        self.layers = layer_table(config)
        self.by_alias = {layer.name: layer for layer in self.layers}
        self.by_module = {layer.module: layer for layer in self.layers}
        self.modules = set(modules) if modules is not None else set(self.by_module)

    @classmethod
    def of(cls, unet) -> LayerMap:
        return cls(unet.config, {name for name, _ in unet.named_modules() if name})

    def __contains__(self, name: str) -> bool:
        return canonical(name) in self.by_alias or name in self.modules

    def module_path(self, name: str) -> str:
        alias = canonical(name)
        if alias in self.by_alias:
            return self.by_alias[alias].module
        if name in self.modules:
            return name
        raise UnknownLayer(f"unknown layer '{name}' (known: {self.listing()})")

    def known_names(self) -> set[str]:
        names = set(self.by_alias) | self.modules
        for layer in self.layers:  # the zero-padded and M00 spellings
            if layer.name == "MID":
                names.add("M00")
            elif layer.name == "LATENTS":
                names.add(LATENTS)
            else:
                prefix, number = re.fullmatch(r"(IN|OUT)(\d+)", layer.name).groups()
                names.add(f"{prefix}{int(number):02d}")
        return names

    def listing(self) -> str:
        aliases = ", ".join(layer.name for layer in self.layers)
        example = next(layer.module for layer in reversed(self.layers) if layer.module != LATENTS)
        return f"{aliases}, or a module path such as {example}"

    def cross_attention_layers(self) -> list[Layer]:
        return [layer for layer in self.layers if layer.cross_attention]
