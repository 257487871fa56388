"""Save a diffusers SD1.x / SD2.x / SDXL pipeline as one checkpoint in the original
(LDM / A1111) key layout: what users download from model sites as one `.safetensors`.
framegen's tests and benchmarks make such files from random pipelines to prove
single-file loading offline; diffusers' own loader converts them back.

    python tools/ldm_checkpoint.py path/to/diffusers-folder model.safetensors
"""

from __future__ import annotations

import argparse
import sys

import torch

RESNET = {"norm1": "in_layers.0", "conv1": "in_layers.2", "time_emb_proj": "emb_layers.1",
          "norm2": "out_layers.0", "conv2": "out_layers.3", "conv_shortcut": "skip_connection"}  # fmt: skip


def _rename(state: dict, prefix: str, mapping: dict[str, str], inner: dict[str, str] | None = None) -> dict:
    """Keys of `state` starting with a key of `mapping` get that part replaced; then the
    next name part is looked up in `inner` (resnet parameter names)."""
    out = {}
    for key, value in state.items():
        for old, new in mapping.items():
            if key.startswith(old):
                rest = key[len(old) :]
                if inner is not None:
                    head, _, tail = rest.partition(".")
                    rest = f"{inner.get(head, head)}.{tail}"
                out[prefix + new + rest] = value
                break
        else:
            raise KeyError(f"no rule for '{key}'")
    return out


def unet_to_ldm(unet) -> dict:
    config, state = unet.config, unet.state_dict()
    per_level = config.layers_per_block
    blocks = {"time_embedding.linear_1.": "time_embed.0.", "time_embedding.linear_2.": "time_embed.2.",
              "add_embedding.linear_1.": "label_emb.0.0.", "add_embedding.linear_2.": "label_emb.0.2.",
              "conv_in.": "input_blocks.0.0.", "conv_norm_out.": "out.0.", "conv_out.": "out.2.",
              "mid_block.attentions.0.": "middle_block.1."}  # fmt: skip
    resnets = {"mid_block.resnets.0.": "middle_block.0.", "mid_block.resnets.1.": "middle_block.2."}
    for i in range(len(config.block_out_channels)):
        for j in range(per_level):
            resnets[f"down_blocks.{i}.resnets.{j}."] = f"input_blocks.{1 + i * (per_level + 1) + j}.0."
            blocks[f"down_blocks.{i}.attentions.{j}."] = f"input_blocks.{1 + i * (per_level + 1) + j}.1."
        blocks[f"down_blocks.{i}.downsamplers.0.conv."] = f"input_blocks.{(i + 1) * (per_level + 1)}.0.op."
        has_attention = "CrossAttn" in config.up_block_types[i]
        for j in range(per_level + 1):
            resnets[f"up_blocks.{i}.resnets.{j}."] = f"output_blocks.{i * (per_level + 1) + j}.0."
            blocks[f"up_blocks.{i}.attentions.{j}."] = f"output_blocks.{i * (per_level + 1) + j}.1."
        last = i * (per_level + 1) + per_level
        blocks[f"up_blocks.{i}.upsamplers.0."] = f"output_blocks.{last}.{2 if has_attention else 1}."
    is_resnet = {k: v for k, v in state.items() if any(k.startswith(r) for r in resnets)}
    others = {k: v for k, v in state.items() if k not in is_resnet}
    prefix = "model.diffusion_model."
    return {**_rename(is_resnet, prefix, resnets, RESNET), **_rename(others, prefix, blocks)}


def vae_to_ldm(vae) -> dict:
    state, levels = vae.state_dict(), len(vae.config.block_out_channels)
    mapping = {"quant_conv.": "quant_conv.", "post_quant_conv.": "post_quant_conv."}
    for part in ("encoder", "decoder"):
        mapping |= {f"{part}.conv_in.": f"{part}.conv_in.", f"{part}.conv_out.": f"{part}.conv_out.",
                    f"{part}.conv_norm_out.": f"{part}.norm_out.",
                    f"{part}.mid_block.resnets.0.": f"{part}.mid.block_1.",
                    f"{part}.mid_block.resnets.1.": f"{part}.mid.block_2.",
                    f"{part}.mid_block.attentions.0.": f"{part}.mid.attn_1."}  # fmt: skip
    for i in range(levels):
        mapping[f"encoder.down_blocks.{i}.resnets."] = f"encoder.down.{i}.block."
        mapping[f"encoder.down_blocks.{i}.downsamplers.0."] = f"encoder.down.{i}.downsample."
        mapping[f"decoder.up_blocks.{i}.resnets."] = f"decoder.up.{levels - 1 - i}.block."
        mapping[f"decoder.up_blocks.{i}.upsamplers.0."] = f"decoder.up.{levels - 1 - i}.upsample."
    attention = {"group_norm.": "norm.", "to_q.": "q.", "to_k.": "k.", "to_v.": "v.", "to_out.0.": "proj_out."}
    out = {}
    for key, value in _rename(state, "first_stage_model.", mapping).items():
        key = key.replace("conv_shortcut.", "nin_shortcut.")
        if ".mid.attn_1." in key:
            head, _, name = key.partition(".mid.attn_1.")
            for old, new in attention.items():
                if name.startswith(old):
                    name = new + name[len(old) :]
            key = f"{head}.mid.attn_1.{name}"
            value = value[..., None, None] if value.dim() == 2 else value  # linear -> 1x1 conv
        out[key] = value
    return out


def clip_state(text_encoder) -> dict:
    """A transformers CLIP text model's weights under the `text_model.` names original
    checkpoints use (transformers 5.6 dropped that level from CLIPTextModel)."""
    return {
        k if k.startswith(("text_model.", "text_projection.")) else f"text_model.{k}": v
        for k, v in text_encoder.state_dict().items()
    }


def open_clip_to_ldm(text_encoder, prefix: str) -> dict:
    """A transformers CLIP text model in OpenCLIP's layout (SD2.x, SDXL's second encoder)."""
    state, out = clip_state(text_encoder), {}
    layers = text_encoder.config.num_hidden_layers
    out[prefix + "token_embedding.weight"] = state.pop("text_model.embeddings.token_embedding.weight")
    out[prefix + "positional_embedding"] = state.pop("text_model.embeddings.position_embedding.weight")
    out[prefix + "ln_final.weight"] = state.pop("text_model.final_layer_norm.weight")
    out[prefix + "ln_final.bias"] = state.pop("text_model.final_layer_norm.bias")
    if "text_projection.weight" in state:
        out[prefix + "text_projection"] = state.pop("text_projection.weight").T.contiguous()
    for n in range(layers):
        old, new = f"text_model.encoder.layers.{n}.", f"{prefix}transformer.resblocks.{n}."
        for kind in ("weight", "bias"):
            qkv = [state.pop(f"{old}self_attn.{p}_proj.{kind}") for p in "qkv"]
            out[f"{new}attn.in_proj_{kind}"] = torch.cat(qkv)
            out[f"{new}attn.out_proj.{kind}"] = state.pop(f"{old}self_attn.out_proj.{kind}")
            out[f"{new}ln_1.{kind}"] = state.pop(f"{old}layer_norm1.{kind}")
            out[f"{new}ln_2.{kind}"] = state.pop(f"{old}layer_norm2.{kind}")
            out[f"{new}mlp.c_fc.{kind}"] = state.pop(f"{old}mlp.fc1.{kind}")
            out[f"{new}mlp.c_proj.{kind}"] = state.pop(f"{old}mlp.fc2.{kind}")
    state.pop("text_model.embeddings.position_ids", None)
    if state:
        raise KeyError(f"no rule for {sorted(state)[:3]}")
    return out


def pipeline_to_ldm(pipe) -> dict:
    """The whole pipeline's weights as one original-layout state dict."""
    state = {**unet_to_ldm(pipe.unet), **vae_to_ldm(pipe.vae)}
    if getattr(pipe, "text_encoder_2", None) is not None:  # SDXL
        state |= {f"conditioner.embedders.0.transformer.{k}": v for k, v in clip_state(pipe.text_encoder).items()}
        state |= open_clip_to_ldm(pipe.text_encoder_2, "conditioner.embedders.1.model.")
    elif pipe.text_encoder.config.hidden_act == "gelu":  # SD2.x: OpenCLIP
        state |= open_clip_to_ldm(pipe.text_encoder, "cond_stage_model.model.")
    else:  # SD1.x: OpenAI's CLIP, in transformers' own layout
        state |= {f"cond_stage_model.transformer.{k}": v for k, v in clip_state(pipe.text_encoder).items()}
    return {k: v.contiguous() for k, v in state.items()}


def save(pipe, path, extra: dict | None = None) -> None:
    from safetensors.torch import save_file

    save_file({**pipeline_to_ldm(pipe), **(extra or {})}, str(path))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("folder")
    parser.add_argument("out")
    args = parser.parse_args()
    from diffusers import AutoPipelineForText2Image

    pipe = AutoPipelineForText2Image.from_pretrained(args.folder, use_safetensors=True)
    save(pipe, args.out)
    print(f"wrote {args.out}", file=sys.stderr)


if __name__ == "__main__":
    main()
