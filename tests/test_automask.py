"""Automatic masks on tiny-random: which tokens a word is, the attention maps being
the module's own, mask shapes per layer, exact bounds, and the delta's words."""

import json

import numpy as np
import pytest
import torch
from PIL import Image

from framegen.cli import main
from framegen.engine.automask import (
    AttentionStore,
    attention_modules,
    keep_mask,
    mid_resolution_layers,
    tag_heads,
    token_positions,
)
from framegen.engine.layers import LayerMap
from framegen.run.prepare import prepare
from framegen.storyboard import load_storyboard

from .conftest import open_board, render_frame

ANCHOR = "girl, white hair, school uniform, blue skirt, outdoor"

BOARD = """
version: 1
model: {{id: tiny-random}}
render: {{width: 64, height: 64, steps: 6, guidance: 7.5, seed: 3}}
anchor: {{prompt: "{anchor}"}}
swap:
  - {{mode: full, layers: [OUT3, OUT4], steps: "1-2"}}
  - {{mode: mask, layers: [OUT3, OUT4, OUT5, OUT6, OUT10], steps: "3-6", mask: {mask}}}
frames:
  - {{name: pants, replace: {{"school uniform, blue skirt": "pants, dress shirts"}}}}
  - {{name: smile, add: smile, remove: outdoor}}
  - {{name: free, prompt: "boy, white hair, outdoor, night"}}
report: {{background: {{segmenter: none}}}}
"""


def board_with(write_board, mask: str, name="board.yaml"):
    return load_storyboard(write_board(BOARD.format(anchor=ANCHOR, mask=mask), name))


@pytest.mark.parametrize("word", ["white hair", "blue skirt", "outdoor", "girl"])
def test_token_positions_cover_every_token_of_a_word(tiny_pipe, word):
    tokenizer = tiny_pipe.tokenizer  # byte-level: every word is many tokens
    ids = tokenizer(ANCHOR).input_ids
    positions = token_positions(tokenizer, ANCHOR, word)
    assert positions == list(range(positions[0], positions[0] + len(tokenizer.tokenize(word))))
    assert tokenizer.decode([ids[p] for p in positions]).strip() == word


def test_token_positions_with_a_bpe_tokenizer():
    from framegen.models.demo import load_pipeline

    tokenizer = load_pipeline().tokenizer
    prompt = "girl, white hair, twintail, red shirt, blue skirt, grass"
    ids = tokenizer(prompt).input_ids
    twintail = token_positions(tokenizer, prompt, "twintail")  # not in the grammar: several tokens
    assert len(twintail) > 1 and tokenizer.decode([ids[p] for p in twintail]).strip() == "twintail"
    assert [tokenizer.decode([ids[p]]).strip() for p in token_positions(tokenizer, prompt, "red shirt")] == [
        "red",
        "shirt",
    ]
    assert token_positions(tokenizer, prompt, "hair") == [4]  # <start> girl , white hair: a whole word only
    assert token_positions(tokenizer, prompt, "pants") == []


def test_words_come_from_each_kind_of_delta(write_board):
    board = board_with(write_board, "{auto: attention}")
    pants, smile, free = board.frames
    assert (pants.anchor_words, pants.frame_words) == (("school uniform, blue skirt",), ("pants, dress shirts",))
    assert (smile.anchor_words, smile.frame_words) == (("outdoor",), ("smile",))
    assert (free.anchor_words, free.frame_words) == (("girl", "school uniform", "blue skirt"), ("boy", "night"))


@pytest.mark.parametrize(
    "prompt, spans, heads",
    [
        ("girl, white hair, red shirt, blue skirt", ["red shirt"], ["shirt"]),
        ("girl, white hair, red shirt, blue skirt", ["red"], ["shirt"]),  # a word inside a tag
        (
            "girl, school uniform, blue sailor collar, blue skirt",
            ["school uniform, blue sailor collar"],
            ["uniform", "collar"],
        ),
        ("girl, white hair, red shirt", ["girl", "white hair"], ["girl", "hair"]),
        ("girl, redhead, red shirt", ["red"], ["shirt"]),  # whole words only: not "redhead"
        ("a photo of a girl in a red shirt on the grass", ["red"], ["red"]),  # a phrase, not a tag: the span itself
        ("girl, twintail", ["twintail"], ["twintail"]),
    ],
)
def test_tag_heads_name_the_object_an_edit_changes(prompt, spans, heads):
    assert tag_heads(prompt, spans) == heads


def test_attention_masks_watch_the_heads_of_the_delta_or_the_given_words(tiny_pipe, write_board):
    tokenizer = tiny_pipe.tokenizer

    def positions(prompt, *words):
        return sorted(p for w in words for p in token_positions(tokenizer, prompt, w))

    prepared = prepare(board_with(write_board, "{auto: attention}"), tiny_pipe)
    pants, smile, free = (prepared.rules[plan.index][1].mask for plan in prepared.board.frames)
    prompts = {plan.name: plan.prompt for plan in prepared.board.frames}
    assert pants.anchor_store.positions["anchor"] == positions(ANCHOR, "uniform", "skirt")
    assert pants.frame_positions == positions(prompts["pants"], "pants", "shirts")
    assert (smile.anchor_store.positions["anchor"], smile.frame_positions) == (
        positions(ANCHOR, "outdoor"),
        positions(prompts["smile"], "smile"),
    )
    assert free.anchor_store.positions["anchor"] == positions(ANCHOR, "girl", "uniform", "skirt")
    assert free.frame_positions == positions(prompts["free"], "boy", "night")

    given = prepare(board_with(write_board, "{auto: attention, words: [blue skirt]}", "given.yaml"), tiny_pipe)
    mask = given.rules[1][1].mask
    assert mask.anchor_store.positions["anchor"] == positions(ANCHOR, "blue skirt")
    assert mask.frame_positions == []  # the pants frame has no blue skirt


def test_recomputed_attention_maps_are_the_modules_own(tiny_pipe):
    """probs @ V through the module's output projection gives the module's real output."""
    layers = LayerMap.of(tiny_pipe.unet)
    path = next(iter(attention_modules(tiny_pipe, mid_resolution_layers(layers), (8, 8))))
    module = tiny_pipe.unet.get_submodule(path)
    hidden = torch.randn(2, 16, module.to_q.in_features)
    context = torch.randn(2, 5, module.to_k.in_features)
    with torch.no_grad():
        query, key = module.head_to_batch_dim(module.to_q(hidden)), module.head_to_batch_dim(module.to_k(context))
        probs = module.get_attention_scores(query, key, None)
        mixed = module.batch_to_head_dim(torch.bmm(probs, module.head_to_batch_dim(module.to_v(context))))
        rebuilt = module.to_out[1](module.to_out[0](mixed))
        actual = module(hidden, encoder_hidden_states=context)
    assert torch.allclose(rebuilt, actual, atol=1e-5)
    assert torch.allclose(probs.sum(-1), torch.ones(()))


def test_mid_resolution_layers_follow_the_config():
    from framegen.models.tiny import SD1_UNET, SDXL_UNET

    assert [layer.name for layer in mid_resolution_layers(LayerMap(SD1_UNET))] == ["IN4", "IN5", "OUT6", "OUT7", "OUT8"]
    sdxl = mid_resolution_layers(LayerMap(SDXL_UNET))
    assert sdxl and {layer.level for layer in sdxl} == {2}


def test_keep_mask_threshold_and_dilation():
    region = torch.zeros(5, 5)
    region[2, 2] = 1.0
    assert keep_mask(region, (5, 5), 0.5, 0).sum() == 24  # one cell free
    assert keep_mask(region, (5, 5), 0.5, 1).sum() == 25 - 9  # grown by one cell each way
    assert keep_mask(region, (5, 5), 1.0, 1).all()  # nothing above the maximum: all kept
    assert keep_mask(None, (3, 4), 0.1, 2).all()
    corner = torch.tensor([[1.0, 0.0], [0.0, 0.0]])  # a coarse map resized bilinearly to the latent grid
    assert (~keep_mask(corner, (4, 4), 0.5, 0)).nonzero().tolist() == [[0, 0], [0, 1], [1, 0], [1, 1]]


def test_regions_ignore_the_attention_floor():
    """Every token gets some attention everywhere: a constant added to a map (and a
    scale) leaves the region unchanged, and it spans 0..1."""
    grids = {"attn2": (3, 3)}
    low, high = AttentionStore({"w": [1]}, grids, {1}), AttentionStore({"w": [1]}, grids, {1})
    map_ = torch.tensor([[0.0, 0.1, 0.0], [0.1, 0.5, 0.2], [0.0, 0.0, 0.1]])
    low.maps[("w", 1)], high.maps[("w", 1)] = map_, 3 * map_ + 0.4
    assert torch.allclose(low.region("w", 2), high.region("w", 2))
    assert low.region("w", 2).min() == 0 and low.region("w", 2).max() == 1
    assert low.region("w", 1) is None  # no steps before step 1


@pytest.mark.parametrize("mask", ["{auto: attention, threshold: 1.0}", "{auto: noise, threshold: 1000}"])
def test_an_auto_mask_that_frees_nothing_equals_a_full_swap(tiny_pipe, write_board, mask):
    auto_board, full_board = board_with(write_board, mask), board_with(write_board, "{grid: ['1']}", "full.yaml")
    (auto_prepared, auto), (full_prepared, full) = open_board(auto_board, tiny_pipe), open_board(full_board, tiny_pipe)
    auto.anchor(ANCHOR), full.anchor(ANCHOR)
    for plan in auto_board.frames:
        frame = render_frame(auto_prepared, auto, plan)
        assert frame.masks[0][1].all()
        assert np.array_equal(np.asarray(frame.image), np.asarray(render_frame(full_prepared, full, plan).image))


def test_attention_masks_are_written_at_image_size_and_reported(write_board, tmp_path):
    path = write_board(BOARD.format(anchor=ANCHOR, mask="{auto: attention, threshold: 0.5, dilate: 0}"))
    assert main(["render", "-q", str(path), "-o", str(tmp_path / "out")]) == 0
    report = json.loads((tmp_path / "out" / "report.json").read_text())
    for frame in report["frames"]:
        assert frame["masks"] == [{"kind": "attention", "image": f"masks/{frame['index']:04d}.png"}]
        mask = np.asarray(Image.open(tmp_path / "out" / frame["masks"][0]["image"]))
        assert mask.shape == (64, 64) and set(np.unique(mask)) <= {0, 255}
        # the mask is at the latent grid, 8x8 here: each cell is an 8x8 block of one value
        assert (mask.reshape(8, 8, 8, 8) == mask[::8, ::8][:, None, :, None]).all()
    assert report["frames"][0]["rules"][1]["mask"] == {"auto": "attention", "threshold": 0.5, "dilate": 0}


def test_attention_maps_have_the_layer_grid(tiny_pipe, write_board):
    board = board_with(write_board, "{auto: attention, layers: [OUT3, OUT4], dilate: 0}")
    prepared, renderer = open_board(board, tiny_pipe)
    renderer.anchor(ANCHOR)
    maps = prepared.anchor_state.stores[0]
    assert maps.size == (2, 2)  # OUT3/OUT4 of the tiny U-Net at 64x64: latent 8x8, level 2
    assert {step for _, step in maps.maps} == {1, 2}  # the steps before the mask rule (3-6)
    mask = render_frame(prepared, renderer, board.frames[0]).masks[0][1]
    assert mask.shape == (8, 8)  # resized to the latent grid


def test_mask_layers_must_have_cross_attention(tiny_pipe, write_board):
    from framegen.errors import InvalidInput

    with pytest.raises(InvalidInput, match=r"swap\[1\]\.mask\.layers: 'IN3' has no cross-attention"):
        prepare(board_with(write_board, "{auto: attention, layers: [IN3]}"), tiny_pipe)
