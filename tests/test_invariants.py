"""Exact invariants of capture and swap on the tiny-random pipeline (float outputs,
compared with torch.equal / np.array_equal: bit for bit, no tolerance)."""

import math

import numpy as np
import pytest
import torch

from framegen.engine.cache import AnchorCache, DiskCache
from framegen.engine.hooks import record, swapping
from framegen.engine.layers import LayerMap
from framegen.engine.swap import SwapRule, needed_pairs
from framegen.models.schedulers import set_scheduler

STEPS = 8
ANCHOR = "girl, white hair, school uniform, blue skirt, outdoor"
OTHER = "boy, black hair, red shirt, green pants, snow, night"


def generate(pipe, prompt, steps=STEPS, clock=None, output_type="np"):
    return pipe(
        prompt,
        width=64,
        height=64,
        num_inference_steps=steps,
        guidance_scale=7.5,
        generator=torch.Generator("cpu").manual_seed(7),
        output_type=output_type,
        callback_on_step_end=clock.callback if clock is not None else None,
    ).images[0]


def modules(pipe, names):
    layers = LayerMap.of(pipe.unet)
    return frozenset(layers.module_path(n) for n in names)


def rules_of(pipe, mode, names, steps=range(1, STEPS + 1), **kw):
    return [SwapRule(mode=mode, layers=modules(pipe, names), steps=frozenset(steps), **kw)]


def anchor_and_frame(pipe, rules, prompt=OTHER, steps=STEPS, offload=False, cache=None, output_type="np"):
    cache = cache if cache is not None else AnchorCache(needed_pairs(rules), offload=offload)
    with record(pipe, steps, cache) as clock:
        anchor = generate(pipe, ANCHOR, steps, clock, output_type)
    with swapping(pipe, steps, cache, rules) as clock:
        frame = generate(pipe, prompt, steps, clock, output_type)
    return anchor, frame, cache


ALL_LAYERS = [f"IN{i}" for i in range(12)] + ["MID"] + [f"OUT{i}" for i in range(12)]
CROSS_ATTENTION = ["IN1", "IN2", "IN4", "IN5", "IN7", "IN8", "MID"] + [f"OUT{i}" for i in range(3, 12)]


def test_hooks_that_swap_nothing_reproduce_the_plain_pipeline(tiny_pipe):
    plain = generate(tiny_pipe, ANCHOR)
    rules = rules_of(tiny_pipe, "threshold", ALL_LAYERS, threshold=0.0)  # hooked everywhere, swaps nothing
    anchor, frame, _ = anchor_and_frame(tiny_pipe, rules, prompt=ANCHOR)
    assert np.array_equal(anchor, plain)
    assert np.array_equal(frame, plain)


def test_full_swap_of_every_text_layer_reproduces_the_anchor_with_another_prompt(tiny_pipe):
    anchor, frame, _ = anchor_and_frame(tiny_pipe, rules_of(tiny_pipe, "full", CROSS_ATTENTION))
    assert np.array_equal(frame, anchor)
    assert not np.array_equal(generate(tiny_pipe, OTHER), anchor)  # the prompt does matter


def test_all_ones_mask_equals_full_and_zeros_equals_no_swap(tiny_pipe):
    names = ["OUT3", "OUT4", "OUT10"]
    _, full, _ = anchor_and_frame(tiny_pipe, rules_of(tiny_pipe, "full", names))
    _, ones, _ = anchor_and_frame(
        tiny_pipe, rules_of(tiny_pipe, "mask", names, mask=torch.ones(10, 14, dtype=torch.bool))
    )
    _, zeros, _ = anchor_and_frame(
        tiny_pipe, rules_of(tiny_pipe, "mask", names, mask=torch.zeros(10, 14, dtype=torch.bool))
    )
    assert np.array_equal(ones, full)
    assert np.array_equal(zeros, generate(tiny_pipe, OTHER))
    assert not np.array_equal(full, generate(tiny_pipe, OTHER))


def test_threshold_infinity_equals_full_and_zero_equals_no_swap(tiny_pipe):
    names = ["IN8", "OUT3", "OUT4"]
    _, full, _ = anchor_and_frame(tiny_pipe, rules_of(tiny_pipe, "full", names))
    _, inf, _ = anchor_and_frame(tiny_pipe, rules_of(tiny_pipe, "threshold", names, threshold=math.inf))
    _, zero, _ = anchor_and_frame(tiny_pipe, rules_of(tiny_pipe, "threshold", names, threshold=0.0))
    assert np.array_equal(inf, full)
    assert np.array_equal(zero, generate(tiny_pipe, OTHER))


def test_latents_swapped_at_the_last_step_give_the_anchor_and_a_zero_mask_gives_no_swap(tiny_pipe):
    anchor, last, cache = anchor_and_frame(tiny_pipe, rules_of(tiny_pipe, "full", ["LATENTS"], steps={STEPS}))
    assert np.array_equal(last, anchor)
    assert set(cache.tensors) == {("latents", STEPS - 1)} and cache.tensors[("latents", STEPS - 1)].shape[0] == 1
    _, zeros, _ = anchor_and_frame(
        tiny_pipe, rules_of(tiny_pipe, "mask", ["latents"], mask=torch.zeros(2, 2, dtype=torch.bool))
    )
    assert np.array_equal(zeros, generate(tiny_pipe, OTHER))
    _, earlier, _ = anchor_and_frame(tiny_pipe, rules_of(tiny_pipe, "full", ["LATENTS"], steps={STEPS - 1}))
    assert not np.array_equal(earlier, anchor)  # the last step still follows the frame's prompt


def test_latents_mask_is_local_blending_the_kept_half_is_the_anchors_bit_for_bit(tiny_pipe):
    left = torch.tensor([[True, False]])
    anchor, frame, _ = anchor_and_frame(
        tiny_pipe, rules_of(tiny_pipe, "mask", ["LATENTS"], mask=left), output_type="latent"
    )
    half = anchor.shape[-1] // 2
    assert torch.equal(frame[..., :half], anchor[..., :half])
    assert not torch.equal(frame[..., half:], anchor[..., half:])


def test_step_ranges_hit_exactly_the_named_steps(tiny_pipe, monkeypatch):
    import framegen.engine.hooks
    import framegen.engine.swap as swap_module

    asked, applied = [], []

    def spying_choose(rules, step, layer):
        chosen = swap_module.choose(rules, step, layer)
        asked.append(step)
        if chosen is not None:
            applied.append(step)
        return chosen

    monkeypatch.setattr(framegen.engine.hooks, "choose", spying_choose)
    rules = rules_of(tiny_pipe, "full", ["OUT3"], steps={2, 5, 6})
    anchor_and_frame(tiny_pipe, rules)
    assert asked == list(range(1, STEPS + 1))  # one OUT3 call per step, numbered 1..8
    assert applied == [2, 5, 6]


def test_cache_holds_only_the_needed_pairs(tiny_pipe):
    rules = rules_of(tiny_pipe, "full", ["OUT3", "OUT4"], steps={1, 2, 3}) + rules_of(
        tiny_pipe, "full", ["OUT10"], steps={8}
    )
    _, _, cache = anchor_and_frame(tiny_pipe, rules)
    out3, out4, out10 = "up_blocks.1.attentions.0", "up_blocks.1.attentions.1", "up_blocks.3.attentions.1"
    # DDIM: one U-Net call per step, so schedule position = step - 1
    expected = {(m, p) for m in (out3, out4) for p in (0, 1, 2)} | {(out10, 7)}
    assert set(cache.tensors) == expected
    # both classifier-free-guidance halves are kept: batch 2
    assert all(t.shape[0] == 2 for t in cache.tensors.values())
    assert cache.nbytes == sum(t.numel() * 4 for t in cache.tensors.values())


def test_host_memory_cache_gives_the_same_frame(tiny_pipe):
    rules = rules_of(tiny_pipe, "full", ["OUT3", "OUT4"], steps={1, 2, 3, 4})
    _, on_device, _ = anchor_and_frame(tiny_pipe, rules)
    _, offloaded, cache = anchor_and_frame(tiny_pipe, rules, offload=True)
    assert np.array_equal(on_device, offloaded)
    assert all(t.device.type == "cpu" for t in cache.tensors.values())


def test_disk_cache_gives_the_same_frame(tiny_pipe, tmp_path):
    rules = rules_of(tiny_pipe, "full", ["OUT3", "OUT4"], steps={1, 2, 3, 4}) + rules_of(
        tiny_pipe, "mask", ["OUT10"], steps={6}, mask=torch.eye(4, dtype=torch.bool)
    )
    _, in_memory, memory_cache = anchor_and_frame(tiny_pipe, rules)
    disk = DiskCache(needed_pairs(rules), tmp_path / "cache")
    _, from_disk, _ = anchor_and_frame(tiny_pipe, rules, cache=disk)
    assert np.array_equal(in_memory, from_disk)
    # one file per schedule position that holds a needed pair, nothing else in memory
    assert sorted(p.name for p in (tmp_path / "cache").iterdir()) == [
        f"position-{i:04d}.safetensors" for i in (0, 1, 2, 3, 5)
    ]
    assert len(disk) == len(memory_cache) == 2 * 4 + 1 and disk.nbytes == memory_cache.nbytes
    disk.clear()
    assert not (tmp_path / "cache").exists()


def test_hooks_are_removed_on_exit_and_on_error(tiny_pipe):
    def count():
        return len(tiny_pipe.unet._forward_pre_hooks) + sum(len(m._forward_hooks) for m in tiny_pipe.unet.modules())

    before = count()
    rules = rules_of(tiny_pipe, "full", ["OUT3"])
    cache = AnchorCache(needed_pairs(rules))
    with pytest.raises(RuntimeError, match="boom"):
        with record(tiny_pipe, STEPS, cache):
            assert count() == before + 2
            raise RuntimeError("boom")
    assert count() == before


@pytest.mark.parametrize("scheduler", ["pndm", "euler_a", "dpmpp_2m"])
def test_other_schedulers_count_steps_and_stay_exact(tiny_pipe, scheduler):
    """PNDM calls the U-Net twice at one step: the cache keeps one entry per call,
    and a full swap everywhere still reproduces the anchor; euler_a draws noise
    from the generator at every step."""
    original = tiny_pipe.scheduler
    set_scheduler(tiny_pipe, scheduler)
    try:
        rules = rules_of(tiny_pipe, "full", CROSS_ATTENTION)
        anchor, frame, cache = anchor_and_frame(tiny_pipe, rules)
        calls = len(tiny_pipe.scheduler.timesteps)
        assert len(cache.tensors) == len(CROSS_ATTENTION) * calls
        assert np.array_equal(frame, anchor)
        partial = rules_of(tiny_pipe, "full", ["OUT3"], steps={1})
        _, _, cache = anchor_and_frame(tiny_pipe, partial)
        assert len(cache.tensors) == (2 if scheduler == "pndm" else 1)
        last = rules_of(tiny_pipe, "full", ["LATENTS"], steps={STEPS})  # the step's last call's position
        anchor, frame, cache = anchor_and_frame(tiny_pipe, last)
        assert np.array_equal(frame, anchor) and set(cache.tensors) == {("latents", calls - 1)}
    finally:
        tiny_pipe.scheduler = original


def test_rules_name_layers_by_alias_or_module_path_alike(tiny_pipe):
    by_path = rules_of(tiny_pipe, "full", ["OUT3", "LATENTS"], steps=range(1, 4))
    by_alias = [SwapRule("full", frozenset({"OUT3", "LATENTS"}), frozenset(range(1, 4)))]
    _, expected, _ = anchor_and_frame(tiny_pipe, by_path)
    _, frame, cache = anchor_and_frame(tiny_pipe, by_alias)
    assert np.array_equal(frame, expected)
    assert {layer for layer, _ in cache.needed} == {"up_blocks.1.attentions.0", "latents"}


def test_a_swap_mode_that_does_not_exist_is_refused():
    with pytest.raises(ValueError, match="unknown swap mode 'ful' \\(known: full, mask, threshold, kv\\)"):
        SwapRule("ful", frozenset({"OUT3"}), frozenset({1}))
    with pytest.raises(ValueError, match="a mask rule needs a mask"):
        SwapRule("mask", frozenset({"OUT3"}), frozenset({1}))


def test_a_latents_rule_without_the_clock_callback_raises_instead_of_doing_nothing(tiny_pipe):
    rules = [SwapRule("full", frozenset({"LATENTS"}), frozenset({2}))]
    cache = AnchorCache(needed_pairs(rules))
    with pytest.raises(RuntimeError, match=r"never produced 1 needed .*\(latents, 2\).*clock.callback"):
        with record(tiny_pipe, STEPS, cache):
            generate(tiny_pipe, ANCHOR)  # no callback: the latents are never handed over
    with record(tiny_pipe, STEPS, cache) as clock:
        generate(tiny_pipe, ANCHOR, clock=clock)
    with pytest.raises(RuntimeError, match=r"never reached 1 needed .*\(latents, 2\)"):
        with swapping(tiny_pipe, STEPS, cache, rules):
            generate(tiny_pipe, OTHER)
    with pytest.raises(ValueError, match="unknown layer 'OUT99'"):
        with swapping(tiny_pipe, STEPS, cache, [SwapRule("full", frozenset({"OUT99"}), frozenset({2}))]):
            pass
