"""Layer names: the LDM / A1111 aliases (IN0..IN11, MID, OUT0..OUT11) derived from a
U-Net's own config, so SD1.x, SD2.x and SDXL each get the right map, and per-stream block
names for transformers (FLUX: D0..D18 double-stream, S0..S37 single-stream; SD3: D0..D23).

The LDM U-Net numbers its input blocks in order: IN0 is the first convolution, then
each down block adds one block per layer (resnet + attention where there is one) and
one for its downsampler. Output blocks count layers_per_block + 1 per up block. The
swapped tensor is the block's output: the attention module's where the block has
cross-attention, else the resnet's (or the downsampler's / conv_in's). An up block's
upsampler is not part of the swapped tensor, as in the paper's table (OUT5 at 20x28).

One more name is not a module: LATENTS, the latents the scheduler hands from one step to
the next. Swapping them inside a mask is prompt-to-prompt's local blending: outside the
mask the frame's latents become the anchor's after every swapped step.

A transformer block's output holds image tokens, which rules see as their grid (the latent
grid over the patch size: FLUX packs 2x2 latent cells into a token, SD3 patches 2x2), and
text tokens, which rules never touch. FINAL is the transformer's output projection (the
velocity, as tokens), the one layer whose swap gives the anchor whatever the prompt: the
pooled text modulates every block and the final norm through the time embedding.
A `kv` rule on a block swaps the image tokens' keys and values of its attention (the
outputs of `to_k` and `to_v`): the joint attention of a transformer block, the
self-attention (`attn1`) of a U-Net block.
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
    cross_attention: bool  # the layer attends to the text (a transformer's blocks all do)
    patch: int = 1  # latent cells per token side (transformers); the output is then tokens
    stream: str = ""  # transformers: double | single | joint | dual (joint, then image-only attention)

    @property
    def sees(self) -> str:
        """What the layer attends to, in words (for `framegen layers`)."""
        return {
            "double": "text + image, each stream its own weights", "single": "text + image, one stream",
            "joint": "text + image, joint attention", "dual": "text + image, joint; then image alone (attn2)",
        }.get(self.stream, "text" if self.cross_attention else "")  # fmt: skip

    @property
    def carries_control(self) -> bool:
        """Whether swapping this layer brings the anchor's ControlNet conditioning along: the
        ControlNet adds its residuals to the skip connections and the mid block after the
        IN and MID outputs, so only what comes later (OUT blocks, the latents) carries it."""
        return not self.name.startswith(("IN", "MID"))

    def grid(self, latent_width: int, latent_height: int) -> tuple[int, int]:
        """(width, height) of this layer's feature map or token grid; stride-2 convs round up."""
        w, h = latent_width // self.patch, latent_height // self.patch
        for _ in range(self.level):
            w, h = -(-w // 2), -(-h // 2)
        return w, h


def _per_block(value, count: int) -> list[int]:
    return list(value) if isinstance(value, (list, tuple)) else [value] * count


def layer_table(config) -> list[Layer]:
    """Every block of a denoiser config: a transformer's by stream, a U-Net's in LDM order."""
    if "num_single_layers" in config or "caption_projection_dim" in config:
        return transformer_table(config)
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


def transformer_table(config) -> list[Layer]:
    """FLUX: D0.. (`transformer_blocks`, text and image in separate streams) and S0..
    (`single_transformer_blocks`, one stream); SD3: D0.. (`transformer_blocks`, joint
    attention); then FINAL (the output projection) and LATENTS."""
    width = config["num_attention_heads"] * config["attention_head_dim"]
    flux = "num_single_layers" in config
    patch = 2 if flux else config.get("patch_size", 2)  # FLUX's pipeline packs 2x2 latent cells per token
    dual = set(config.get("dual_attention_layers") or ())  # SD3.5-medium: a second, image-only attention
    streams = ["double" if flux else "dual" if i in dual else "joint" for i in range(config["num_layers"])]
    table = [Layer(f"D{i}", f"transformer_blocks.{i}", width, 0, True, patch, s) for i, s in enumerate(streams)]
    if flux:
        single = config["num_single_layers"]
        table += [
            Layer(f"S{i}", f"single_transformer_blocks.{i}", width, 0, True, patch, "single") for i in range(single)
        ]
    out_channels = config.get("out_channels") or config["in_channels"]
    final = out_channels if flux else out_channels * patch * patch
    latents = Layer("LATENTS", LATENTS, config["in_channels"], 0, False, patch if flux else 1)  # FLUX's are packed
    return table + [Layer("FINAL", "proj_out", final, 0, False, patch), latents]


def canonical(name: str) -> str:
    """`in01` -> `IN1`, `M00` -> `MID`, `out03` -> `OUT3`; other names unchanged."""
    match = re.fullmatch(r"(IN|OUT)0*(\d+)", name.strip(), flags=re.IGNORECASE)
    if match:
        return f"{match[1].upper()}{match[2]}"
    match = re.fullmatch(r"([DS])0*(\d+)", name.strip(), flags=re.IGNORECASE)
    if match:
        return f"{match[1].upper()}{match[2]}"
    if re.fullmatch(r"MID|M0*", name.strip(), flags=re.IGNORECASE):
        return "MID"
    if name.strip().lower() in (LATENTS, "final"):
        return name.strip().upper()
    return name.strip()


KV = "kv:"  # prefix of a layer name in `needed_pairs` that stands for its attention's keys and values
KV_PROJECTIONS = ("to_k", "to_v")


class UnknownLayer(KeyError, ValueError):
    """A layer name the denoiser does not have; the message lists the names it does."""

    def __str__(self) -> str:
        return self.args[0]


class LayerMap:
    """Resolves storyboard layer names to module paths for one denoiser.

    `modules` is the set of the denoiser's module paths (from `named_modules()`), which
    makes raw paths like `up_blocks.1.attentions.0.transformer_blocks.0` valid too;
    without it (`config_only`: a config read before loading weights) only the blocks are known.
    """

    def __init__(self, config, modules: set[str] | None = None):
        self.config_only = modules is None
        self.layers = layer_table(config)
        self.by_alias = {layer.name: layer for layer in self.layers}
        self.by_module = {layer.module: layer for layer in self.layers}
        self.modules = set(modules) if modules is not None else set(self.by_module)
        # the top containers of the table's modules: `down_blocks.0`, `transformer_blocks.3`, `proj_out`
        self.roots = {".".join(layer.module.split(".")[:2]) for layer in self.layers if layer.module != LATENTS}

    @classmethod
    def of(cls, denoiser) -> LayerMap:
        return cls(denoiser.config, {name for name, _ in denoiser.named_modules() if name})

    @property
    def transformer(self) -> bool:
        return self.layers[0].patch > 1

    def __contains__(self, name: str) -> bool:
        return canonical(name) in self.by_alias or name in self.modules

    def may_hold(self, name: str) -> bool:
        """Whether `name` may be a module path inside one of this denoiser's own blocks, which
        only loading can tell (`up_blocks.1.attentions.0.transformer_blocks.0` on a U-Net's
        config; never a path of another family's layout). With the modules known, `in` says."""
        return self.config_only and any(name == root or name.startswith(root + ".") for root in self.roots)

    def module_path(self, name: str) -> str:
        alias = canonical(name)
        if alias in self.by_alias:
            return self.by_alias[alias].module
        if name in self.modules:
            return name
        raise UnknownLayer(f"unknown layer '{name}' (known: {self.listing()})")

    def resolve(self, name: str) -> list[str]:
        """The module paths a name stands for: one, or for `kv:NAME` the key and value
        projections of NAME's attention."""
        return self.kv_paths(name.removeprefix(KV)) if name.startswith(KV) else [self.module_path(name)]

    def kv_paths(self, name: str) -> list[str]:
        """The `to_k` and `to_v` paths of the attention a `kv` rule on `name` swaps: a
        transformer block's joint attention (`attn`), every self-attention (`attn1`) in a
        U-Net block, or the attention module `name` itself is."""
        path = self.module_path(name)
        if path.endswith(KV_PROJECTIONS):
            return [path]
        if self.config_only:  # the blocks' insides are not known before loading
            layer = self.by_module.get(path)
            if layer is None or not layer.cross_attention:
                raise UnknownLayer(f"'{name}' has no attention for a kv rule (known: {self.attention_names()})")
            return [f"{path}.attn.{p}" if layer.patch > 1 else f"{path}.attn1.{p}" for p in KV_PROJECTIONS]
        if f"{path}.to_k" in self.modules:
            attentions = [path]
        elif self.transformer:
            attentions = [f"{path}.attn"] if f"{path}.attn" in self.modules else []
        else:
            attentions = sorted(m for m in self.modules if m.startswith(path + ".") and m.endswith(".attn1"))
        if not attentions:
            raise UnknownLayer(f"'{name}' has no attention for a kv rule (known: {self.attention_names()})")
        return [f"{attention}.{p}" for attention in attentions for p in KV_PROJECTIONS]

    def attention_names(self) -> str:
        return ", ".join(layer.name for layer in self.cross_attention_layers())

    def layer_of(self, path: str) -> Layer | None:
        """The layer a module path lies in (itself or the block that holds it)."""
        while path:
            if path in self.by_module:
                return self.by_module[path]
            path = path.rpartition(".")[0]
        return None

    def known_names(self) -> set[str]:
        names = set(self.by_alias) | self.modules
        for layer in self.layers:  # the zero-padded and M00 spellings
            if layer.name == "MID":
                names.add("M00")
            elif layer.name in ("LATENTS", "FINAL"):
                names.add(layer.name.lower())
            else:
                prefix, number = re.fullmatch(r"([A-Z]+)(\d+)", layer.name).groups()
                names.add(f"{prefix}{int(number):02d}")
        return names

    def listing(self) -> str:
        aliases = ", ".join(layer.name for layer in self.layers)
        example = next(layer.module for layer in reversed(self.layers) if layer.module != LATENTS)
        return f"{aliases}, or a module path such as {example}"

    def cross_attention_layers(self) -> list[Layer]:
        return [layer for layer in self.layers if layer.cross_attention]
