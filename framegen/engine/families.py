"""What each family of denoiser can do: one table, read by validation before loading, by
the render once the model is loaded, and by the engine's own compiler.

A family is detected once, from the denoiser's config (a diffusers U-Net or transformer
config), so that a config read from disk before loading and a loaded pipeline's agree.
A new family is one entry here (and its layer table in layers.py).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Family:
    name: str  # sd1 | sd2 | sdxl | flux | sd3
    label: str  # as users say it: SD1.x
    # the pooled text embedding enters the time embedding (SDXL, FLUX, SD3): a prompt
    # encodes to several tensors, and every block sees the prompt through it
    pooled_text: bool
    noise_masks: bool  # `auto: noise` (DiffEdit: the noise prediction's, or the velocity's, difference)
    image_anchor: bool  # `anchor.image`: a real image inverted along the render's schedule
    controlnet: bool
    # what, swapped whole at every step, gives the anchor bit for bit whatever the prompt:
    # `cross-attention` (every layer that takes the text), `last` (the last output block) or
    # `final` (the transformer's output: its final norm is modulated by the pooled text, so
    # no block's tokens are a bound)
    exact_bound: str
    transformer: bool = False  # a DiT (pipe.transformer, image tokens) rather than a U-Net
    # classifier-free guidance runs the denoiser on [uncond, cond]; FLUX.1 embeds its guidance
    true_cfg: bool = True
    # trained by flow matching: it renders with its own FlowMatchEulerDiscreteScheduler, and none
    # of the noise-prediction schedulers (ddim, euler, ...) applies
    flow: bool = False
    denoiser_class: str = "UNet2DConditionModel"  # diffusers' class, for a model built from the config alone


FAMILIES = {
    family.name: family
    for family in (
        Family("sd1", "SD1.x", False, True, True, True, "cross-attention"),
        Family("sd2", "SD2.x", False, True, True, True, "cross-attention"),
        # its resnets take the pooled text through the time embedding: only the last block is a bound
        Family("sdxl", "SDXL", True, False, False, True, "last"),
        # transformer, true_cfg (FLUX.1 embeds its guidance), flow, its diffusers class
        Family("flux", "FLUX.1", True, True, True, False, "final", True, False, True, "FluxTransformer2DModel"),
        Family("sd3", "SD3.x", True, True, True, False, "final", True, True, True, "SD3Transformer2DModel"),
    )
}


def family_of(config) -> Family:
    """The family of a diffusers denoiser config (a mapping): a UNet2DConditionModel's,
    a FluxTransformer2DModel's or an SD3Transformer2DModel's."""
    if "num_single_layers" in config:
        return FAMILIES["flux"]
    if "caption_projection_dim" in config:
        return FAMILIES["sd3"]
    if config.get("addition_embed_type") == "text_time":
        return FAMILIES["sdxl"]
    if config.get("use_linear_projection"):  # SD2's transformers project linearly, SD1's with 1x1 convolutions
        return FAMILIES["sd2"]
    return FAMILIES["sd1"]


def denoiser(pipe):
    """The pipe's denoiser: its transformer (FLUX, SD3) or its U-Net."""
    transformer = getattr(pipe, "transformer", None)
    return transformer if transformer is not None else pipe.unet


def bound_layers(family: Family, layers) -> list[str]:
    """The layer names (of a LayerMap) whose whole swap at every step is `family`'s exact bound."""
    if family.exact_bound == "cross-attention":
        return [layer.name for layer in layers.cross_attention_layers()]
    if family.exact_bound == "final":
        return ["FINAL"]
    return [next(layer.name for layer in reversed(layers.layers) if layer.name.startswith("OUT"))]


def supported(capability: str) -> str:
    """The families that have `capability`, as one phrase: `SD1.x/2.x and FLUX.1`."""
    labels = [family.label for family in FAMILIES.values() if getattr(family, capability)]
    groups: list[str] = []
    for label in labels:  # SD1.x, SD2.x -> SD1.x/2.x; FLUX.1 and SD3.x stand alone
        if groups and label.startswith("SD") and groups[-1].startswith("SD") and label != "SD3.x":
            groups[-1] += "/" + label.removeprefix("SD")
        else:
            groups.append(label)
    return groups[0] if len(groups) == 1 else ", ".join(groups[:-1]) + " and " + groups[-1]


def unsupported(family: Family, capability: str, what: str, instead: str = "") -> str | None:
    """None when `family` has `capability`, else the one line that says so: `what` is the
    sentence's start, such as "noise masks support"."""
    if getattr(family, capability):
        return None
    return f"{what} {supported(capability)} pipelines" + (f"; {instead}" if instead else "")
