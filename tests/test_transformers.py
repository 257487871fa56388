"""Exact invariants of capture and swap on tiny random FLUX.1- and SD3.5-shaped pipelines:
rules act on the image tokens (as their grid) of a block's output, or on its attention's
image keys and values (`kv`), and never on the text tokens."""

import numpy as np
import pytest
import torch

from framegen.engine import AnchorCache, LayerMap, SwapRule, cache_bytes, needed_pairs, record, swapping
from framegen.engine.families import denoiser
from framegen.engine.layers import UnknownLayer

STEPS = 4
SIZE = 64  # latent 8x8: FLUX packs it, SD3 patches it, into a 4x4 token grid
ANCHOR = "girl, white hair, blue skirt"
OTHER = "boy, black hair, red shirt, night"
GRID = (4, 4)


@pytest.fixture(scope="module", params=["flux", "sd3"])
def pipe(request):
    from framegen.models import tiny_dit

    pipe = getattr(tiny_dit, f"tiny_{request.param}_pipeline")()
    pipe.set_progress_bar_config(disable=True)
    return pipe


def generate(pipe, prompt, clock=None, **options):
    generators = [torch.Generator("cpu").manual_seed(5) for _ in ([prompt] if isinstance(prompt, str) else prompt)]
    return pipe(
        prompt, width=SIZE, height=SIZE, num_inference_steps=STEPS, max_sequence_length=64,
        generator=generators, output_type="np",
        callback_on_step_end=clock.callback if clock is not None else None, **options,
    ).images  # fmt: skip


def anchor_and_frame(pipe, rules, prompt=OTHER):
    cache = AnchorCache(needed_pairs(rules))
    with record(pipe, STEPS, cache) as clock:
        anchor = generate(pipe, ANCHOR, clock)[0]
    with swapping(pipe, STEPS, cache, rules) as clock:
        frame = generate(pipe, prompt, clock)[0]
    return anchor, frame, cache


def rule(mode, layers, steps=range(1, STEPS + 1), **options):
    return [SwapRule(mode, frozenset(layers), frozenset(steps), **options)]


def blocks(pipe):
    return [layer.name for layer in LayerMap.of(denoiser(pipe)).cross_attention_layers()]


def mse(a, b):
    return float(((a - b) ** 2).mean())


def test_blocks_are_named_by_stream(pipe):
    layers = LayerMap.of(denoiser(pipe))
    names = [layer.name for layer in layers.layers]
    flux = pipe.__class__.__name__ == "FluxPipeline"
    assert names == (["D0", "D1", "S0", "S1"] if flux else ["D0", "D1"]) + ["FINAL", "LATENTS"]
    assert layers.module_path("d01") == "transformer_blocks.1" and layers.module_path("final") == "proj_out"
    assert layers.module_path("transformer_blocks.0.attn") == "transformer_blocks.0.attn"
    assert layers.kv_paths("D1") == ["transformer_blocks.1.attn.to_k", "transformer_blocks.1.attn.to_v"]
    with pytest.raises(UnknownLayer, match="unknown layer 'D7' \\(known: D0, D1, "):
        layers.module_path("D7")
    with pytest.raises(UnknownLayer, match="'FINAL' has no attention for a kv rule"):
        layers.kv_paths("FINAL")
    assert layers.layer_of("transformer_blocks.1.attn.to_k").grid(8, 8) == GRID


def test_hooks_that_swap_nothing_reproduce_the_plain_pipeline(pipe):
    plain = generate(pipe, ANCHOR)[0]
    nothing = rule("threshold", blocks(pipe) + ["FINAL", "LATENTS"], threshold=0.0)
    anchor, frame, _ = anchor_and_frame(pipe, nothing + rule("kv", blocks(pipe), mask=torch.zeros(8, 8, dtype=bool)))
    assert np.array_equal(anchor, plain) and not np.array_equal(frame, plain)
    assert np.array_equal(frame, generate(pipe, OTHER)[0])


def test_latents_swapped_at_every_step_give_the_anchor(pipe):
    anchor, frame, _ = anchor_and_frame(pipe, rule("full", ["LATENTS"]))
    assert np.array_equal(frame, anchor)


def test_the_last_blocks_tokens_are_no_bound_the_pooled_text_modulates_the_final_norm(pipe):
    last = blocks(pipe)[-1]
    anchor, frame, _ = anchor_and_frame(pipe, rule("full", [last]))
    assert not np.array_equal(frame, anchor)


@pytest.mark.parametrize("mode", ["mask", "kv"])
def test_all_ones_mask_equals_whole_and_all_zeros_equals_no_swap(pipe, mode):
    whole = "full" if mode == "mask" else "kv"
    layers = blocks(pipe)[:2]
    _, expected, _ = anchor_and_frame(pipe, rule(whole, layers))
    _, ones, _ = anchor_and_frame(pipe, rule(mode, layers, mask=torch.ones(8, 8, dtype=bool)))
    _, zeros, _ = anchor_and_frame(pipe, rule(mode, layers, mask=torch.zeros(8, 8, dtype=bool)))
    assert np.array_equal(ones, expected)
    assert np.array_equal(zeros, generate(pipe, OTHER)[0]) and not np.array_equal(zeros, expected)


def test_threshold_infinity_equals_full_and_zero_equals_no_swap(pipe):
    layers = blocks(pipe)
    _, full, _ = anchor_and_frame(pipe, rule("full", layers))
    _, infinite, _ = anchor_and_frame(pipe, rule("threshold", layers, threshold=float("inf"), reduce="position"))
    _, zero, _ = anchor_and_frame(pipe, rule("threshold", layers, threshold=0.0, relative=True))
    assert np.array_equal(infinite, full) and np.array_equal(zero, generate(pipe, OTHER)[0])


def test_rules_touch_the_image_tokens_and_never_the_text_tokens(pipe):
    """At step 1 a full swap of D0 hands the next block the anchor's image tokens and the
    frame's own text tokens."""
    seen = {}

    def watch(name):
        def hook(module, args, output):
            seen.setdefault(name, (output[0].clone(), output[1].clone()))  # (text, image), the first call

        return denoiser(pipe).transformer_blocks[0].register_forward_hook(hook)

    rules = rule("full", ["D0"], steps={1})
    cache = AnchorCache(needed_pairs(rules))
    with record(pipe, STEPS, cache) as clock:
        handle = watch("anchor")
        generate(pipe, ANCHOR, clock)
    handle.remove()
    handle = watch("plain")
    generate(pipe, OTHER)
    handle.remove()
    with swapping(pipe, STEPS, cache, rules) as clock:
        handle = watch("frame")  # after the swap's own hook: sees what it hands on
        generate(pipe, OTHER, clock)
    handle.remove()
    assert torch.equal(seen["frame"][1], seen["anchor"][1]) and not torch.equal(seen["plain"][1], seen["anchor"][1])
    assert torch.equal(seen["frame"][0], seen["plain"][0]) and not torch.equal(seen["frame"][0], seen["anchor"][0])


def test_swaps_of_every_block_pull_a_frame_toward_the_anchor(pipe):
    plain = generate(pipe, OTHER)[0]
    for mode in ("full", "kv"):
        anchor, frame, _ = anchor_and_frame(pipe, rule(mode, blocks(pipe)))
        assert mse(frame, anchor) < mse(plain, anchor), mode


def test_the_cache_holds_the_named_pairs_image_tokens_only_in_the_predicted_bytes(pipe):
    rules = rule("kv", ["D1"], steps={2}) + rule("full", ["D0", "LATENTS"], steps={1, 3})
    _, _, cache = anchor_and_frame(pipe, rules)
    kv = {"transformer_blocks.1.attn.to_k", "transformer_blocks.1.attn.to_v"}
    assert {layer for layer, _ in cache.needed} == kv | {"transformer_blocks.0", "latents"}
    assert len(cache.tensors) == 2 + 2 * 2
    width = denoiser(pipe).config.num_attention_heads * denoiser(pipe).config.attention_head_dim
    for (path, _), tensor in cache.tensors.items():
        assert tuple(tensor.shape[-2:]) == (GRID if path != "latents" or tensor.shape[1] == 16 else (8, 8))
        assert path == "latents" or tensor.shape[1] == width  # keys and values of image tokens, no text
    guidance = 4.0  # SD3 runs [uncond, cond]; FLUX one row, its guidance embedded
    assert cache_bytes(pipe, cache.needed, SIZE, SIZE, STEPS, guidance) == cache.nbytes


def test_a_batch_of_two_frames_equals_each_alone(pipe):
    """Each frame of a batch meets the anchor under its own rules (FLUX's batch: a row per
    frame; SD3's: [uncond, cond] per frame). Batched matrix products round differently from
    single ones, so within 1e-5, as U-Nets' batches are held (test_resume_cache)."""
    rules_a = rule("kv", blocks(pipe)[:1], mask=torch.eye(8, dtype=bool))
    rules_b = rule("full", blocks(pipe)[1:2])
    cache = AnchorCache(needed_pairs(rules_a + rules_b))
    with record(pipe, STEPS, cache) as clock:
        generate(pipe, ANCHOR, clock)
    alone = []
    for rules, prompt in ((rules_a, OTHER), (rules_b, ANCHOR + ", smile")):
        with swapping(pipe, STEPS, cache, rules) as clock:
            alone.append(generate(pipe, prompt, clock)[0])
    with swapping(pipe, STEPS, cache, [rules_a, rules_b]) as clock:
        both = generate(pipe, [OTHER, ANCHOR + ", smile"], clock)
    assert np.abs(both[0] - alone[0]).max() < 1e-5 and np.abs(both[1] - alone[1]).max() < 1e-5


def test_fused_projections_are_refused_with_one_line(pipe):
    model = denoiser(pipe)
    rules = rule("kv", ["D0"])
    cache = AnchorCache(needed_pairs(rules))
    model.fuse_qkv_projections()
    try:
        with pytest.raises(ValueError, match="'transformer_blocks.0.attn' uses fused QKV projections"):
            with record(pipe, STEPS, cache) as clock:
                generate(pipe, ANCHOR, clock)
    finally:
        model.unfuse_qkv_projections()
    assert not any(module._forward_hooks for module in model.modules())


def test_a_unet_kv_rule_is_mutual_self_attention(tiny_pipe):
    layers = LayerMap.of(tiny_pipe.unet)
    assert layers.kv_paths("OUT3") == [
        "up_blocks.1.attentions.0.transformer_blocks.0.attn1.to_k",
        "up_blocks.1.attentions.0.transformer_blocks.0.attn1.to_v",
    ]
    with pytest.raises(UnknownLayer, match="'IN3' has no attention for a kv rule \\(known: IN1, IN2, IN4"):
        layers.kv_paths("IN3")
    options = dict(width=64, height=64, num_inference_steps=STEPS, output_type="np")

    def run(rules, prompt):
        cache = AnchorCache(needed_pairs(rules))
        with record(tiny_pipe, STEPS, cache):
            anchor = tiny_pipe(ANCHOR, generator=torch.manual_seed(2), **options).images[0]
        with swapping(tiny_pipe, STEPS, cache, rules):
            return anchor, tiny_pipe(prompt, generator=torch.manual_seed(2), **options).images[0]

    anchor, whole = run(rule("kv", ["OUT3", "OUT6"]), OTHER)
    _, ones = run(rule("kv", ["OUT3", "OUT6"], mask=torch.ones(8, 8, dtype=bool)), OTHER)
    _, plain = run(rule("kv", ["OUT3"], mask=torch.zeros(8, 8, dtype=bool)), OTHER)
    assert np.array_equal(whole, ones) and not np.array_equal(whole, plain)
    _, everywhere = run(rule("kv", [layer.name for layer in layers.cross_attention_layers()]), OTHER)
    assert mse(everywhere, anchor) < mse(plain, anchor)
