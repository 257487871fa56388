"""Single-file checkpoints: one `.safetensors` file in the original (LDM / A1111) key
layout, as model sites serve SD1.x, SD2.x and SDXL models, loaded with no network; and
FLUX.1 / SD3.x transformer files, which dit_files.py loads with their parts.

The family is read from the file's keys (its header only): OpenAI's CLIP under
`cond_stage_model.transformer` is SD1.x, OpenCLIP under `cond_stage_model.model` SD2.x,
two text encoders under `conditioner.embedders` SDXL. Its component configs and tokenizers
ship with framegen (published.py); `model.config` names a diffusers folder or hub id whose
configs describe the file instead, for models that differ from the published ones.
diffusers' `from_single_file` converts the weights.

The noise prediction follows `model.prediction` when given, else a `v_pred` key in the
file (the convention ComfyUI and others write), else the family's published model:
epsilon for SD1.x and SDXL, v for SD2.x (SD2.1 at 768; SD2.x-base is epsilon at 512, set
`model.prediction: epsilon`).
"""

from __future__ import annotations

import functools
import json
import re
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import InvalidInput
from . import dit_files

UNET = "model.diffusion_model."
FAMILY_KEYS = {  # a key prefix each family's text encoder has
    "sdxl": "conditioner.embedders.1.model.",
    "sd21-v": "cond_stage_model.model.",
    "sd15": "cond_stage_model.transformer.",
}
SDXL_REFINER = "conditioner.embedders.0.model."
V_PREDICTION_KEY = "v_pred"


class CheckpointError(InvalidInput, ValueError):
    """The file is not a checkpoint framegen can load; the message says why in one line."""


@dataclass(frozen=True)
class Checkpoint:
    """What a single file's header tells: its family, whether it carries a `v_pred` key,
    and its tensors' names and shapes (a transformer file's parts may be inside it)."""

    path: Path
    family: str
    v_pred_key: bool
    shapes: dict[str, tuple[int, ...]] = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def read(cls, path: Path) -> Checkpoint:
        """The file's checkpoint, read once per state of the file (validate, the keys and the
        loader all ask: the header is parsed again only when the file changed, as its weight
        fingerprint tells)."""
        from .fingerprints import file_identity

        try:
            identity = tuple(file_identity(path))
        except OSError as error:
            raise CheckpointError(f"'{path}' cannot be read as safetensors: {error.strerror}") from None
        return _read(Path(path), identity)

    @property
    def keys(self) -> frozenset[str]:
        return frozenset(self.shapes)

    @property
    def transformer(self) -> bool:
        """A FLUX.1 or SD3.x transformer file (dit_files.py), not an LDM checkpoint."""
        return dit_files.kind(self.family) is not None

    def prediction(self, spec) -> str | None:
        """`epsilon` or `v` when set or marked in the file; None: the family's config says."""
        return spec.prediction or ("v" if self.v_pred_key else None)

    def config_folder(self, spec) -> Path | str:
        """Where the configs come from: `model.config`, else the family's shipped folder."""
        from .published import folder

        return spec.config if spec.config else folder(self.family)

    def is_sd2_base(self, spec) -> bool:
        """An SD2.x checkpoint told to predict noise: SD2.x-base, trained at 512 pixels."""
        return self.family == "sd21-v" and self.prediction(spec) == "epsilon" and not spec.config

    def architecture_problem(self, spec) -> str | None:
        """None when the file's telling tensors have the shapes its config gives (`model.config`
        when a local folder, else the family's published one), else the first that does not,
        in one line: read from the header, before any weight loads."""
        folder = Path(self.config_folder(spec)) / ("transformer" if self.transformer else "unet")
        try:
            config = json.loads((folder / "config.json").read_text())
        except (OSError, ValueError):
            return None  # a hub id's config: loading tells
        prefix = dit_files.TRANSFORMER if self.transformer else UNET
        shapes = {name.removeprefix(prefix): shape for name, shape in self.shapes.items()}
        counts, expected = dit_files.telling_tensors(config) if self.transformer else ({}, ldm_shapes(config))
        where = "model.config's" if spec.config else f"the published {self.family}"
        for name, count in counts.items():
            found = len({key.split(".")[1] for key in shapes if key.startswith(name + ".")})
            if found != count:
                return f"'{self.path}' has {found} {name}; {where} config has {count}{MISFIT}"
        for name, shape in expected.items():
            if name in shapes and shapes[name] != shape:
                return (
                    f"'{self.path}' does not fit {where} config: {name} is {list(shapes[name])}, "
                    f"not {list(shape)}{MISFIT}"
                )
        return None


MISFIT = "; give `model.config`: a diffusers folder or hub id that describes it"


def ldm_shapes(config: dict) -> dict[str, tuple[int, ...]]:
    """An original-layout U-Net's telling tensors and the shapes a diffusers U-Net config gives them."""
    channels, inputs = config["block_out_channels"], config.get("in_channels", 4)
    cross = config["cross_attention_dim"]
    cross = cross[-1] if isinstance(cross, list) else cross
    return {
        "input_blocks.0.0.weight": (channels[0], inputs, 3, 3),
        "time_embed.0.weight": (config.get("time_embedding_dim") or 4 * channels[0], channels[0]),
        "middle_block.1.transformer_blocks.0.attn2.to_k.weight": (channels[-1], cross),
    }


@functools.lru_cache(maxsize=8)
def _read(path: Path, identity: tuple[int, ...]) -> Checkpoint:
    """Checkpoint.read for the file at `path` in this state (`file_identity`)."""
    from .locate import safetensors_header

    try:
        header = safetensors_header(path)
    except ValueError as error:
        raise CheckpointError(f"'{path}' cannot be read as safetensors: {error}") from None
    shapes = {name: tuple(entry["shape"]) for name, entry in header.items()}
    first = shapes.get(f"{UNET}input_blocks.0.0.weight")
    keys = set(shapes)
    family = dit_files.dit_family(keys) or _family(path, keys, first[1] if first and len(first) > 1 else None)
    return Checkpoint(path, family, V_PREDICTION_KEY in keys, shapes)


def _family(path, keys: set[str], in_channels: int | None) -> str:
    if in_channels is None:
        hint = " (a LoRA? list it under model.lora)" if any("lora" in key for key in keys) else ""
        raise CheckpointError(f"'{path}' is not a Stable Diffusion checkpoint: it has no U-Net ('{UNET}*'){hint}")
    if in_channels != 4:
        raise CheckpointError(
            f"'{path}' has a U-Net with {in_channels} input channels (an inpainting or other special model); "
            "framegen renders with text-to-image checkpoints (4 channels)"
        )
    for family, prefix in FAMILY_KEYS.items():
        if any(key.startswith(prefix) for key in keys):
            return family
    if any(key.startswith(SDXL_REFINER) for key in keys):
        raise CheckpointError(f"'{path}' is an SDXL refiner; framegen renders with a base model")
    raise CheckpointError(f"'{path}' has a U-Net but no text encoder framegen knows (SD1.x, SD2.x or SDXL)")


def load(spec, dtype):
    """The pipeline of the single file `spec.id`, offline unless `model.config` is a hub id."""
    import diffusers

    from .published import tokenizers

    checkpoint = Checkpoint.read(Path(spec.id))
    if checkpoint.transformer:
        return dit_files.load(spec, checkpoint, dtype)
    config = checkpoint.config_folder(spec)
    sdxl = checkpoint.family == "sdxl"
    cls = diffusers.StableDiffusionXLPipeline if sdxl else diffusers.StableDiffusionPipeline
    options = {"dtype": dtype, "config": str(config), "local_files_only": True}
    if not sdxl:
        options.update(safety_checker=None, feature_extractor=None, requires_safety_checker=False)
    if not (Path(config) / "tokenizer").is_dir():  # a single file holds none: framegen's own
        options.update(tokenizers(checkpoint.family))
    try:
        pipe = cls.from_single_file(str(checkpoint.path), **options)
    except ValueError as error:
        shapes = re.search(r"(\S+) expected shape (.+?\)), but got (.+?\))", str(error))
        if shapes is None or spec.config:
            raise
        raise CheckpointError(
            f"'{checkpoint.path}' does not have the published {checkpoint.family} architecture ({shapes[1]} is "
            f"{shapes[3]}, not {shapes[2]}); give `model.config`: a diffusers folder or hub id that describes it"
        ) from None
    if checkpoint.v_pred_key:  # model.prediction, if given, comes after (schedulers.configured)
        pipe.scheduler = type(pipe.scheduler).from_config(pipe.scheduler.config, prediction_type="v_prediction")
    if checkpoint.is_sd2_base(spec):
        pipe.unet.register_to_config(sample_size=64)
    return pipe
