"""The scheduler a render uses, decided once: the model's own (read from its files, or
the loaded pipe's), then `model.prediction`, then `model.scheduler`, then DDIM for a
real-image anchor when the model's own has no inverse form. The loader hands the pipe
this scheduler, and keys describe this same object."""

from __future__ import annotations

import json
from pathlib import Path

from ..storyboard.schema import ModelSpec
from .builtins import TINY, tiny_scheduler_of
from .locate import built_in, hub_json, locate

SCHEDULER_CLASSES = {
    "ddim": ("DDIMScheduler", {}),
    "euler": ("EulerDiscreteScheduler", {}),
    "euler_a": ("EulerAncestralDiscreteScheduler", {}),
    "dpmpp_2m": ("DPMSolverMultistepScheduler", {"algorithm_type": "dpmsolver++", "solver_order": 2}),
    "pndm": ("PNDMScheduler", {"skip_prk_steps": True}),
    "lms": ("LMSDiscreteScheduler", {}),
}


def configured(scheduler, spec: ModelSpec, image_anchor: bool = False):
    """`scheduler` (the model's own) as `spec` and the anchor ask for it."""
    from ..engine.inversion import FLOW_SCHEDULERS, INVERSE_SCHEDULERS  # torch: not at import time

    if spec.prediction:
        scheduler = with_prediction(scheduler, spec.prediction)
    if spec.scheduler:
        return named(scheduler, spec.scheduler)
    if image_anchor and type(scheduler).__name__ not in (*INVERSE_SCHEDULERS, *FLOW_SCHEDULERS):
        return named(scheduler, "ddim")  # a real image inverts along the render's schedule
    return scheduler


def named(scheduler, name: str):
    """The scheduler called `name` (ddim, euler, ...) with `scheduler`'s configuration."""
    import diffusers

    class_name, overrides = SCHEDULER_CLASSES[name]
    return getattr(diffusers, class_name).from_config(scheduler.config, **overrides)


def with_prediction(scheduler, prediction: str):
    """The same scheduler predicting `epsilon` (noise) or `v` (velocity)."""
    kind = "v_prediction" if prediction == "v" else "epsilon"
    return type(scheduler).from_config(scheduler.config, prediction_type=kind)


def from_files(spec: ModelSpec, online: bool = True):
    """The model's own scheduler from its config files, or None when they cannot be read
    (a hub id offline, not in the hub's cache)."""
    if spec.id in TINY:
        return tiny_scheduler_of(spec.id)
    if spec.id.endswith(".safetensors"):
        from .checkpoints import Checkpoint

        checkpoint = Checkpoint.read(Path(spec.id))
        scheduler = from_folder(checkpoint.config_folder(spec), spec.revision, online)
        if scheduler is not None and checkpoint.v_pred_key:
            scheduler = with_prediction(scheduler, "v")
        return scheduler
    location = locate(spec.id)
    where = built_in(spec.id) if location.kind == "built-in" else spec.id
    return from_folder(where, spec.revision, online)


def from_folder(where, revision: str | None = None, online: bool = True):
    """The scheduler of a diffusers folder or hub id, of the class its model_index.json names."""
    import diffusers

    local = Path(where).expanduser()
    try:
        if local.is_dir():
            index = (
                json.loads((local / "model_index.json").read_text()) if (local / "model_index.json").is_file() else {}
            )
            config = diffusers.DDIMScheduler.load_config(str(local), subfolder="scheduler")
        elif online:
            index, config = {}, hub_json(str(where), "scheduler/scheduler_config.json", revision)
        else:
            return None
    except (OSError, ValueError):
        return None
    class_name = index.get("scheduler", [None, config["_class_name"]])[1]
    return getattr(diffusers, class_name).from_config(config)


def set_scheduler(pipe, name: str) -> None:
    """Give `pipe` the scheduler called `name`, configured as its own."""
    pipe.scheduler = named(pipe.scheduler, name)
