"""Checks of a storyboard against the model it renders with (a ModelConfig read before
loading, or a loaded pipe's): layer names, kv rules' attention, the image size, boxes, what
the model's family can do, and whether LoRAs and ControlNets fit it."""

from __future__ import annotations

from pathlib import Path

from .checks import box_problem


def layer_problems(board, layers) -> list[str]:
    """Every layer name the model (a LayerMap) lacks. A layer map read from a config alone
    (no modules) lets raw paths inside one of its own blocks through: those are checked
    when the rules are compiled for the loaded denoiser."""
    from ..errors import shown
    from .source import dotted

    known, problems = layers.known_names(), []
    for path, rule in (pair for frame_rules in board.rule_paths() for pair in frame_rules):
        named = [(path + ("layers",), rule.layers)]
        if getattr(rule, "mask", None) is not None and rule.mask.layers:
            named.append((path + ("mask", "layers"), rule.mask.layers))
        for at, names in named:
            for i, name in enumerate(names):
                if name not in known and not layers.may_hold(name):
                    message = f"unknown layer '{shown(name)}' (known: {layers.listing()})"
                    problems.append(f"{board.where(at + (i,))}: {dotted(at)}: {message}")
                elif rule.mode == "kv" and at[-1] == "layers" and name in known:
                    problems += kv_problem(board, layers, name, at + (i,))
    return problems


def kv_problem(board, layers, name: str, at: tuple) -> list[str]:
    """A kv rule on a layer without attention (a resnet, FINAL, LATENTS)."""
    from ..engine.layers import UnknownLayer
    from .source import dotted

    try:
        layers.kv_paths(name)
    except UnknownLayer as error:  # placed as an unknown layer is: the name's position, the list's label
        return [f"{board.where(at)}: {dotted(at[:-1])}: {error}"]
    return []


def size_problems(board, width: int, height: int, step: int, label: str) -> list[str]:
    """The render's size when the model needs a multiple of `step` (a transformer packs
    2x2 latent cells per token: 16 pixels); diffusers would silently render another size."""
    problems = []
    for key, value in (("width", width), ("height", height)):
        if value % step:
            message = f"{value} is not a multiple of {step} ({label} renders in {step}-pixel blocks)"
            problems.append(board.problem(("render", key), message))
    return problems


def box_problems(board, width: int, height: int) -> list[str]:
    """Every box that lies wholly outside a width x height image."""
    problems = []
    for path, rule in (pair for frame_rules in board.rule_paths() for pair in frame_rules):
        boxes = getattr(getattr(rule, "mask", None), "boxes", None)
        problem = box_problem(boxes, width, height) if boxes else None
        if problem:
            problems.append(board.problem(path + ("mask", "boxes"), problem))
    return problems


T5_NEEDED = "FLUX.1 encodes prompts with T5: it cannot be left out"


def family_problems(board, family, scheduler: str | None = None) -> list[str]:
    """What the model's family (engine/families.py) cannot do that the storyboard asks
    for; and, when the scheduler it renders with is known, whether a real-image anchor
    can invert along it."""
    from ..engine.families import unsupported
    from ..engine.inversion import FLOW_SCHEDULERS, INVERSE_SCHEDULERS

    spec, problems = board.spec, []
    if spec.model.scheduler is not None and family.flow:
        message = (
            f"{family.label} is a flow-matching model: it renders with its own FlowMatchEulerDiscreteScheduler, "
            f"and '{spec.model.scheduler}' predicts noise; leave scheduler out"
        )
        problems.append(board.problem(("model", "scheduler"), message))
    for path, rule in (pair for frame_rules in board.rule_paths() for pair in frame_rules):
        if getattr(getattr(rule, "mask", None), "auto", None) == "noise":
            problem = unsupported(family, "noise_masks", "noise masks support", "use auto: attention")
            problems += [board.problem(path + ("mask", "auto"), problem)] if problem else []
    if not spec.model.t5 and family.name != "sd3":
        message = T5_NEEDED if family.name == "flux" else f"only SD3.x renders without T5; {family.label} has none"
        problems.append(board.problem(("model", "t5"), message))
    if spec.model.controlnet:
        problem = unsupported(family, "controlnet", "a ControlNet supports")
        problems += [board.problem(("model", "controlnet"), problem)] if problem else []
    if spec.anchor.image is not None:
        problem = unsupported(family, "image_anchor", "a real-image anchor supports")
        if problem is None and scheduler is not None and scheduler not in (*INVERSE_SCHEDULERS, *FLOW_SCHEDULERS):
            problem = (
                f"a real-image anchor needs a scheduler with an inverse form ({', '.join(INVERSE_SCHEDULERS)}); "
                f"the pipe's is {scheduler} (set model.scheduler: ddim)"
            )
        problems += [board.problem(("anchor", "image"), problem)] if problem else []
        problems += inversion_problems(board, family)
    return problems


def inversion_problems(board, family) -> list[str]:
    """Inversion settings the family's inversion has no use for."""
    inversion, where, problems = board.spec.anchor.inversion, ("anchor", "inversion"), []
    if inversion.nudge != 1 and not family.transformer:
        message = f"nudge applies to flow models (FLUX.1, SD3.x); {family.label} inverts along DDIM"
        problems.append(board.problem(where + ("nudge",), message))
    if inversion.guidance != 1 and not family.true_cfg:
        message = f"{family.label} inverts with the render's embedded guidance; this guidance is classifier-free"
        problems.append(board.problem(where + ("guidance",), message))
    return problems


def weights_problems(board, config) -> list[str]:
    """LoRAs and ControlNets that are not what they claim, or are made for another model
    than model.id (a ModelConfig): read from their headers and configs, before loading."""
    from ..models.compat import controlnet_config_problem, lora_problem

    spec, problems = board.spec, []
    for i, lora in enumerate(spec.model.lora):
        problem = lora_problem(Path(lora.path), config)
        problems += [board.problem(("model", "lora", i, "path"), problem)] if problem else []
    for i, controlnet in enumerate(spec.model.controlnet if config.family.controlnet else []):
        problem = controlnet_config_problem(controlnet.id, config)
        problems += [board.problem(("model", "controlnet", i, "id"), problem)] if problem else []
    return problems
