"""Single files of FLUX.1 and SD3.x models, as users download them, loaded with no network.

A transformer file is in Black Forest Labs' layout (`double_blocks.*`, `single_blocks.*`) or
Stability's (`joint_blocks.*`), alone or under ComfyUI's `model.diffusion_model.` prefix.
Its text encoders and VAE are files of their own, named in the storyboard's model block:
`clip_l` (CLIP-L; ComfyUI's clip_l.safetensors), `clip_g` (SD3's OpenCLIP bigG),
`t5xxl` (T5-XXL's encoder; t5xxl_fp16.safetensors) and `vae` (ae.safetensors), or parts of
an all-in-one SD3 file (`text_encoders.<name>.transformer.*`, `first_stage_model.*`).
The family and its published configs (published.py) come from the transformer's keys;
diffusers converts the transformer and the VAE, and the text encoders' files already hold
transformers' own parameter names.
"""

from __future__ import annotations

from pathlib import Path

TRANSFORMER = "model.diffusion_model."
INCLUDED = {  # where an all-in-one file keeps each part
    "clip_l": "text_encoders.clip_l.transformer.",
    "clip_g": "text_encoders.clip_g.transformer.",
    "t5xxl": "text_encoders.t5xxl.transformer.",
    "vae": "first_stage_model.",
}
PARTS = {"flux": ("clip_l", "t5xxl", "vae"), "sd3": ("clip_l", "clip_g", "t5xxl", "vae")}
# the file names users know each part by, for the line that says one is missing
KNOWN_AS = {"clip_l": "clip_l.safetensors", "clip_g": "clip_g.safetensors", "t5xxl": "t5xxl_fp16.safetensors",
            "vae": "ae.safetensors"}  # fmt: skip
ENCODERS = {"clip_l": "text_encoder", "clip_g": "text_encoder_2"}  # the pipeline's names; T5's depends on the family


def dit_family(keys: set[str]) -> str | None:
    """The published family (configs/<family>) a transformer file's keys belong to, or None."""
    bare = {key.removeprefix(TRANSFORMER) for key in keys}
    if "double_blocks.0.img_attn.qkv.weight" in bare:
        return "flux-dev" if "guidance_in.in_layer.weight" in bare else "flux-schnell"
    if "joint_blocks.0.x_block.attn.qkv.weight" in bare:
        blocks = {key.split(".")[1] for key in bare if key.startswith("joint_blocks.")}
        if "joint_blocks.0.x_block.attn2.qkv.weight" in bare:
            return "sd35-medium"
        return "sd35-large" if len(blocks) == 38 else "sd3-medium"
    return None


def telling_tensors(config: dict) -> tuple[dict[str, int], dict[str, tuple[int, ...]]]:
    """A transformer file's block counts by their names in the file, and its telling tensors
    (BFL's or Stability's names) with the shapes a diffusers transformer config gives them."""
    width = config["num_attention_heads"] * config["attention_head_dim"]
    text, pooled, channels = config["joint_attention_dim"], config["pooled_projection_dim"], config["in_channels"]
    doubles, singles = config["num_layers"], config.get("num_single_layers")
    if singles is not None:  # FLUX.1: single blocks fuse qkv and the 4x MLP
        return {"double_blocks": doubles, "single_blocks": singles}, {
            "img_in.weight": (width, channels), "txt_in.weight": (width, text),
            "vector_in.in_layer.weight": (width, pooled),
            f"double_blocks.{doubles - 1}.img_attn.qkv.weight": (3 * width, width),
            f"single_blocks.{singles - 1}.linear1.weight": (7 * width, width),
        }  # fmt: skip
    patch = config.get("patch_size", 2)
    return {"joint_blocks": doubles}, {
        "x_embedder.proj.weight": (width, channels, patch, patch), "context_embedder.weight": (width, text),
        "y_embedder.mlp.0.weight": (width, pooled),
        f"joint_blocks.{doubles - 1}.x_block.attn.qkv.weight": (3 * width, width),
    }  # fmt: skip


def kind(family: str) -> str | None:
    """`flux` or `sd3` (the engine's family) for a published family's name, else None."""
    return next((name for name in PARTS if family.startswith(name)), None)


def missing_parts(spec, family: str, keys: set[str]) -> list[str]:
    """The parts (clip_l, clip_g, t5xxl, vae) neither named in the model block nor in the file."""
    optional = "t5xxl" if kind(family) == "sd3" and not spec.t5 else None  # SD3 without T5
    wanted = [part for part in PARTS[kind(family)] if part != optional]
    return [p for p in wanted if getattr(spec, p) is None and not any(k.startswith(INCLUDED[p]) for k in keys)]


def missing_line(path: Path, family: str, missing: list[str]) -> str:
    label = "a FLUX.1" if kind(family) == "flux" else "an SD3"
    keys = ", ".join(f"model.{part} ({KNOWN_AS[part]})" for part in missing)
    t5 = "; or `t5: false` to render without T5" if kind(family) == "sd3" and "t5xxl" in missing else ""
    return f"'{path}' is {label} transformer without its {' and '.join(missing)}: give {keys}{t5}"


def load(spec, checkpoint, dtype):
    """The pipeline of a transformer file and its parts, offline (configs: `model.config`
    or the family's published folder)."""
    import diffusers

    config = Path(checkpoint.config_folder(spec))
    flux = kind(checkpoint.family) == "flux"
    options = {"config": str(config), "local_files_only": True, "dtype": dtype}
    cls = diffusers.FluxTransformer2DModel if flux else diffusers.SD3Transformer2DModel
    parts = {"transformer": cls.from_single_file(str(checkpoint.path), subfolder="transformer", **options)}
    vae = Path(spec.vae) if spec.vae else checkpoint.path
    parts["vae"] = diffusers.AutoencoderKL.from_single_file(str(vae), subfolder="vae", **options)
    names = {**ENCODERS, "t5xxl": "text_encoder_2" if flux else "text_encoder_3"}
    for part in ("clip_l", "t5xxl") if flux else ("clip_l", "clip_g", "t5xxl"):
        name = names[part]
        if part == "t5xxl" and not spec.t5:
            parts[name] = parts["tokenizer_3"] = None
            continue
        source = Path(getattr(spec, part)) if getattr(spec, part) else checkpoint.path
        prefix = "" if getattr(spec, part) else INCLUDED[part]
        parts[name] = text_encoder(config / name, source, prefix, dtype)
    parts = {**folder_tokenizers(config, checkpoint.family), **parts}
    scheduler = diffusers.FlowMatchEulerDiscreteScheduler.from_pretrained(str(config), subfolder="scheduler")
    pipeline = diffusers.FluxPipeline if flux else diffusers.StableDiffusion3Pipeline
    return pipeline(scheduler=scheduler, **parts)


def folder_tokenizers(config: Path, family: str) -> dict:
    """The tokenizers of a `model.config` folder that has them, else the family's published ones."""
    from transformers import AutoTokenizer

    from .published import tokenizers

    found = sorted(folder.name for folder in config.glob("tokenizer*") if folder.is_dir())
    if not found:
        return tokenizers(family)
    return {name: AutoTokenizer.from_pretrained(str(config / name)) for name in found}


def text_encoder(folder: Path, path: Path, prefix: str, dtype):
    """A transformers text encoder built from its config in `folder`, its weights read from
    `path` (the tensors under `prefix`); one line when the file does not hold them."""
    import torch
    import transformers
    from safetensors import safe_open

    config = transformers.AutoConfig.from_pretrained(str(folder))
    cls = getattr(transformers, config.architectures[0])
    with torch.device("meta"):
        model = cls(config)
    expected, state = set(model.state_dict()), {}
    with safe_open(str(path), framework="pt") as file:
        for key in (key for key in file.keys() if key.startswith(prefix)):
            # files name CLIP's weights `text_model.*`; some transformers versions don't
            name = key.removeprefix(prefix)
            name = name if name in expected or name.removeprefix("text_model.") not in expected else name[11:]
            # a copy of its own: a view into the file's buffer may sit unaligned, and kernels then round differently
            state[name] = file.get_tensor(key).to(dtype=dtype, copy=True)
    missing = sorted(expected - set(state) - {"encoder.embed_tokens.weight"})
    if missing:
        raise ValueError(
            f"'{path}' does not hold a {cls.__name__} like {folder.name}'s ({len(missing)} weights missing, "
            f"e.g. {prefix}{missing[0]})"
        )
    model.load_state_dict({k: v for k, v in state.items() if k in expected}, strict=False, assign=True)
    if hasattr(model, "shared"):  # T5: the encoder's embedding is the shared one (files keep it once)
        model.encoder.embed_tokens = model.shared
    for name, buffer in list(model.named_buffers()):  # buffers files do not keep: made as the model makes them
        if buffer.is_meta and name.endswith("position_ids"):
            owner, _, attribute = name.rpartition(".")
            positions = torch.arange(buffer.shape[-1]).expand(buffer.shape)
            model.get_submodule(owner).register_buffer(attribute, positions, persistent=False)
    return model.eval()
