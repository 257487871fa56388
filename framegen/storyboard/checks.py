"""What a storyboard's files must be, checked before any model loads: mask images that
open as images, a segmenter model that exists, a local model and LoRAs that exist and are
what they claim (a diffusers folder, safetensors files), an output folder inside the
storyboard's tree unless consented to, and boxes that overlap the image. Local paths
resolve against the storyboard's folder, like every other path in it."""

from __future__ import annotations

import dataclasses
import os
import warnings
from pathlib import Path

from PIL import Image

from ..models.locate import built_in, locate
from .schema import OutputSpec


def resolve_files(board) -> list[str]:
    """Locate the model, its config, its LoRAs and ControlNets against the storyboard's
    folder (rewriting local paths as absolute ones), and check them, the segmenter's model
    and `output`; the problems as positioned lines."""
    spec, problems = board.spec, []

    def located(name: str, at: tuple, what: str) -> str:
        location = locate_checked(name, board.folder, what)
        if location.problem:
            problems.append(board.problem(at, location.problem))
        return location.path

    spec.model.id = located(spec.model.id, ("model", "id"), "model")
    if spec.model.config is not None:
        before = len(problems)
        config = located(spec.model.config, ("model", "config"), "config")
        if len(problems) == before and not spec.model.id.endswith(".safetensors"):
            problems.append(board.problem(("model", "config"), CONFIG_WITHOUT_FILE))
        elif len(problems) == before and config.endswith(".safetensors"):
            problems.append(
                board.problem(("model", "config"), f"'{config}' is a file; `config` is a diffusers folder or hub id")
            )
        spec.model.config = config
    for part in PART_KEYS:
        if getattr(spec.model, part) is not None:
            setattr(spec.model, part, located(getattr(spec.model, part), ("model", part), "part"))
    if not problems:
        problems += parts_problems(board) + architecture_problems(board)
    names: dict[str, int] = {}
    for i, lora in enumerate(spec.model.lora):
        lora.path = located(lora.path, ("model", "lora", i, "path"), "lora")
        if lora.key in names:
            problems.append(
                board.problem(("model", "lora", i), f"two LoRAs are named '{lora.key}' (give one a `name`)")
            )
        names[lora.key] = i
    for i, controlnet in enumerate(spec.model.controlnet):
        controlnet.id = located(controlnet.id, ("model", "controlnet", i, "id"), "controlnet")
        if controlnet.id == "demo-control" and not (built_in("demo-control") / "config.json").is_file():
            problems.append(board.problem(("model", "controlnet", i, "id"), DEMO_CONTROL_MISSING))
    model_path = spec.report.background.model_path
    if model_path is not None and not (board.folder / model_path).is_file():
        problems.append(
            board.problem(("report", "background", "model_path"), f"no such file '{board.folder / model_path}'")
        )
    return problems + output_problems(board)


CONFIG_WITHOUT_FILE = "`config` describes a single-file checkpoint; model.id is not a .safetensors file"
DEMO_CONTROL_MISSING = (
    "demo-control is not installed in framegen/models/demo/controlnet; train it from the checkout root with "
    "`python -m tools.demo.train_controlnet --out DIR --install framegen/models/demo/controlnet`"
)


def output_problems(board) -> list[str]:
    """An output folder outside the storyboard's folder tree needs consent."""
    output = board.spec.output
    if output is None or (isinstance(output, OutputSpec) and output.outside):
        return []
    folder, target = Path(os.path.abspath(board.folder)), Path(os.path.abspath(board.output_dir))
    if target == folder or folder in target.parents:
        return []
    written = output.path if isinstance(output, OutputSpec) else output
    return [
        board.problem(
            ("output",),
            f"'{written}' is not inside the storyboard's folder {folder}; give it on the command line "
            f"(-o), or write `output: {{path: {written}, outside: true}}`",
        )
    ]


def controlnet_problems(board) -> list[str]:
    """Control images that open, one per ControlNet, on the anchor and on any frame."""
    spec, problems = board.spec, []
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


PART_KEYS = ("clip_l", "clip_g", "t5xxl", "vae")


def parts_problems(board) -> list[str]:
    """A transformer file's parts: the ones it needs and lacks, and ones given to a model
    that takes none."""
    from ..engine.families import FAMILIES
    from ..models.checkpoints import Checkpoint
    from ..models.dit_files import PARTS, kind, missing_line, missing_parts

    model, problems = board.spec.model, []
    given = [part for part in PART_KEYS if getattr(model, part) is not None]
    checkpoint = Checkpoint.read(Path(model.id)) if model.id.endswith(".safetensors") else None
    if checkpoint is None or not checkpoint.transformer:
        return [board.problem(("model", part), PART_WITHOUT_FILE) for part in given]
    parts, label = PARTS[kind(checkpoint.family)], FAMILIES[kind(checkpoint.family)].label
    for part in (part for part in given if part not in parts):
        problems.append(board.problem(("model", part), f"{label} models take no {part} ({', '.join(parts)})"))
    missing = missing_parts(model, checkpoint.family, checkpoint.keys)
    if missing:
        problems.append(board.problem(("model", "id"), missing_line(Path(model.id), checkpoint.family, missing)))
    return problems


def architecture_problems(board) -> list[str]:
    """A single file whose tensors do not fit the config it loads with (read from its header)."""
    from ..models.checkpoints import Checkpoint

    model = board.spec.model
    if not model.id.endswith(".safetensors"):
        return []
    problem = Checkpoint.read(Path(model.id)).architecture_problem(model)
    return [board.problem(("model", "id"), problem)] if problem else []


PART_WITHOUT_FILE = "text encoder and VAE files go with a FLUX.1 or SD3.x transformer file as model.id"


def locate_checked(name: str, folder: Path = Path("."), what: str = "model"):
    """`locate`'s answer, with a model file's problem as a checkpoint (its keys) among its own."""
    location = locate(name, folder, what)
    if location.problem is None and what == "model" and location.kind == "file":
        return dataclasses.replace(location, problem=checkpoint_problem(Path(location.path)))
    return location


def checkpoint_problem(path: Path) -> str | None:
    """None when `path` is a checkpoint of a family framegen loads (its keys say), else why not."""
    from ..models.checkpoints import Checkpoint, CheckpointError

    try:
        Checkpoint.read(path)
    except CheckpointError as error:
        return str(error)
    return None


def image_problem(path: Path) -> str | None:
    if path.is_dir():
        return f"'{path}' is a folder; give an image file"
    if not path.is_file():
        return f"'{path}' is not a file" if path.exists() else f"no such file '{path}'"
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as image:
                image.verify()
    except (Image.DecompressionBombWarning, Image.DecompressionBombError):
        width, height = _size(path)
        return (
            f"'{path}' is {width}x{height} = {width * height:,} pixels, over the {Image.MAX_IMAGE_PIXELS:,} "
            "PIL opens safely (a decompression bomb?); give a smaller image"
        )
    except (OSError, ValueError, SyntaxError) as error:
        reason = getattr(error, "strerror", None) or str(error).split(" '")[0] or "unreadable"
        return f"'{path}' is not an image PIL can read ({reason})"
    return _mode_problem(path, image.mode)


def _mode_problem(path: Path, mode: str) -> str | None:
    """Whether framegen can read the image's pixels as RGB (LAB, say, it cannot)."""
    from ..engine.masks import true_values

    try:
        for target in ("RGB", "L"):  # control and anchor images, and masks
            true_values(Image.new(mode, (1, 1))).convert(target)
    except ValueError:
        return f"'{path}' has {mode} pixels, which framegen cannot read as RGB and grey; save it as RGB"
    return None


def _size(path: Path) -> tuple[int, int]:
    """An image's size from its header, past PIL's pixel limit (nothing is decoded)."""
    limit, Image.MAX_IMAGE_PIXELS = Image.MAX_IMAGE_PIXELS, None
    try:
        with Image.open(path) as image:
            return image.size
    finally:
        Image.MAX_IMAGE_PIXELS = limit


def box_problem(boxes, width: int, height: int) -> str | None:
    """A problem when a box lies wholly outside the width x height image (it would mask nothing)."""
    for x0, y0, x1, y1 in boxes:
        if x1 <= 0 or y1 <= 0 or x0 >= width or y0 >= height:
            return f"box [{x0}, {y0}, {x1}, {y1}] lies outside the {width}x{height} image"
    return None
