"""What a model is, read from its files without loading weights: the denoiser's config
(a U-Net's or a transformer's: its family, layers and native size), the VAE's scale,
and for keys the scheduler, dtype and device a render would use. A loaded pipeline gives
the same facts (`facts_of`), so a caller's own pipe is described the same way.

`validate` checks a storyboard against `configs_before_loading`; a render keys its shots
with `facts_from_files` and loads no model when every shot is already in place.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

from ..engine.families import Family, denoiser, family_of
from ..engine.layers import LayerMap
from ..errors import RenderFailure, error_line
from ..storyboard.schema import ModelSpec
from .builtins import TINY, tiny_config
from .locate import built_in, hub_json, locate

DENOISERS = ("unet", "transformer")  # the subfolders a diffusers pipeline keeps its denoiser in


@dataclass(frozen=True)
class ModelConfig:
    """The denoiser's config and the VAE's scale factor: enough to validate a storyboard."""

    denoiser: dict
    vae_scale: int
    modules: frozenset[str] | None = None  # a loaded denoiser's module paths (raw layer paths then resolve)
    vae_size: int | None = None  # the VAE config's sample_size: the side in pixels a FLUX config does not name

    @property
    def family(self) -> Family:
        return family_of(self.denoiser)

    @cached_property
    def layers(self) -> LayerMap:
        return LayerMap(self.denoiser, self.modules)

    @property
    def native(self) -> int:
        return native_size(self.denoiser, self.vae_scale, self.vae_size)

    @property
    def size_step(self) -> int:
        """Widths and heights are multiples of this: the VAE's scale, times the token's
        side on a transformer."""
        return self.vae_scale * self.layers.layers[0].patch


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
    model = denoiser(pipe)
    modules = frozenset(name for name, _ in model.named_modules() if name)
    config = ModelConfig(dict(model.config), pipe.vae_scale_factor, modules, pipe.vae.config.get("sample_size"))
    return ModelFacts(config, pipe.scheduler, str(model.dtype).removeprefix("torch."), pipe.device.type)


def native_size(config, vae_scale: int, vae_size: int | None = None) -> int:
    """The side in pixels a denoiser config was trained at (sample_size x the VAE's scale;
    a FLUX config has none: its VAE's sample_size, else FLUX.1's 1024)."""
    if "sample_size" not in config and family_of(config).name == "flux":
        return vae_size or 1024
    sample = config["sample_size"] if "sample_size" in config else 64
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
            config.denoiser["sample_size"] = 64
        return config
    if spec.id in TINY:
        return ModelConfig(*tiny_config(spec.id))
    location = locate(spec.id)
    folder = built_in(spec.id) if location.kind == "built-in" else Path(spec.id).expanduser()
    return folder_configs(folder)


def folder_configs(folder: Path) -> ModelConfig | None:
    """The configs of a diffusers folder; None without a U-Net or transformer config."""
    found = [folder / name / "config.json" for name in DENOISERS if (folder / name / "config.json").is_file()]
    if not found:
        return None
    vae = json.loads((folder / "vae" / "config.json").read_text()) if (folder / "vae" / "config.json").is_file() else {}
    scale = 2 ** (len(vae["block_out_channels"]) - 1) if vae else 8
    return ModelConfig(json.loads(found[0].read_text()), scale, vae_size=vae.get("sample_size"))


def configs_online(model_id: str, revision: str | None = None) -> ModelConfig:
    """The same from the hub (config files only, no weights)."""
    try:
        index = hub_json(model_id, "model_index.json", revision)
        name = next((name for name in DENOISERS if name in index), None)
        if name is None:
            raise ValueError("its model_index.json names no U-Net or transformer")
        config = hub_json(model_id, f"{name}/config.json", revision)
        vae = hub_json(model_id, "vae/config.json", revision)
    except (OSError, ValueError) as error:
        reason = error_line(error)
        raise RenderFailure(
            f"cannot read the configs of '{model_id}' (no network or no such repo?): {reason}"
        ) from None
    return ModelConfig(config, 2 ** (len(vae["block_out_channels"]) - 1), vae_size=vae.get("sample_size"))
