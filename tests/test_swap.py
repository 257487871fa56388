"""The swap rules as pure functions on plain tensors."""

import math

import torch

from framegen.engine.swap import SwapRule, choose, needed_pairs, swap

A = torch.randn(2, 3, 4, 6)
C = torch.randn(2, 3, 4, 6)


def rule(mode, **kw):
    return SwapRule(mode=mode, layers=frozenset(kw.pop("layers", {"L"})), steps=frozenset(kw.pop("steps", {1})), **kw)


def test_full_returns_the_anchor():
    assert torch.equal(swap([rule("full")], A, C, 1, "L"), A)


def test_no_rule_for_step_or_layer_keeps_current():
    rules = [rule("full", steps={2}, layers={"L"})]
    assert torch.equal(swap(rules, A, C, 1, "L"), C)
    assert torch.equal(swap(rules, A, C, 2, "M"), C)
    assert torch.equal(swap(rules, A, C, 2, "L"), A)


def test_all_ones_mask_is_full_and_all_zeros_is_none():
    ones, zeros = torch.ones(2, 3, dtype=torch.bool), torch.zeros(2, 3, dtype=torch.bool)
    assert torch.equal(swap([rule("mask", mask=ones)], A, C, 1, "L"), A)
    assert torch.equal(swap([rule("mask", mask=zeros)], A, C, 1, "L"), C)


def test_mask_is_resized_nearest_to_each_grid_and_picks_per_position():
    grid = torch.tensor([[1, 0, 0], [0, 0, 1]], dtype=torch.bool)  # 3 wide, 2 high
    out = swap([rule("mask", mask=grid)], A, C, 1, "L")  # tensor grid: 6 wide, 4 high
    keep = grid.repeat_interleave(2, 0).repeat_interleave(2, 1)  # each cell -> 2x2
    assert torch.equal(out, torch.where(keep, A, C))
    assert torch.equal(out[:, :, :2, :2], A[:, :, :2, :2]) and torch.equal(out[:, :, :2, 2:], C[:, :, :2, 2:])


def test_threshold_bounds_are_exact():
    assert torch.equal(swap([rule("threshold", threshold=math.inf)], A, C, 1, "L"), A)
    assert torch.equal(swap([rule("threshold", threshold=0.0)], A, C, 1, "L"), C)


def test_threshold_per_element_and_per_position():
    current = A.clone()
    current[0, 0, 0, 0] += 0.5  # one element far off
    out = swap([rule("threshold", threshold=0.1)], A, current, 1, "L")
    assert out[0, 0, 0, 0] == current[0, 0, 0, 0]
    assert torch.equal(out.flatten()[1:], A.flatten()[1:])
    # per position: the channel mean of |diff| at (0, 0) is 0.5 / 3 > 0.1 -> whole column kept current
    out = swap([rule("threshold", threshold=0.1, reduce="position")], A, current, 1, "L")
    assert torch.equal(out[0, :, 0, 0], current[0, :, 0, 0])
    assert torch.equal(out[1], A[1]) and torch.equal(out[0, :, 1:], A[0, :, 1:])
    out = swap([rule("threshold", threshold=0.2, reduce="position")], A, current, 1, "L")
    assert torch.equal(out, A)


def test_later_rule_wins():
    first, second = rule("full"), rule("threshold", threshold=0.0)
    assert choose([first, second], 1, "L") is second
    assert torch.equal(swap([first, second], A, C, 1, "L"), C)
    assert torch.equal(swap([second, first], A, C, 1, "L"), A)


def test_needed_pairs_is_the_union_of_rule_coverage():
    rules = [rule("full", layers={"a", "b"}, steps={1, 2}), rule("full", layers={"b"}, steps={5})]
    assert needed_pairs(rules) == {("a", 1), ("a", 2), ("b", 1), ("b", 2), ("b", 5)}


def test_relative_threshold_scales_with_the_anchor_tensor():
    anchor = torch.tensor([[[[1.0, -3.0], [2.0, -2.0]]]])  # mean |value| = 2
    current = anchor + torch.tensor([[[[0.5, 1.5], [0.9, 1.1]]]])
    relative = SwapRule("threshold", frozenset({"x"}), frozenset({1}), threshold=0.5, relative=True)  # 0.5 x 2 = 1.0
    absolute = SwapRule("threshold", frozenset({"x"}), frozenset({1}), threshold=1.0)
    assert torch.equal(relative(anchor, current), absolute(anchor, current))
    assert torch.equal(relative(anchor, current), torch.tensor([[[[1.0, -1.5], [2.0, -0.9]]]]))
    # scaling both tensors scales the limit with them: the same elements are swapped
    assert torch.equal(relative(10 * anchor, 10 * current), 10 * relative(anchor, current))
