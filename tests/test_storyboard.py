"""Storyboard parsing, prompt deltas, and one-line errors with file:line:col."""

from pathlib import Path

import pytest

from framegen.engine.layers import LayerMap
from framegen.errors import InvalidInput
from framegen.models.tiny import SD1_UNET, SDXL_UNET
from framegen.storyboard import apply_delta, load_storyboard, parse_steps

from .conftest import TINY_BOARD

ROOT = Path(__file__).resolve().parents[1]


def problems(path) -> list[str]:
    with pytest.raises(InvalidInput) as caught:
        board = load_storyboard(path)
        board.check_layers(LayerMap(dict(SD1_UNET)))
    return caught.value.problems


def test_deltas():
    anchor = "girl, white hair, school uniform, blue skirt, outdoor"
    assert apply_delta(anchor, {"school uniform, blue skirt": "pants, dress shirts"}, [], []) == (
        "girl, white hair, pants, dress shirts, outdoor"
    )
    assert apply_delta(anchor, {}, ["smile"], ["outdoor"]) == "girl, white hair, school uniform, blue skirt, smile"
    assert apply_delta(anchor, {}, [], ["white"]) == "girl, hair, school uniform, blue skirt, outdoor"  # substring
    assert (
        apply_delta(anchor, {"white": "red"}, ["a", "b"], ["girl"])
        == "red hair, school uniform, blue skirt, outdoor, a, b"
    )
    for replace, remove in (({"pants": "x"}, []), ({}, ["indoor"])):
        with pytest.raises(KeyError):
            apply_delta(anchor, replace, [], remove)


def test_steps():
    assert parse_steps("1-3", 50) == (1, 2, 3)
    assert parse_steps("1-3,10, 12-13", 50) == (1, 2, 3, 10, 12, 13)
    assert parse_steps([4, 2], 50) == (2, 4)
    assert parse_steps(7, 50) == (7,)
    assert parse_steps("all", 5) == (1, 2, 3, 4, 5)
    for bad, message in (("0-3", "outside 1..50"), ("40-51", "outside"), ("5-2", "reversed"), ("1-x", "cannot read")):
        with pytest.raises(ValueError, match=message):
            parse_steps(bad, 50)


def test_tiny_board_resolves(write_board):
    board = load_storyboard(write_board(TINY_BOARD))
    pants, smile, free = board.frames
    assert pants.prompt == "girl, white hair, pants, dress shirts, outdoor" and pants.hold == 3
    assert smile.prompt == "girl, white hair, school uniform, blue skirt, smile"
    assert free.prompt == "a full prompt instead of a delta" and free.rules == ()
    assert [r.mode for r in pants.rules] == ["full", "mask"] and pants.rules[0].steps == (1, 2, 3)
    assert board.output_dir == board.path.parent / "out" / "board"


@pytest.mark.parametrize("name", ["paper.yaml", "tiny.yaml", "demo.yaml"])
def test_bundled_storyboards_validate(name):
    path = ROOT / "storyboards" / name
    if not path.exists():
        pytest.skip(f"{name} not bundled")
    board = load_storyboard(path)
    board.check_layers(LayerMap(dict(SD1_UNET)))  # all are SD1.x-shaped
    if name == "paper.yaml":
        spec = board.spec
        assert (spec.render.width, spec.render.height, spec.render.steps, spec.render.seed) == (640, 896, 50, 1111)
        assert spec.render.guidance == 7.5 and spec.model.id == "hakurei/waifu-diffusion"
        assert board.frames[0].prompt.endswith("girl, white hair, twintail, green eyes, pants, dress shirts, outdoor")


# (YAML fragment inserted into a valid board, expected line:col, expected message part)
ERRORS = [
    ("model: {id: tiny-random, colour: red}", "model.colour: unknown key 'colour' (known: id,"),
    ("render: {width: 60}", "render.width: 60 is not a multiple of 8"),
    ("render: {steps: many}", "render.steps: Input should be a valid integer"),
    ("swap: [{mode: blend, layers: [OUT3]}]", "swap[0].mode: unknown mode 'blend' (known: full, mask, threshold, kv)"),
    ("swap: [{layers: [OUT3]}]", "swap[0]: a rule needs 'mode'"),
    ("swap: [{mode: full, layers: [OUT3], steps: 1-9}]", "swap[0].steps: step 9 is outside 1..8"),
    ("swap: [{mode: full, layers: [OUT3], steps: 5-2}]", "swap[0].steps: reversed step range 5-2"),
    ("swap: [{mode: full, layers: [OUT3, OUT13]}]", "swap[0].layers: unknown layer 'OUT13' (known: IN0, IN1,"),
    ("swap: [{mode: threshold, layers: [OUT3]}]", "swap[0].threshold: required"),
    (
        "swap: [{mode: mask, layers: [OUT3], mask: {grid: ['10', '1']}}]",
        "swap[0].mask.grid: grid rows must all have the same length",
    ),
    ("swap: [{mode: mask, layers: [OUT3], mask: {image: none.png}}]", "swap[0].mask.image: no such file"),
    ("swap: [{mode: mask, layers: [OUT3], mask: {}}]", "swap[0].mask: give exactly one of grid, image, boxes or auto"),
]


@pytest.mark.parametrize("fragment, message", ERRORS)
def test_one_line_errors_point_at_the_value(write_board, fragment, message):
    key, lines, skipping = fragment.split(":")[0], [], False
    for line in TINY_BOARD.strip().splitlines():  # drop the section the fragment replaces
        skipping = line.startswith(key + ":") or (skipping and line.startswith(" "))
        if not skipping:
            lines.append(line)
    text = "\n".join(lines) + "\n" + fragment + "\n"
    found = problems(write_board(text))
    assert any(message in p for p in found), found
    line_number = len(lines) + 1
    hit = next(p for p in found if message in p)
    assert hit.startswith(f"{Path(hit.split(':')[0])}:{line_number}:"), hit
    assert "\n" not in hit


def test_delta_and_name_errors(write_board):
    text = TINY_BOARD.replace("remove: outdoor", "remove: indoor").replace("name: free", "name: pants")
    found = problems(write_board(text))
    assert any(":10:39:" in p and "frames[1].remove: 'indoor' is not in the anchor prompt" in p for p in found), found
    assert any("frames[2].name: duplicate frame name 'pants'" in p for p in found), found


def test_yaml_errors(write_board):
    assert problems(write_board("version: 1\nmodel: {id: x\n"))[0].endswith(
        "invalid YAML: expected ',' or '}', but got '<stream end>'"
    )
    assert "duplicate key 'version'" in problems(write_board("version: 1\nversion: 1\n"))[0]
    assert (
        "needs at least one frame"
        in problems(write_board("version: 1\nmodel: {id: x}\nanchor: {prompt: a}\nframes: []\n"))[0]
    )
    assert "cannot read storyboard" in problems(Path("/nonexistent/board.yaml"))[0]


def test_layers_may_be_a_comma_separated_string(write_board):
    board = load_storyboard(write_board(TINY_BOARD.replace("[OUT3, OUT4]", '"OUT3, OUT4"')))
    assert board.frames[0].rules[0].layers == ("OUT3", "OUT4")


def test_layer_names_follow_the_model_structure(write_board):
    board = load_storyboard(write_board(TINY_BOARD.replace("[OUT3, OUT4]", "[OUT3, IN11]")))
    board.check_layers(LayerMap(dict(SD1_UNET)))
    with pytest.raises(InvalidInput, match="unknown layer 'IN11'"):
        board.check_layers(LayerMap(dict(SDXL_UNET)))  # SDXL has IN0..IN8 only


def test_a_storyboard_loads_from_yaml_text_and_from_a_mapping(tmp_path):
    import yaml

    path = tmp_path / "board.yaml"
    path.write_text(TINY_BOARD.lstrip())
    from_file = load_storyboard(path)
    for source in (TINY_BOARD.lstrip(), yaml.safe_load(TINY_BOARD)):
        board = load_storyboard(source, folder=tmp_path)
        assert board.spec == from_file.spec and board.frames == from_file.frames
        assert board.folder == tmp_path and board.output_dir == tmp_path / "out" / "<storyboard>"
    # text keeps the positions of its problems; a mapping has none to give
    bad = TINY_BOARD.lstrip().replace("steps: 8", "steps: 0")
    with pytest.raises(InvalidInput) as text_error:
        load_storyboard(bad, folder=tmp_path)
    assert text_error.value.problems == [
        f"{tmp_path / '<storyboard>'}:3:40: render.steps: Input should be greater than or equal to 1"
    ]
    with pytest.raises(InvalidInput) as mapping_error:
        load_storyboard(yaml.safe_load(bad), folder=tmp_path)
    assert mapping_error.value.problems[0].startswith(f"{tmp_path / '<storyboard>'}:1:1: render.steps:")
