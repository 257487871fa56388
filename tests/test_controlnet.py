"""ControlNet per frame on tiny-random, offline: a tiny random ControlNet
(`framegen.models.tiny.acting_controlnet`), control images on
the anchor and per frame, keys that cover them, and the one-line errors."""

import json

import numpy as np
import pytest
import torch
import yaml
from PIL import Image

from framegen.cli import main


@pytest.fixture(scope="module")
def controlnet(tmp_path_factory):
    from framegen.models.tiny import acting_controlnet, tiny_pipeline

    folder = tmp_path_factory.mktemp("controlnet") / "tiny-controlnet"
    acting_controlnet(tiny_pipeline().unet).save_pretrained(folder, safe_serialization=True)
    return folder


def figure(path, x: int) -> str:
    """A stick figure standing at `x`: a control image."""
    from framegen.models.tiny import stick_figure

    stick_figure(x).save(path)
    return path.name


def board(folder, controlnet, scale=1.0, **anchor) -> dict:
    return {
        "version": 1,
        "model": {"id": "tiny-random", "controlnet": [{"id": str(controlnet), "scale": scale}]},
        "render": {"width": 64, "height": 64, "steps": 4, "guidance": 5.0, "seed": 3},
        "anchor": {"prompt": "girl, white hair, blue skirt", "control": [figure(folder / "left.png", 20)], **anchor},
        "swap": [{"mode": "full", "layers": ["OUT3", "OUT4"], "steps": "1-2"}],
        "frames": [
            {"name": "same", "swap": []},
            {"name": "moved", "control": [figure(folder / "right.png", 44)], "swap": []},
            {"name": "red", "replace": {"blue skirt": "red skirt"}},
        ],
        "report": {"background": {"segmenter": "none"}},
    }


def render(tmp_path, spec, name="out"):
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    assert main(["render", "-q", str(path), "-o", str(tmp_path / name)]) == 0
    out = tmp_path / name
    images = [np.asarray(Image.open(out / p)) for p in ("anchor.png", *(f"frames/{i:04d}.png" for i in (1, 2, 3)))]
    return images, json.loads((out / "report.json").read_text())


def test_control_steers_the_frames_and_scale_zero_is_no_controlnet_bit_for_bit(tmp_path, controlnet):
    (anchor, same, moved, red), _ = render(tmp_path, board(tmp_path, controlnet), "controlled")
    assert np.array_equal(same, anchor)  # the anchor's prompt, seed and control: the anchor again
    assert not np.array_equal(moved, anchor)  # only the control image moved
    zero, _ = render(tmp_path, board(tmp_path, controlnet, scale=0.0), "zero")
    plain = board(tmp_path, controlnet)
    del plain["model"]["controlnet"], plain["anchor"]["control"], plain["frames"][1]["control"]
    none, _ = render(tmp_path, plain, "none")
    assert all(np.array_equal(a, b) for a, b in zip(zero, none))
    assert not np.array_equal(anchor, none[0])


def test_keys_cover_the_control_images(tmp_path, controlnet):
    spec = board(tmp_path, controlnet)
    render(tmp_path, spec)
    _, report = render(tmp_path, spec)
    assert [frame["reused"] for frame in report["frames"]] == [True, True, True]
    figure(tmp_path / "right.png", 40)  # the moved frame's control image changes
    _, report = render(tmp_path, spec)
    assert [frame["reused"] for frame in report["frames"]] == [True, False, True]
    spec["model"]["controlnet"][0]["scale"] = 0.5  # the ControlNet's scale: the anchor and everything after it
    _, report = render(tmp_path, spec)
    assert [frame["reused"] for frame in report["frames"]] == [False, False, False]
    assert report["anchor_cache"] != "reused"


def without_controlnet_but_a_control_mask(spec):
    del spec["model"]["controlnet"], spec["anchor"]["control"], spec["frames"][1]["control"]
    spec["frames"][2]["swap"] = [{"mode": "mask", "layers": ["OUT3"], "steps": "all", "mask": {"auto": "control"}}]


@pytest.mark.parametrize(
    "change, message",
    [
        (
            lambda s: s["frames"][1].update(control=["right.png", "left.png"]),
            "frames[1].control: 2 control images for 1",
        ),
        (lambda s: s["frames"][1].update(control=["nowhere.png"]), "frames[1].control[0]: no such file"),
        (lambda s: s["anchor"].pop("control"), "anchor: model.controlnet needs the anchor's `control` images"),
        (lambda s: s["model"].pop("controlnet"), "anchor.control: 1 control images for 0 ControlNets"),
        (lambda s: s["model"]["controlnet"][0].update(id="./missing-net"), "model.controlnet[0].id: no such file"),
        (without_controlnet_but_a_control_mask, "frames[2].swap[0].mask.auto: control masks need model.controlnet"),
    ],
)
def test_control_mistakes_are_one_line_before_loading(tmp_path, capsys, controlnet, change, message):
    spec = board(tmp_path, controlnet)
    change(spec)
    path = tmp_path / "board.yaml"
    path.write_text(yaml.safe_dump(spec))
    assert main(["validate", str(path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert any(message in line for line in err), err


def test_in_and_mid_swaps_do_not_carry_the_anchors_control_and_out_swaps_do(tmp_path, capsys, controlnet):
    """The ControlNet adds its residuals to the skip connections and the mid block after
    the hooked IN and MID outputs: a frame whose control image moved, with every IN layer
    and MID swapped at every step, still differs from the anchor; with the last OUT block
    swapped it is the anchor bit for bit, and so is a frame with a new prompt and a moved
    control image with every cross-attention layer swapped: the anchor's cache holds what
    its ControlNet made. `framegen layers --controlnet` says which layers carry control."""
    assert main(["layers", "tiny-random", "--controlnet"]) == 0
    table = [line.split() for line in capsys.readouterr().out.splitlines()[1:] if line[:1] in "IMOL"]
    carries = {row[0]: row[-1] for row in table}
    ins = [name for name, says in carries.items() if says == "no"]
    assert ins == [f"IN{i}" for i in range(12)] + ["MID"]
    assert main(["layers", "tiny-random", "--cross-attention"]) == 0
    text_layers = [line.split()[0] for line in capsys.readouterr().out.splitlines()[1:]]
    spec = board(tmp_path, controlnet)
    spec["frames"] = [
        {"name": "in-mid", "control": ["right.png"], "swap": [{"mode": "full", "layers": ins, "steps": "all"}]},
        {"name": "out", "control": ["right.png"], "swap": [{"mode": "full", "layers": ["OUT11"], "steps": "all"}]},
        {"name": "text", "control": ["right.png"], "replace": {"blue skirt": "red skirt"},
         "swap": [{"mode": "full", "layers": text_layers, "steps": "all"}]},
    ]  # fmt: skip
    figure(tmp_path / "right.png", 44)
    path = tmp_path / "board.yaml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    assert main(["render", "-q", str(path), "-o", str(tmp_path / "out")]) == 0
    anchor, in_mid, out, text = (
        np.asarray(Image.open(tmp_path / "out" / p)) for p in ("anchor.png", *(f"frames/000{i}.png" for i in (1, 2, 3)))
    )
    assert not np.array_equal(in_mid, anchor)
    assert np.array_equal(out, anchor)
    assert np.array_equal(text, anchor)


def test_a_control_mask_frees_where_the_control_images_differ(tmp_path, controlnet):
    from framegen.engine.masks import control_mask

    left, right = (Image.open(tmp_path / figure(tmp_path / n, x)) for n, x in (("l.png", 20), ("r.png", 44)))
    assert control_mask([left], [left], (16, 16), 0.1, 1).all()  # nothing moved: keep everything
    keep = control_mask([left], [right], (16, 16), 0.1, 0)
    assert not keep[5, 5] and not keep[5, 11] and keep[5, 0] and keep[5, 15] and keep[0, 8]
    grown = control_mask([left], [right], (16, 16), 0.1, 1)
    assert (grown <= keep).all() and grown.sum() < keep.sum()

    spec = board(tmp_path, controlnet)
    spec["frames"] = [
        {"name": "moved", "control": ["right.png"],
         "swap": [{"mode": "mask", "layers": ["OUT3", "OUT4"], "steps": "all", "mask": {"auto": "control"}}]},
    ]  # fmt: skip
    _, report = render_frames(tmp_path, spec)
    mask = np.asarray(Image.open(tmp_path / "out" / report["frames"][0]["masks"][0]["image"]))
    assert report["frames"][0]["masks"][0]["kind"] == "control"
    assert mask[32, 2] == 255 and mask[32, 20] == 0 and mask[32, 44] == 0  # white = kept from the anchor


def render_frames(tmp_path, spec):
    path = tmp_path / "board.yaml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    assert main(["render", "-q", str(path), "-o", str(tmp_path / "out")]) == 0
    return None, json.loads((tmp_path / "out" / "report.json").read_text())


def test_in_betweens_interpolate_from_the_previous_frame_and_are_reported(tmp_path, controlnet):
    """Two in-betweens before `moved`: their conditioning and control images lie 1/3 and
    2/3 of the way from the frame before (`same`: the anchor's prompt and control) to
    `moved`'s; they are video frames with report entries of their own, checked like frames."""
    spec = board(tmp_path, controlnet)
    spec["frames"][1]["tween"] = 2
    spec["frames"][1]["replace"] = {"blue skirt": "red skirt"}
    spec["checks"] = {"max_background_mse": 1e9}
    _, report = render_frames(tmp_path, spec)
    names = [frame["name"] for frame in report["frames"]]
    assert names == ["same", "moved~1", "moved~2", "moved", "red"]
    tweens = [frame for frame in report["frames"] if "tween_of" in frame]
    assert [(t["tween_of"], t["tween"], t["image"]) for t in tweens] == [
        ("moved", [1, 2], "frames/0002-1.png"), ("moved", [2, 2], "frames/0002-2.png"),
    ]  # fmt: skip
    assert report["video"]["frame_count"] == 1 + 5
    out = tmp_path / "out"
    images = [
        np.asarray(Image.open(out / f"frames/{n}.png")).astype(float) for n in ("0001", "0002-1", "0002-2", "0002")
    ]
    steps = [np.abs(b - a).mean() for a, b in zip(images, images[1:])]
    assert all(step > 0 for step in steps)  # every in-between is a picture of its own
    # a resumed render reuses them; a changed previous frame re-renders them
    _, again = render_frames(tmp_path, spec)
    assert all(frame["reused"] for frame in again["frames"])
    spec["frames"][0]["add"] = "smile"
    _, changed = render_frames(tmp_path, spec)
    assert [f["reused"] for f in changed["frames"]] == [False, False, False, True, True]


def test_slerp_keeps_norms_and_meets_its_ends():
    from framegen.engine.tween import slerp

    a, b = torch.randn(2, 77, 32), torch.randn(2, 77, 32)
    assert torch.allclose(slerp(a, b, 0.0), a, atol=1e-6) and torch.allclose(slerp(a, b, 1.0), b, atol=1e-5)
    a, b = a / a.norm(dim=-1, keepdim=True), b / b.norm(dim=-1, keepdim=True)
    assert torch.allclose(slerp(a, b, 0.5).norm(dim=-1), torch.ones(2, 77), atol=1e-5)
    assert torch.allclose(slerp(a, a, 0.3), a, atol=1e-6)  # parallel: the straight line, a itself


def test_tween_zero_changes_nothing(tmp_path, controlnet):
    spec = board(tmp_path, controlnet)
    plain, plain_report = render(tmp_path, spec, "plain")
    spec["frames"][1]["tween"] = 0
    zero, zero_report = render(tmp_path, spec, "zero")
    assert all(np.array_equal(a, b) for a, b in zip(plain, zero))
    assert [f["name"] for f in zero_report["frames"]] == [f["name"] for f in plain_report["frames"]]
    assert zero_report["video"]["frame_count"] == plain_report["video"]["frame_count"]


def test_an_in_between_at_t_one_is_its_frame(tmp_path, controlnet):
    """At t = 1 the slerp gives the frame's own encoding up to rounding (sin(w)·b / sin(w)),
    and the cross-fade the frame's control image: measured on CPU, the pixels are equal."""
    from framegen.models.load import with_controlnets
    from framegen.models.tiny import tiny_pipeline
    from framegen.run.prepare import prepare
    from framegen.run.shots import Between, tween_shot
    from framegen.storyboard import load_storyboard

    spec = board(tmp_path, controlnet)
    spec["frames"][1]["replace"] = {"blue skirt": "red skirt"}
    path = tmp_path / "board.yaml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    storyboard = load_storyboard(path)
    pipe = with_controlnets(tiny_pipeline(), storyboard.spec.model, torch.float32)
    prepared = prepare(storyboard, pipe)
    renderer = prepared.renderer()
    renderer.anchor(storyboard.spec.anchor.prompt, control=prepared.conditioning.images(storyboard.spec.anchor.control))
    moved = storyboard.frames[1]
    at_one = tween_shot(moved, Between(storyboard.spec.anchor.prompt, ("left.png",), k=1, n=0))
    assert at_one.between.t == 1.0
    tween = renderer.frames([prepared.shot(at_one)], controls=[prepared.conditioning.control(at_one)])[0].image
    frame = renderer.frame(*prepared.shot(moved), control=prepared.conditioning.images(moved.control)).image
    assert np.array_equal(np.asarray(tween), np.asarray(frame))
