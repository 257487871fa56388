"""What a storyboard's files must be, checked before any model loads: mask images that
open as images, a segmenter model that exists, a local model and LoRAs that exist and are
what they claim (a diffusers folder, safetensors files), an output folder inside the
storyboard's tree unless consented to, and boxes that overlap the image. Local paths
resolve against the storyboard's folder, like every other path in it."""

from __future__ import annotations

import json
import os
import struct
from pathlib import Path

from PIL import Image

from .schema import OutputSpec

BUILT_IN_MODELS = ("tiny-random", "demo")
MAX_SAFETENSORS_HEADER = 100 << 20  # bytes; safetensors' own limit


def resolve_files(board) -> list[str]:
    """Resolve the model, its LoRAs and the segmenter's model against the storyboard's
    folder (rewriting their paths as absolute ones), and check them and `output`; the
    problems as positioned lines."""
    spec, problems = board.spec, []
    location, problem = model_location(spec.model.id, board.folder)
    if problem:
        problems.append(board.problem(("model", "id"), problem))
    spec.model.id = location
    if spec.model.config is not None:
        config, problem = model_location(spec.model.config, board.folder)
        if problem is None and not spec.model.id.endswith(".safetensors"):
            problem = "`config` describes a single-file checkpoint; model.id is not a .safetensors file"
        elif problem is None and config.endswith(".safetensors"):
            problem = f"'{config}' is a file; `config` is a diffusers folder or hub id"
        if problem:
            problems.append(board.problem(("model", "config"), problem))
        spec.model.config = config
    lora_names: dict[str, int] = {}
    for i, lora in enumerate(spec.model.lora):
        at = ("model", "lora", i)
        path = (board.folder / Path(lora.path).expanduser()).resolve()
        problem = safetensors_problem(path) if path.is_file() else f"no such file '{path}'"
        if problem:
            problems.append(board.problem(at + ("path",), problem))
        if lora.key in lora_names:
            problems.append(board.problem(at, f"two LoRAs are named '{lora.key}' (give one a `name`)"))
        lora_names[lora.key] = i
        lora.path = str(path)
    model_path = spec.report.background.model_path
    if model_path is not None and not (board.folder / model_path).is_file():
        problems.append(
            board.problem(("report", "background", "model_path"), f"no such file '{board.folder / model_path}'")
        )
    output = spec.output
    if output is not None and not (isinstance(output, OutputSpec) and output.outside):
        folder, target = Path(os.path.abspath(board.folder)), Path(os.path.abspath(board.output_dir))
        if target != folder and folder not in target.parents:
            written = output.path if isinstance(output, OutputSpec) else output
            problems.append(
                board.problem(
                    ("output",),
                    f"'{written}' is not inside the storyboard's folder {folder}; give it on the command line "
                    f"(-o), or write `output: {{path: {written}, outside: true}}`",
                )
            )
    return problems


def controlnet_problems(board) -> list[str]:
    """ControlNets that exist (a diffusers folder, a safetensors file, or a hub id), and
    control images that open, one per ControlNet, on the anchor and on any frame."""
    spec, problems = board.spec, []
    for i, controlnet in enumerate(spec.model.controlnet):
        local = (board.folder / Path(controlnet.id).expanduser()).resolve()
        if controlnet.id == "demo-control":  # bundled with the demo model
            from ..models.demo import CONTROLNET_DIR

            local = CONTROLNET_DIR
            if not (local / "config.json").is_file():
                problems.append(
                    board.problem(
                        ("model", "controlnet", i, "id"),
                        f"demo-control is not installed in {local}; train it from the checkout root with "
                        "`python -m tools.demo.train_controlnet --out DIR --install framegen/models/demo/controlnet`",
                    )
                )
                continue
        if local.is_file():
            problem = safetensors_problem(local)
        elif local.is_dir():
            problem = None if (local / "config.json").is_file() else f"'{local}' is not a diffusers ControlNet folder"
        elif controlnet.id.endswith(".safetensors") or controlnet.id.startswith((".", "/", "~")):
            problem = f"no such file or folder '{local}'"
        else:
            problem, local = None, controlnet.id  # a hub id
        if problem:
            problems.append(board.problem(("model", "controlnet", i, "id"), problem))
        controlnet.id = str(local)
    count = len(spec.model.controlnet)
    places = [(("anchor", "control"), spec.anchor.control)]
    places += [(("frames", i, "control"), frame.control) for i, frame in enumerate(spec.frames)]
    for at, images in places:
        if images is None:
            continue
        if len(images) != count:
            problems.append(
                board.problem(at, f"{len(images)} control images for {count} ControlNets (model.controlnet)")
            )
        for j, image in enumerate(images):
            problem = image_problem(board.folder / image)
            if problem:
                problems.append(board.problem(at + (j,), problem))
    for at, rule in (pair for frame_rules in board.rule_paths() for pair in frame_rules):
        if getattr(getattr(rule, "mask", None), "auto", None) == "control" and not count:
            problems.append(board.problem(at + ("mask", "auto"), "control masks need model.controlnet"))
    if count and spec.anchor.control is None:
        problems.append(board.problem(("anchor",), "model.controlnet needs the anchor's `control` images"))
    return problems


def anchor_image_problems(board) -> list[str]:
    """A real-image anchor: an image that opens, a scheduler with an inverse form, and
    inversion settings that apply."""
    spec, problems = board.spec, []
    anchor = spec.anchor
    if anchor.image is None:
        if "inversion" in anchor.model_fields_set:
            problems.append(
                board.problem(("anchor", "inversion"), "`inversion` applies to a real image (anchor.image)")
            )
        return problems
    problem = image_problem(board.folder / anchor.image)
    if problem:
        problems.append(board.problem(("anchor", "image"), problem))
    if spec.model.scheduler not in (None, "ddim"):
        problems.append(
            board.problem(
                ("model", "scheduler"),
                f"a real-image anchor inverts along the render's schedule, and '{spec.model.scheduler}' has no "
                "inverse form in diffusers; use ddim (DDIMInverseScheduler), or leave it out",
            )
        )
    if anchor.inversion.method == "negative-prompt" and anchor.inversion.guidance != 1:
        problems.append(
            board.problem(
                ("anchor", "inversion", "guidance"), "guidance applies to method: ddim (negative-prompt inverts at 1)"
            )
        )
    return problems


def model_location(model_id: str, folder: Path) -> tuple[str, str | None]:
    """(what loads the model, a problem or None): a built-in name, a hub id (`org/name`,
    as written), or the absolute path of a local folder or `.safetensors` file, which is
    looked up relative to `folder` when not absolute."""
    if model_id in BUILT_IN_MODELS:
        return model_id, None
    local = (folder / Path(model_id).expanduser()).resolve()
    looks_local = (
        model_id.endswith(".safetensors")
        or model_id.startswith((".", "/", "~"))
        or "\\" in model_id
        or model_id.count("/") != 1
    )
    if not local.exists():
        if looks_local:
            kind = "file" if model_id.endswith(".safetensors") else "folder"
            return model_id, f"no such {kind} '{local}' (local model paths resolve against the storyboard's folder)"
        return model_id, None  # a hub id
    if local.is_file():
        return str(local), safetensors_problem(local) or checkpoint_problem(local)
    if not (local / "model_index.json").is_file():
        return str(local), f"'{local}' is not a diffusers pipeline folder (it has no model_index.json)"
    return str(local), None


def safetensors_problem(path: Path) -> str | None:
    """None when `path` starts like a safetensors file (a JSON header of the size its
    first 8 bytes give), else what is wrong, naming the file."""
    if path.suffix != ".safetensors":
        return f"'{path}' is not a .safetensors checkpoint (weights load with safetensors only)"
    try:
        with open(path, "rb") as file:
            head = file.read(8)
            if len(head) < 8:
                raise ValueError("shorter than a header")
            (length,) = struct.unpack("<Q", head)
            if length > min(MAX_SAFETENSORS_HEADER, path.stat().st_size - 8):
                raise ValueError("its header length is larger than the file")
            header = json.loads(file.read(length))
            if not isinstance(header, dict):
                raise ValueError("its header is not a table of tensors")
    except (OSError, ValueError) as error:
        return f"'{path}' is not a safetensors checkpoint ({error})"
    return None


def checkpoint_problem(path: Path) -> str | None:
    """None when `path` is a checkpoint of a family framegen loads (its keys say), else why not."""
    from ..models.checkpoints import Checkpoint, CheckpointError

    try:
        Checkpoint.read(path)
    except CheckpointError as error:
        return str(error)
    return None


def image_problem(path: Path) -> str | None:
    if not path.is_file():
        return f"no such file '{path}'"
    try:
        with Image.open(path) as image:
            image.verify()
    except (OSError, ValueError, SyntaxError) as error:
        reason = str(error).split(" '")[0] or type(error).__name__
        return f"'{path}' is not an image PIL can read ({reason})"
    return None


def box_problem(boxes, width: int, height: int) -> str | None:
    """A problem when a box lies wholly outside the width x height image (it would mask nothing)."""
    for x0, y0, x1, y1 in boxes:
        if x1 <= 0 or y1 <= 0 or x0 >= width or y0 >= height:
            return f"box [{x0}, {y0}, {x1}, {y1}] lies outside the {width}x{height} image"
    return None
