"""Attention maps of a transformer's joint attention, for `auto: attention` on FLUX and SD3.

A joint attention runs text and image tokens as one sequence; the map a word leaves on the
image is the image queries' attention to that word's text keys. It is recomputed from the
attention module's own inputs and projections (a forward pre-hook; no extra pass) on the
few blocks a mask reads: queries of the image tokens, keys of the text tokens, each through
the module's own norms and, on FLUX, its rotary embedding; softmax over the text keys, as
a U-Net's cross-attention map is. Text comes first in FLUX's sequences; SD3's processor
takes text separately (`encoder_hidden_states`), and a FLUX single-stream block's
attention sees [text; image] as one input, split here by the image's token count.
"""

from __future__ import annotations

import torch
from diffusers.models.embeddings import apply_rotary_emb


def joint_probabilities(module, hidden, context, rotary, image_tokens: int) -> torch.Tensor:
    """(image tokens, text tokens): each image query's attention over the text keys,
    averaged over the batch rows given and the heads."""
    if context is None:  # one stream: [text; image]
        text = hidden.shape[1] - image_tokens
        hidden, context = hidden[:, text:], hidden[:, :text]
        key_projection, key_norm = module.to_k, module.norm_k
    else:
        key_projection, key_norm = module.add_k_proj, module.norm_added_k
    head_dim = getattr(module, "head_dim", None) or module.to_q.out_features // module.heads
    query = module.to_q(hidden).unflatten(-1, (-1, head_dim))  # (B, S, heads, D)
    key = key_projection(context).unflatten(-1, (-1, head_dim))
    query = module.norm_q(query) if module.norm_q is not None else query
    key = key_norm(key) if key_norm is not None else key
    if rotary is not None:  # FLUX: positions of [text; image]
        cos, sin = rotary
        t = context.shape[1]
        query = apply_rotary_emb(query, (cos[t:], sin[t:]), sequence_dim=1)
        key = apply_rotary_emb(key, (cos[:t], sin[:t]), sequence_dim=1)
    scores = torch.einsum("bshd,bthd->bhst", query.float(), key.float()) * head_dim**-0.5
    return scores.softmax(dim=-1).mean(dim=(0, 1))


def middle_blocks(layers, count: int = 3) -> list:
    """The `count` blocks around the middle of a transformer's first stack (FLUX's
    double-stream blocks, SD3's joint blocks): where layout and objects are settled."""
    stack = [layer for layer in layers.cross_attention_layers() if layer.name.startswith("D")]
    start = max(0, (len(stack) - count) // 2)
    return stack[start : start + count]
