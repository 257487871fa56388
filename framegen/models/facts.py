"""What a model is, read from its files without loading weights: the U-Net's config (its
family, layers and native size), the VAE's scale, and for keys the scheduler, dtype and
device a render would use. A loaded pipeline gives the same facts (`facts_of`), so a
caller's own pipe is described the same way.

`validate` checks a storyboard against `configs_before_loading`; a render keys its shots
with `facts_from_files` and loads no model when every shot is already in place.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

from ..engine.families import Family, family_of
from ..engine.layers import LayerMap
from ..errors import RenderFailure, error_line
from ..storyboard.schema import ModelSpec
from .locate import built_in, locate


@dataclass(frozen=True)
class ModelConfig:
    """The U-Net's config and the VAE's scale factor: enough to validate a storyboard."""

    unet: dict
    vae_scale: int
    modules: frozenset[str] | None = None  # a loaded U-Net's module paths (raw layer paths then resolve)

    @property
    def family(self) -> Family:
        return family_of(self.unet)

    @cached_property
    def layers(self) -> LayerMap:
        return LayerMap(self.unet, self.modules)

    @property
    def native(self) -> int:
        return native_size(self.unet, self.vae_scale)


@dataclass(frozen=True)
class ModelFacts:
    """A model's config plus what a render with it decides: the scheduler (the object the
    pipe will use), the dtype and the device type."""

    config: ModelConfig
    scheduler: object = field(compare=False)
    dtype: str  # float32, bfloat16, ...
    device: str  # cpu, cuda, mps

    @property
    def scheduler_fields(self) -> dict:
        config = {k: v for k, v in self.scheduler.config.items() if not k.startswith("_")}
        return {"class": type(self.scheduler).__name__, **config}


def facts_from_files(spec: ModelSpec, image_anchor: bool = False, online: bool = True) -> ModelFacts | None:
    """The facts a render of `spec` would have, from files alone; None when only loading
    will tell (a hub id whose configs cannot be read)."""
    from .load import resolve_device_dtype
    from .schedulers import configured, from_files

    config = configs_before_loading(spec, online)
    scheduler = from_files(spec, online) if config is not None else None
    if scheduler is None:
        return None
    device, dtype = resolve_device_dtype(spec)
    scheduler = configured(scheduler, spec, image_anchor)
    return ModelFacts(config, scheduler, str(dtype).removeprefix("torch."), device.type)


def facts_of(pipe) -> ModelFacts:
    """The facts of a loaded pipeline."""
    modules = frozenset(name for name, _ in pipe.unet.named_modules() if name)
    config = ModelConfig(dict(pipe.unet.config), pipe.vae_scale_factor, modules)
    return ModelFacts(config, pipe.scheduler, str(pipe.unet.dtype).removeprefix("torch."), pipe.device.type)


def native_size(unet_config, vae_scale: int) -> int:
    """The side in pixels a U-Net config was trained at (sample_size x the VAE's scale)."""
    sample = unet_config["sample_size"] if "sample_size" in unet_config else 64
    return (sample if isinstance(sample, int) else sample[0]) * vae_scale


def configs_before_loading(spec: ModelSpec, online: bool = True) -> ModelConfig | None:
    """The configs read without weights: bundled or local files, else (`online`) the
    hub's config files; None when only loading will tell (a hub id offline)."""
    config = configs_offline(spec)
    if config is None and online and locate(spec.id).is_hub:
        try:
            config = configs_online(spec.id, spec.revision)
        except RenderFailure:  # no network: find out once the weights load
            return None
    return config


def configs_offline(spec: ModelSpec) -> ModelConfig | None:
    """The configs when they can be read without weights or network."""
    if spec.id.endswith(".safetensors"):
        from .checkpoints import Checkpoint

        checkpoint = Checkpoint.read(Path(spec.id))
        config = folder_configs(Path(checkpoint.config_folder(spec)))
        if config is not None and checkpoint.is_sd2_base(spec):
            config.unet["sample_size"] = 64
        return config
    if spec.id == "tiny-random":
        from .tiny import SD1_UNET, VAE_SCALE

        return ModelConfig(dict(SD1_UNET, mid_block_type="UNetMidBlock2DCrossAttn"), VAE_SCALE)
    location = locate(spec.id)
    folder = built_in(spec.id) if location.kind == "built-in" else Path(spec.id).expanduser()
    return folder_configs(folder)


def folder_configs(folder: Path) -> ModelConfig | None:
    """The configs of a diffusers folder; None without a U-Net config."""
    unet, vae = folder / "unet" / "config.json", folder / "vae" / "config.json"
    if not unet.is_file():
        return None
    scale = 8
    if vae.is_file():
        scale = 2 ** (len(json.loads(vae.read_text())["block_out_channels"]) - 1)
    return ModelConfig(json.loads(unet.read_text()), scale)


def configs_online(model_id: str, revision: str | None = None) -> ModelConfig:
    """The same from the hub (config files only, no weights)."""
    from diffusers import AutoencoderKL, UNet2DConditionModel

    try:
        unet = UNet2DConditionModel.load_config(model_id, subfolder="unet", revision=revision)
        vae = AutoencoderKL.load_config(model_id, subfolder="vae", revision=revision)
    except (OSError, ValueError) as error:
        reason = error_line(error)
        raise RenderFailure(
            f"cannot read the configs of '{model_id}' (no network or no such repo?): {reason}"
        ) from None
    return ModelConfig(dict(unet), 2 ** (len(vae["block_out_channels"]) - 1))
