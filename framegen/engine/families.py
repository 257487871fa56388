"""What each family of denoiser can do: one table, read by validation before loading, by
the render once the model is loaded, and by the engine's own compiler.

A family is detected once, from the denoiser's config (a diffusers U-Net config today),
so that a config read from disk before loading and a loaded pipeline's agree. A new
family is one entry here.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Family:
    name: str  # sd1 | sd2 | sdxl
    label: str  # as users say it: SD1.x
    # the pooled text embedding and the image size enter the time embedding (SDXL): a
    # prompt encodes to four tensors, and every block sees the prompt through it
    pooled_text: bool
    noise_masks: bool  # `auto: noise` (DiffEdit's noise-prediction difference)
    image_anchor: bool  # `anchor.image`: a real image inverted along the render's schedule
    controlnet: bool
    # what, swapped whole at every step, gives the anchor bit for bit whatever the prompt:
    # `cross-attention` (every layer that takes the text) or `last` (the last output block)
    exact_bound: str


FAMILIES = {
    family.name: family
    for family in (
        Family("sd1", "SD1.x", False, True, True, True, "cross-attention"),
        Family("sd2", "SD2.x", False, True, True, True, "cross-attention"),
        # its resnets take the pooled text through the time embedding: only the last block is a bound
        Family("sdxl", "SDXL", True, False, False, True, "last"),
    )
}


def family_of(config) -> Family:
    """The family of a diffusers UNet2DConditionModel config (a mapping)."""
    if config.get("addition_embed_type") == "text_time":
        return FAMILIES["sdxl"]
    if config.get("use_linear_projection"):  # SD2's transformers project linearly, SD1's with 1x1 convolutions
        return FAMILIES["sd2"]
    return FAMILIES["sd1"]


def bound_layers(family: Family, layers) -> list[str]:
    """The layer names (of a LayerMap) whose whole swap at every step is `family`'s exact bound."""
    if family.exact_bound == "cross-attention":
        return [layer.name for layer in layers.cross_attention_layers()]
    return [next(layer.name for layer in reversed(layers.layers) if layer.name.startswith("OUT"))]


def supported(capability: str) -> str:
    """The families that have `capability`, as one phrase: `SD1.x/2.x`."""
    labels = [family.label for family in FAMILIES.values() if getattr(family, capability)]
    return "/".join(labels[:1] + [label.removeprefix("SD") for label in labels[1:]])


def unsupported(family: Family, capability: str, what: str, instead: str = "") -> str | None:
    """None when `family` has `capability`, else the one line that says so: `what` is the
    sentence's start, such as "noise masks support"."""
    if getattr(family, capability):
        return None
    return f"{what} {supported(capability)} pipelines" + (f"; {instead}" if instead else "")
