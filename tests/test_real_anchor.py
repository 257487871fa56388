"""A real image as the anchor, on tiny-random: DDIM inversion's round trip, the image's
own latents for local blending, frames measured against the image, a real anchor reused
from the disk cache, keys that cover the image and the inversion, and the error cases."""

import json

import numpy as np
import pytest
import torch
import yaml
from PIL import Image

from framegen.cli import main

STEPS = 6
PROMPT = "girl, white hair, red shirt, blue skirt"


@pytest.fixture
def ddim_pipe(tiny_pipe):
    """tiny-random with DDIM (its own scheduler already): the inversion's inverse form exists."""
    assert type(tiny_pipe.scheduler).__name__ == "DDIMScheduler"
    return tiny_pipe


def test_inversion_round_trips_the_latents_and_refinements_close_the_gap(ddim_pipe):
    """Guidance 1, 20 steps: plain DDIM inversion, then the pipeline from its noise,
    misses the input latents by up to 4.0 on tiny-random's random U-Net (measured 3.98;
    the latents' mean |value| is 0.74). Each fixed-point refinement predicts the noise
    where the inversion step lands, which is what the forward step uses: the error falls
    with every refinement, to 4.0e-4 after ten (tolerance 1e-3; a step's first prediction
    is the step before's last, which one refinement's 1.30 pays for against 0.69)."""
    from framegen.engine.inversion import invert

    latents = torch.randn(1, 4, 8, 8, generator=torch.Generator().manual_seed(0))
    errors = []
    for refine in (0, 1, 2, 5, 10):
        noise = invert(ddim_pipe, latents, PROMPT, 20, refine=refine).noise
        back = ddim_pipe(PROMPT, num_inference_steps=20, guidance_scale=1.0, latents=noise, output_type="latent")
        errors.append((back.images - latents).abs().max().item())
    assert errors == sorted(errors, reverse=True), errors
    assert errors[0] > 1.0 and errors[-1] < 1e-3, errors


def test_a_refinement_costs_one_unet_call_per_step_reusing_the_last_prediction(ddim_pipe):
    from framegen.engine.inversion import invert

    latents = torch.randn(1, 4, 8, 8, generator=torch.Generator().manual_seed(0))
    calls = []
    handle = ddim_pipe.unet.register_forward_pre_hook(lambda module, args: calls.append(1))
    try:
        for refine in (0, 1, 3):
            calls.clear()
            invert(ddim_pipe, latents, PROMPT, 6, refine=refine)
            assert len(calls) == (6 if refine == 0 else 1 + 6 * refine), (refine, len(calls))
    finally:
        handle.remove()


def test_an_image_is_centre_cropped_to_the_aspect_then_resized():
    from framegen.engine.inversion import fitted

    wide = Image.new("RGB", (200, 100), "red")
    wide.paste(Image.new("RGB", (100, 100), "blue"), (50, 0))  # the centre square is blue
    assert np.asarray(fitted(wide, 32, 32)).reshape(-1, 3).tolist() == [[0, 0, 255]] * 32 * 32
    tall = fitted(Image.new("RGB", (30, 90), "white"), 64, 32)
    assert tall.size == (64, 32)


def photo(folder, name="photo.png", mode="RGB"):
    """A 64x64 picture with a sky, a ground and a figure: a real image for tiny-random."""
    image = Image.new("RGB", (64, 64), (40, 60, 160))
    image.paste((40, 150, 50), (0, 40, 64, 64))
    image.paste((220, 40, 40), (26, 20, 38, 50))
    if mode == "RGBA":
        image = image.convert("RGBA")
        image.putalpha(_half_transparent())
    image.save(folder / name)
    return folder / name


def _half_transparent():
    alpha = Image.new("L", (64, 64), 255)
    alpha.paste(0, (0, 0, 32, 64))
    return alpha


def board(**changes) -> dict:
    spec = {
        "version": 1,
        "model": {"id": "tiny-random"},
        "render": {"width": 64, "height": 64, "steps": STEPS, "guidance": 5.0, "seed": 3},
        "anchor": {"prompt": PROMPT, "image": "photo.png"},
        "swap": [{"mode": "full", "layers": ["OUT3", "OUT4"], "steps": "1-3"}],
        "frames": [
            {"name": "green", "replace": {"red shirt": "green shirt"}},
            {"name": "kept", "replace": {"red shirt": "green shirt"},
             "swap": [{"mode": "full", "layers": ["LATENTS"], "steps": "all"}]},
        ],
        "report": {"background": {"segmenter": "none"}},
    }  # fmt: skip
    for key, value in changes.items():
        target, _, field = key.rpartition(".")
        node = spec
        for part in target.split(".") if target else []:
            node = node[part]
        node[field] = value
    return spec


def render(tmp_path, spec: dict, capsys, out="out", code=0):
    path = tmp_path / "board.yaml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    assert main(["render", "-q", str(path), "-o", str(tmp_path / out)]) == code, capsys.readouterr().err
    return tmp_path / out


def pixels(path) -> np.ndarray:
    return np.asarray(Image.open(path).convert("RGB"))


def test_a_real_anchor_renders_with_frames_measured_against_the_image(tmp_path, capsys, tiny_pipe):
    from framegen.engine.inversion import encode

    photo(tmp_path)
    out = render(tmp_path, board(), capsys)
    report = json.loads((out / "report.json").read_text())
    image = pixels(tmp_path / "photo.png").astype(np.float64)
    anchor = pixels(out / "anchor.png").astype(np.float64)
    assert report["anchor"]["psnr"] == round(10 * np.log10(255**2 / np.mean((image - anchor) ** 2)), 2)
    for frame in report["frames"]:  # segmenter none: the whole image is background
        expected = np.mean((image - pixels(out / frame["image"]).astype(np.float64)) ** 2)
        assert frame["background_mse"] == pytest.approx(expected, rel=1e-12)
    # LATENTS swapped at every step ends on the inversion's first latents: the image's own,
    # so the frame is the image through the VAE, bit for bit
    latents = encode(tiny_pipe, Image.open(tmp_path / "photo.png"))
    decoded = tiny_pipe.vae.decode(latents / tiny_pipe.vae.config.scaling_factor).sample
    through_vae = tiny_pipe.image_processor.postprocess(decoded.detach(), output_type="pil")[0]
    assert np.array_equal(pixels(out / "frames" / "0002.png"), np.asarray(through_vae))
    assert not np.array_equal(pixels(out / "frames" / "0001.png"), np.asarray(through_vae))


def test_a_real_anchor_reused_from_the_disk_cache_gives_identical_frames(tmp_path, capsys):
    """Pixel for pixel: the PNGs' text records each frame's seconds."""
    photo(tmp_path)
    spec = board(**{"render.cache": "disk"})
    out = render(tmp_path, spec, capsys)
    first = {p.name: pixels(p) for p in (out / "frames").iterdir()}
    for frame in (out / "frames").iterdir():
        frame.unlink()
    render(tmp_path, spec, capsys)
    report = json.loads((out / "report.json").read_text())
    assert report["anchor_cache"] == "reused"
    again = {p.name: pixels(p) for p in (out / "frames").iterdir()}
    assert again.keys() == first.keys() and all(np.array_equal(again[name], first[name]) for name in first)


@pytest.mark.parametrize(
    "change", ["image", "inversion.refine", "inversion.method"], ids=["image-bytes", "refine", "method"]
)
def test_the_anchor_key_covers_the_image_bytes_and_the_inversion(tmp_path, capsys, change):
    photo(tmp_path)
    spec = board(**{"render.cache": "disk"})
    render(tmp_path, spec, capsys)
    if change == "image":
        image = Image.open(tmp_path / "photo.png")
        image.putpixel((0, 0), (0, 0, 0))
        image.save(tmp_path / "photo.png")
    elif change == "inversion.refine":
        spec["anchor"]["inversion"] = {"refine": 1}
    else:
        spec["anchor"]["inversion"] = {"method": "ddim"}
    out = render(tmp_path, spec, capsys)
    assert json.loads((out / "report.json").read_text())["anchor_cache"] == "built"


def test_transparency_is_composited_on_white_with_a_warning(tmp_path, capsys):
    photo(tmp_path, mode="RGBA")
    path = tmp_path / "board.yaml"
    path.write_text(yaml.safe_dump(board()))
    assert main(["render", "-q", str(path), "-o", str(tmp_path / "out")]) == 0
    err = capsys.readouterr().err
    assert "framegen: warning: photo.png has transparency; it is composited on white" in err


@pytest.mark.parametrize(
    "changes, where, message",
    [
        ({"anchor.image": "missing.png"}, "anchor.image", "no such file"),
        ({"anchor.image": "board.yaml"}, "anchor.image", "is not an image PIL can read"),
        ({"model.scheduler": "euler"}, "model.scheduler", "'euler' has no inverse form in diffusers; use ddim"),
        ({"anchor.inversion": {"guidance": 2.0}}, "anchor.inversion.guidance", "guidance applies to method: ddim"),
    ],
)
def test_real_anchor_mistakes_are_one_line_before_loading(tmp_path, capsys, changes, where, message):
    photo(tmp_path)
    path = tmp_path / "board.yaml"
    path.write_text(yaml.safe_dump(board(**changes)))
    assert main(["render", "-q", str(path)]) == 2
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert f": {where}: " in line and message in line, line


def test_inversion_settings_without_an_image_are_refused(tmp_path, capsys):
    spec = board(**{"anchor.inversion": {"refine": 1}})
    del spec["anchor"]["image"]
    path = tmp_path / "board.yaml"
    path.write_text(yaml.safe_dump(spec))
    assert main(["render", "-q", str(path)]) == 2
    assert "anchor.inversion: `inversion` applies to a real image" in capsys.readouterr().err


def test_a_pipe_whose_scheduler_has_no_inverse_is_named(tmp_path, tiny_pipe):
    from diffusers import EulerDiscreteScheduler

    from framegen.errors import InvalidInput
    from framegen.run.prepare import prepare
    from framegen.storyboard import load_storyboard

    photo(tmp_path)
    original = tiny_pipe.scheduler
    tiny_pipe.scheduler = EulerDiscreteScheduler.from_config(original.config)
    try:
        with pytest.raises(InvalidInput, match="needs a scheduler with an inverse form \\(DDIMScheduler\\)"):
            prepare(load_storyboard(board(), folder=tmp_path), tiny_pipe)
    finally:
        tiny_pipe.scheduler = original


def test_the_reconstruction_takes_the_anchor_prompt_as_negative_and_frames_the_renders(tmp_path, tiny_pipe):
    """method negative-prompt: the anchor pass is the pipeline from the inverted noise with
    the anchor's prompt as its negative; a frame without swaps is the pipeline from the same
    noise with the render's negative prompt; bit for bit."""
    from framegen.run.prepare import prepare
    from framegen.storyboard import load_storyboard

    photo(tmp_path)
    spec = board(**{"render.negative_prompt": "blurry"})
    spec["frames"].append({"name": "plain", "replace": {"red shirt": "green shirt"}, "swap": []})
    prepared = prepare(load_storyboard(spec, folder=tmp_path), tiny_pipe)
    renderer = prepared.renderer()
    inverted = renderer.invert(prepared.anchor_image, PROMPT)
    assert prepared.anchor_negative_prompt == PROMPT
    anchor = renderer.anchor(PROMPT, None, inverted.trajectory, prepared.anchor_negative_prompt)
    plan = prepared.board.frames[-1]
    frame = renderer.frame(*prepared.shot(plan)).image

    def direct(prompt, negative):
        options = dict(num_inference_steps=STEPS, guidance_scale=5.0, width=64, height=64)
        return tiny_pipe(prompt, negative_prompt=negative, latents=inverted.noise.clone(), **options).images[0]

    assert np.array_equal(np.asarray(anchor), np.asarray(direct(PROMPT, PROMPT)))
    assert np.array_equal(np.asarray(frame), np.asarray(direct(plan.prompt, "blurry")))
