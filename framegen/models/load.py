"""Loading a pipeline from a storyboard's `model:` block.

`id` is `tiny-random` (built here), `demo` (bundled weights), a single `.safetensors`
checkpoint (checkpoints.py), a local diffusers folder, or a hub id. Weights load with safetensors only
and remote code is never trusted.
"""

from __future__ import annotations

import json
from pathlib import Path

from ..errors import RenderFailure, error_line, warn
from ..storyboard.schema import ModelSpec
from .checkpoints import set_prediction

SCHEDULER_CLASSES = {
    "ddim": ("DDIMScheduler", {}),
    "euler": ("EulerDiscreteScheduler", {}),
    "euler_a": ("EulerAncestralDiscreteScheduler", {}),
    "dpmpp_2m": ("DPMSolverMultistepScheduler", {"algorithm_type": "dpmsolver++", "solver_order": 2}),
    "pndm": ("PNDMScheduler", {"skip_prk_steps": True}),
    "lms": ("LMSDiscreteScheduler", {}),
}


def resolve_device_dtype(spec: ModelSpec):
    """`auto`: CUDA in float16, else MPS in float16, else CPU in float32."""
    import torch

    device = spec.device
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "mps" if torch.backends.mps.is_available() else "cpu"
    if spec.dtype == "auto":
        dtype = torch.float32 if device == "cpu" else torch.float16
    else:
        dtype = getattr(torch, spec.dtype)
    return torch.device(device), dtype


def native_size(unet_config, vae_scale: int) -> int:
    """The side in pixels a U-Net config was trained at (sample_size x the VAE's scale)."""
    sample = unet_config["sample_size"] if "sample_size" in unet_config else 64
    return (sample if isinstance(sample, int) else sample[0]) * vae_scale


def configs_before_loading(spec: ModelSpec, online: bool = True) -> tuple[dict, int] | None:
    """(U-Net config, VAE scale factor) read without weights: bundled or local configs,
    else (`online`) the hub's config files; None when only loading will tell (a single
    file, or a hub id offline)."""
    configs = configs_offline(spec)
    if configs is None and online and is_hub_id(spec.id):
        try:
            configs = configs_online(spec.id, spec.revision)
        except RenderFailure:  # no network: find out once the weights load
            return None
    return configs


def configs_offline(spec: ModelSpec) -> tuple[dict, int] | None:
    """(U-Net config, VAE scale factor) when they can be read without weights or network."""
    model_id = spec.id
    if model_id.endswith(".safetensors"):
        from .checkpoints import Checkpoint

        checkpoint = Checkpoint.read(Path(model_id))
        configs = folder_configs(Path(checkpoint.config_folder(spec)))
        if configs is not None and checkpoint.is_sd2_base(spec):
            configs[0]["sample_size"] = 64
        return configs
    if model_id == "tiny-random":
        from .tiny import SD1_UNET, VAE_SCALE

        return dict(SD1_UNET, mid_block_type="UNetMidBlock2DCrossAttn"), VAE_SCALE
    if model_id == "demo":
        from .demo import WEIGHTS_DIR

        folder = WEIGHTS_DIR
    else:
        folder = Path(model_id).expanduser()
    return folder_configs(folder)


def folder_configs(folder: Path) -> tuple[dict, int] | None:
    """(U-Net config, VAE scale factor) of a diffusers folder; None without a U-Net config."""
    unet, vae = folder / "unet" / "config.json", folder / "vae" / "config.json"
    if not unet.is_file():
        return None
    scale = 8
    if vae.is_file():
        scale = 2 ** (len(json.loads(vae.read_text())["block_out_channels"]) - 1)
    return json.loads(unet.read_text()), scale


def is_hub_id(model_id: str) -> bool:
    return not (
        model_id in ("tiny-random", "demo")
        or model_id.endswith(".safetensors")
        or model_id.startswith((".", "/", "~"))
        or Path(model_id).exists()
    )


def configs_online(model_id: str, revision: str | None = None) -> tuple[dict, int]:
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
    return unet, 2 ** (len(vae["block_out_channels"]) - 1)


def load_pipeline(spec: ModelSpec, device=None):
    """The diffusers pipeline for `spec`, on its resolved device and dtype (`device`
    overrides `auto`: each process of a distributed render has its own)."""
    import torch

    resolved, dtype = resolve_device_dtype(spec)
    device = device if device is not None and spec.device == "auto" else resolved
    if torch.device(device).type == "cpu" and dtype == torch.float16:
        # CPUs have no fast float16 kernels: 5.5x slower than float32 on the demo model, ~100x at SD1.5 size
        warn("dtype float16 on a CPU is many times slower than bfloat16 or float32; use `dtype: bfloat16`")
    try:
        pipe = _load(spec, dtype)
    except FileNotFoundError as error:
        raise RenderFailure(f"model '{spec.id}' not found: {error}") from None
    except (OSError, ValueError, KeyError, TypeError) as error:  # missing files, no network, bad repo id, bad weights
        raise RenderFailure(f"model '{spec.id}' could not be loaded: {error_line(error)}") from None
    if spec.controlnet:
        pipe = with_controlnets(pipe, spec, dtype)
    if spec.prediction:
        set_prediction(pipe, spec.prediction)
    if spec.scheduler:
        set_scheduler(pipe, spec.scheduler)
    add_loras(pipe, spec)
    pipe.set_progress_bar_config(disable=True)
    try:
        return pipe.to(device)
    except (RuntimeError, AssertionError) as error:
        raise RenderFailure(f"cannot move model '{spec.id}' to {device}: {error_line(error)}") from None


def _load(spec: ModelSpec, dtype):
    import diffusers
    import torch

    from . import checkpoints

    if spec.id == "tiny-random":
        from .tiny import tiny_pipeline

        pipe = tiny_pipeline()
        return pipe if dtype == torch.float32 else pipe.to(dtype=dtype)
    if spec.id == "demo":
        from .demo import load_pipeline as load_demo

        return load_demo(dtype=dtype)
    path = Path(spec.id).expanduser()
    if spec.id.endswith(".safetensors"):
        if not path.is_file():
            raise FileNotFoundError(f"no such file '{path}'")
        return checkpoints.load(spec, dtype)
    options = dict(dtype=dtype, use_safetensors=True, safety_checker=None, requires_safety_checker=False)
    if not is_hub_id(spec.id) and not path.is_dir():
        raise FileNotFoundError(f"no such folder '{path}'")
    variant = spec.variant or (only_variant(path) if path.is_dir() else None)
    return diffusers.AutoPipelineForText2Image.from_pretrained(
        str(path) if path.is_dir() else spec.id, revision=spec.revision, variant=variant, **options
    )


def with_controlnets(pipe, spec: ModelSpec, dtype):
    """`pipe` as diffusers' ControlNet pipeline of its kind, with `model.controlnet`'s
    ControlNets (one, or diffusers' MultiControlNetModel for several): diffusers folders or
    hub ids, safetensors only. Its U-Net is the same module, so the hooks see the same layers."""
    import diffusers

    nets = []
    for controlnet in spec.controlnet:
        where = controlnet.id
        if where == "demo-control":
            from .demo import CONTROLNET_DIR

            where = CONTROLNET_DIR
        try:
            nets.append(diffusers.ControlNetModel.from_pretrained(where, dtype=dtype, use_safetensors=True))
        except (OSError, ValueError) as error:
            raise RenderFailure(f"ControlNet '{controlnet.id}' could not be loaded: {error_line(error)}") from None
    controlnet = nets[0] if len(nets) == 1 else diffusers.MultiControlNetModel(nets)
    return diffusers.AutoPipelineForText2Image.from_pipe(pipe, controlnet=controlnet)


def only_variant(folder: Path) -> str | None:
    """The variant of a local folder whose U-Net weights exist only as a variant
    (`diffusion_pytorch_model.fp16.safetensors`, the usual SDXL download), else None."""
    unet = folder / "unet"
    if (unet / "diffusion_pytorch_model.safetensors").is_file():
        return None
    variants = sorted(p.name.split(".")[-2] for p in unet.glob("diffusion_pytorch_model.*.safetensors"))
    return variants[0] if len(variants) == 1 else None


def invertible_scheduler(pipe) -> None:
    """A real-image anchor inverts along the render's schedule: a model whose own
    scheduler has no inverse form renders with DDIM (which has)."""
    from ..engine.inversion import INVERSE_SCHEDULERS

    if type(pipe.scheduler).__name__ not in INVERSE_SCHEDULERS:
        set_scheduler(pipe, "ddim")


def set_scheduler(pipe, name: str) -> None:
    import diffusers

    class_name, overrides = SCHEDULER_CLASSES[name]
    pipe.scheduler = getattr(diffusers, class_name).from_config(pipe.scheduler.config, **overrides)


def weights_fingerprint(spec: ModelSpec) -> dict:
    """What identifies the weights, for cache keys: the hub revision's commit when the
    hub cache records it, else SHA-256 of the weight files (local folder, single file,
    the bundled demo), remembered per file content (fingerprints.py); `tiny-random` is
    fixed by framegen's version."""
    from .fingerprints import file_sha256

    if spec.id == "tiny-random":
        return {"id": spec.id}
    if spec.id == "demo":
        from .demo import WEIGHTS_DIR

        folder = WEIGHTS_DIR
    elif is_hub_id(spec.id):
        import os

        hub = Path(
            os.environ.get("HF_HUB_CACHE") or Path(os.environ.get("HF_HOME", "~/.cache/huggingface")) / "hub"
        ).expanduser()
        ref = hub / f"models--{spec.id.replace('/', '--')}" / "refs" / (spec.revision or "main")
        commit = ref.read_text().strip() if ref.is_file() else spec.revision
        return {"id": spec.id, "revision": spec.revision, "commit": commit}
    else:
        folder = Path(spec.id).expanduser()
    files = [folder] if folder.is_file() else sorted(folder.rglob("*.safetensors"))
    configs = {}
    if spec.config:  # the architecture a single file is read as
        local = Path(spec.config)
        configs = {"config": {str(f.relative_to(local)): file_sha256(f) for f in sorted(local.rglob("*.json"))}}
        configs = configs if local.is_dir() else {"config": spec.config}
    return {
        "id": spec.id,
        "files": {str(f.relative_to(folder)) if f != folder else f.name: file_sha256(f) for f in files},
        **configs,
    }


def add_loras(pipe, spec: ModelSpec) -> None:
    """Load the model's LoRAs (diffusers or kohya/A1111 safetensors, through diffusers'
    own loader and peft) under their names, at their scales; ones already loaded stay."""
    if not spec.lora:
        return
    loaded = {name for names in pipe.get_list_adapters().values() for name in names}
    for lora in spec.lora:
        if lora.key in loaded:
            continue
        try:
            pipe.load_lora_weights(lora.path, adapter_name=lora.key)
        except (OSError, ValueError, KeyError, RuntimeError) as error:
            raise RenderFailure(f"LoRA '{lora.path}' could not be loaded: {error_line(error, 200)}") from None
    set_lora_scales(pipe, spec.lora_scales)


def set_lora_scales(pipe, scales: tuple[tuple[str, float], ...]) -> None:
    """Give each named LoRA its scale for the next pass (0 turns one off)."""
    if scales:
        pipe.set_adapters([name for name, _ in scales], adapter_weights=[scale for _, scale in scales])


def lora_fingerprint(spec: ModelSpec) -> list[list]:
    """[name, SHA-256, scale] of each LoRA, for cache and resume keys."""
    from .fingerprints import file_sha256

    return [[lora.key, file_sha256(Path(lora.path)), lora.scale] for lora in spec.lora]
