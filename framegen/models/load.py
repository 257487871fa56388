"""Loading a pipeline from a storyboard's `model:` block, and lending a caller's pipe to
one render.

`id` is a tiny model (`tiny-random`, `tiny-random-flux`, `tiny-random-sd3`: built here),
`demo` (bundled weights), a single `.safetensors` checkpoint (checkpoints.py), a local
diffusers folder, or a hub id (locate.py decides which). Weights load with safetensors
only and remote code is never trusted.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from ..errors import RenderFailure, error_line, warn
from ..storyboard.schema import ModelSpec
from .builtins import TINY, tiny_build
from .locate import built_in, locate
from .schedulers import configured, from_files


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


def load_pipeline(spec: ModelSpec, device=None, image_anchor: bool = False, scheduler=None):
    """The diffusers pipeline for `spec`, on its resolved device and dtype (`device`
    overrides `auto`: each process of a distributed render has its own), with `scheduler`
    (facts_from_files'), else the one schedulers.configured decides (`image_anchor`: one
    with an inverse form)."""
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
    pipe.scheduler = scheduler or configured(from_files(spec, online=False) or pipe.scheduler, spec, image_anchor)
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

    if spec.id in TINY:
        pipe = tiny_build(spec.id, t5=spec.t5)
        return pipe if dtype == torch.float32 else pipe.to(dtype=dtype)
    if spec.id == "demo":
        from .demo import load_pipeline as load_demo

        return load_demo(dtype=dtype)
    if spec.id == "demo-flow":
        from . import demo_flow

        return demo_flow.load_pipeline(dtype=dtype)
    path = Path(spec.id).expanduser()
    if spec.id.endswith(".safetensors"):
        if not path.is_file():
            raise FileNotFoundError(f"no such file '{path}'")
        return checkpoints.load(spec, dtype)
    options = dict(dtype=dtype, use_safetensors=True, safety_checker=None, requires_safety_checker=False)
    if not spec.t5:  # SD3 without T5: diffusers puts zeros in its place
        options.update(text_encoder_3=None, tokenizer_3=None)
    if not locate(spec.id).is_hub and not path.is_dir():
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
        location = locate(controlnet.id, what="controlnet")
        where = built_in(controlnet.id) if location.kind == "built-in" else location.path
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


def add_loras(pipe, spec: ModelSpec) -> list[str]:
    """Load the model's LoRAs (diffusers or kohya/A1111 safetensors, through diffusers'
    own loader and peft) under their names, at their scales; ones already loaded stay.
    Returns the names it loaded."""
    if not spec.lora:
        return []
    loaded = {name for names in pipe.get_list_adapters().values() for name in names}
    added = []
    for lora in spec.lora:
        if lora.key in loaded:
            continue
        try:
            pipe.load_lora_weights(lora.path, adapter_name=lora.key)
        except (OSError, ValueError, KeyError, RuntimeError) as error:
            raise RenderFailure(f"LoRA '{lora.path}' could not be loaded: {error_line(error, 200)}") from None
        added.append(lora.key)
    set_lora_scales(pipe, spec.lora_scales)
    return added


def set_lora_scales(pipe, scales: tuple[tuple[str, float], ...]) -> None:
    """Give each named LoRA its scale for the next pass (0 turns one off)."""
    if scales:
        pipe.set_adapters([name for name, _ in scales], adapter_weights=[scale for _, scale in scales])


@contextmanager
def borrowed(pipe, spec: ModelSpec, image_anchor: bool = False) -> Iterator:
    """A caller's pipe for one render: the storyboard's LoRAs loaded onto it and, for a
    real-image anchor, a scheduler with an inverse form; on exit it is as it came in
    (its scheduler, its own LoRAs with their scales and which are active)."""
    scheduler, adapters = pipe.scheduler, _adapter_state(pipe)
    active = pipe.get_active_adapters() if adapters else []
    added = []
    try:
        if image_anchor and not spec.scheduler:
            pipe.scheduler = configured(pipe.scheduler, ModelSpec(id=spec.id), image_anchor=True)
        added = add_loras(pipe, spec)
        yield pipe
    finally:
        pipe.scheduler = scheduler
        if added and active:
            pipe.set_adapters(active)  # the caller's first: ours are then deleted inactive
        if added:
            pipe.delete_adapters(added)
        _restore_adapters(adapters)


def _adapter_state(pipe) -> list:
    """Each LoRA layer's active adapters and scales (peft's BaseTunerLayer), to put back."""
    from peft.tuners.tuners_utils import BaseTunerLayer

    state = []
    for name in pipe.components:
        component = getattr(pipe, name, None)
        for module in component.modules() if hasattr(component, "modules") else ():
            if isinstance(module, BaseTunerLayer):
                state.append((module, list(module.active_adapters), dict(module.scaling)))
    return state


def _restore_adapters(state: list) -> None:
    for module, active, scaling in state:
        module.set_adapter(active)
        module.scaling.update(scaling)
