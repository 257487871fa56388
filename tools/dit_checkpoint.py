"""Save a diffusers FLUX.1 or SD3.x pipeline as the single files users download: the
transformer in Black Forest Labs' or Stability's layout (`--comfy`: under ComfyUI's
`model.diffusion_model.` prefix), and its parts as ComfyUI keeps them (clip_l, clip_g,
t5xxl in transformers' own names; the VAE as ae.safetensors in the original layout), or
(`--all-in-one`, SD3) one file holding them all. framegen's tests and benchmarks make
such files from random pipelines to prove single-file loading offline; diffusers' own
loader converts the transformer and VAE back.

    python tools/dit_checkpoint.py path/to/diffusers-folder out/ [--comfy] [--all-in-one]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

from tools.ldm_checkpoint import clip_state, vae_to_ldm

PREFIX = "model.diffusion_model."
FLUX_NORMS = {"norm_q": "img_attn.norm.query_norm", "norm_k": "img_attn.norm.key_norm",
              "norm_added_q": "txt_attn.norm.query_norm", "norm_added_k": "txt_attn.norm.key_norm"}  # fmt: skip
FLUX_DOUBLE = {
    "norm1.linear": "img_mod.lin", "norm1_context.linear": "txt_mod.lin", "ff.net.0.proj": "img_mlp.0",
    "ff.net.2": "img_mlp.2", "ff_context.net.0.proj": "txt_mlp.0", "ff_context.net.2": "txt_mlp.2",
    "attn.to_out.0": "img_attn.proj", "attn.to_add_out": "txt_attn.proj",
}  # fmt: skip
SD3_BLOCK = {  # the last block's context half has no projection out or MLP: missing keys are skipped
    "attn.norm_q": "x_block.attn.ln_q", "attn.norm_k": "x_block.attn.ln_k",
    "attn.norm_added_q": "context_block.attn.ln_q", "attn.norm_added_k": "context_block.attn.ln_k",
    "attn2.norm_q": "x_block.attn2.ln_q", "attn2.norm_k": "x_block.attn2.ln_k", "attn.to_out.0": "x_block.attn.proj",
    "attn.to_add_out": "context_block.attn.proj", "attn2.to_out.0": "x_block.attn2.proj",
    "norm1.linear": "x_block.adaLN_modulation.1", "ff.net.0.proj": "x_block.mlp.fc1", "ff.net.2": "x_block.mlp.fc2",
    "ff_context.net.0.proj": "context_block.mlp.fc1", "ff_context.net.2": "context_block.mlp.fc2",
}  # fmt: skip


def _halves_swapped(weight: torch.Tensor) -> torch.Tensor:
    """diffusers' final norms order (scale, shift), the originals (shift, scale)."""
    first, second = weight.chunk(2, dim=0)
    return torch.cat([second, first])


def _linear(out: dict, state: dict, old: str, new: str) -> None:
    for kind in ("weight", "bias"):
        if f"{old}.{kind}" in state:
            out[f"{new}.{kind}"] = state.pop(f"{old}.{kind}")


def _fused(out: dict, state: dict, olds: list[str], new: str) -> None:
    for kind in ("weight", "bias"):
        out[f"{new}.{kind}"] = torch.cat([state.pop(f"{old}.{kind}") for old in olds])


def _final_layer(out: dict, state: dict) -> dict:
    """The output projection and final norm, the same in both layouts; every weight placed."""
    _linear(out, state, "proj_out", "final_layer.linear")
    for kind in ("weight", "bias"):
        out[f"final_layer.adaLN_modulation.1.{kind}"] = _halves_swapped(state.pop(f"norm_out.linear.{kind}"))
    if state:
        raise KeyError(f"no rule for {sorted(state)[:3]}")
    return out


def flux_to_bfl(transformer) -> dict:
    """A FluxTransformer2DModel's weights in Black Forest Labs' layout (flux1-dev.safetensors)."""
    state, out = dict(transformer.state_dict()), {}
    for old, new in (("time_text_embed.timestep_embedder", "time_in"), ("time_text_embed.text_embedder", "vector_in"),
                     ("time_text_embed.guidance_embedder", "guidance_in")):  # fmt: skip
        _linear(out, state, f"{old}.linear_1", f"{new}.in_layer")
        _linear(out, state, f"{old}.linear_2", f"{new}.out_layer")
    _linear(out, state, "context_embedder", "txt_in")
    _linear(out, state, "x_embedder", "img_in")
    for i in range(transformer.config.num_layers):
        old, new = f"transformer_blocks.{i}", f"double_blocks.{i}"
        _linear(out, state, f"{old}.norm1.linear", f"{new}.img_mod.lin")
        _linear(out, state, f"{old}.norm1_context.linear", f"{new}.txt_mod.lin")
        _fused(out, state, [f"{old}.attn.to_{p}" for p in "qkv"], f"{new}.img_attn.qkv")
        _fused(out, state, [f"{old}.attn.add_{p}_proj" for p in "qkv"], f"{new}.txt_attn.qkv")
        for mine, theirs in FLUX_NORMS.items():
            out[f"{new}.{theirs}.scale"] = state.pop(f"{old}.attn.{mine}.weight")
        for mine, theirs in FLUX_DOUBLE.items():
            _linear(out, state, f"{old}.{mine}", f"{new}.{theirs}")
    for i in range(transformer.config.num_single_layers):
        old, new = f"single_transformer_blocks.{i}", f"single_blocks.{i}"
        _linear(out, state, f"{old}.norm.linear", f"{new}.modulation.lin")
        _fused(out, state, [f"{old}.attn.to_{p}" for p in "qkv"] + [f"{old}.proj_mlp"], f"{new}.linear1")
        out[f"{new}.norm.query_norm.scale"] = state.pop(f"{old}.attn.norm_q.weight")
        out[f"{new}.norm.key_norm.scale"] = state.pop(f"{old}.attn.norm_k.weight")
        _linear(out, state, f"{old}.proj_out", f"{new}.linear2")
    return _final_layer(out, state)


def sd3_to_sai(transformer) -> dict:
    """An SD3Transformer2DModel's weights in Stability's layout (sd3.5_medium.safetensors)."""
    state, out = dict(transformer.state_dict()), {}
    last = transformer.config.num_layers - 1
    out["pos_embed"] = state.pop("pos_embed.pos_embed")
    _linear(out, state, "pos_embed.proj", "x_embedder.proj")
    _linear(out, state, "context_embedder", "context_embedder")
    for old, new in (
        ("time_text_embed.timestep_embedder", "t_embedder"),
        ("time_text_embed.text_embedder", "y_embedder"),
    ):
        _linear(out, state, f"{old}.linear_1", f"{new}.mlp.0")
        _linear(out, state, f"{old}.linear_2", f"{new}.mlp.2")
    for i in range(transformer.config.num_layers):
        old, x, context = f"transformer_blocks.{i}", f"joint_blocks.{i}.x_block", f"joint_blocks.{i}.context_block"
        _fused(out, state, [f"{old}.attn.to_{p}" for p in "qkv"], f"{x}.attn.qkv")
        _fused(out, state, [f"{old}.attn.add_{p}_proj" for p in "qkv"], f"{context}.attn.qkv")
        for mine, theirs in SD3_BLOCK.items():
            _linear(out, state, f"{old}.{mine}", f"joint_blocks.{i}.{theirs}")
        if f"{old}.attn2.to_q.weight" in state:
            _fused(out, state, [f"{old}.attn2.to_{p}" for p in "qkv"], f"{x}.attn2.qkv")
        for kind in ("weight", "bias"):
            value = state.pop(f"{old}.norm1_context.linear.{kind}")
            out[f"{context}.adaLN_modulation.1.{kind}"] = _halves_swapped(value) if i == last else value
    return _final_layer(out, state)


def encoder_state(encoder) -> dict:
    """A text encoder's weights as ComfyUI's files keep them (CLIP under `text_model.`;
    T5's embedding once, as `shared.weight`)."""
    if hasattr(encoder, "shared"):
        return {k: v for k, v in encoder.state_dict().items() if k != "encoder.embed_tokens.weight"}
    return clip_state(encoder)


def save_files(pipe, folder: Path, comfy: bool = False, all_in_one: bool = False) -> dict[str, Path]:
    """Write the pipeline's single files into `folder`; returns the model block's keys ->
    paths (`id`, and `clip_l`, `clip_g`, `t5xxl`, `vae` unless `all_in_one`)."""
    from safetensors.torch import save_file

    flux = hasattr(pipe.transformer.config, "num_single_layers")
    transformer = flux_to_bfl(pipe.transformer) if flux else sd3_to_sai(pipe.transformer)
    prefix = PREFIX if comfy or all_in_one or not flux else ""  # Stability's own files carry the prefix
    main = {prefix + k: v for k, v in transformer.items()}
    encoders = {"clip_l": pipe.text_encoder, "t5xxl": pipe.text_encoder_2 if flux else pipe.text_encoder_3}
    if not flux:
        encoders["clip_g"] = pipe.text_encoder_2
    parts = {name: encoder_state(encoder) for name, encoder in encoders.items() if encoder is not None}
    vae = {k.removeprefix("first_stage_model."): v for k, v in vae_to_ldm(pipe.vae).items()}
    folder.mkdir(parents=True, exist_ok=True)
    paths = {"id": folder / ("model.safetensors" if all_in_one else "transformer.safetensors")}
    if all_in_one:
        for name, state in parts.items():
            main |= {f"text_encoders.{name}.transformer.{k}": v for k, v in state.items()}
        main |= {f"first_stage_model.{k}": v for k, v in vae.items()}
    else:
        for name, state in {**parts, "vae": vae}.items():
            paths[name] = folder / f"{name}.safetensors"
            save_file({k: v.contiguous() for k, v in state.items()}, str(paths[name]))
    save_file({k: v.contiguous() for k, v in main.items()}, str(paths["id"]))
    return paths


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("folder")
    parser.add_argument("out", type=Path)
    parser.add_argument("--comfy", action="store_true")
    parser.add_argument("--all-in-one", action="store_true")
    args = parser.parse_args()
    from diffusers import AutoPipelineForText2Image

    pipe = AutoPipelineForText2Image.from_pretrained(args.folder, use_safetensors=True)
    for name, path in save_files(pipe, args.out, args.comfy, args.all_in_one).items():
        print(f"{name}: {path}")


if __name__ == "__main__":
    main()
