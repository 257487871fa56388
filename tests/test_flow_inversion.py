"""A real image as the anchor on flow transformers (tiny-random-flux, tiny-random-sd3):
inverse Euler along the render's own schedule, its fixed-point refinements, latent nudging,
the image's own latents for local blending, and the reconstruction as the pipeline's own pass."""

import json

import numpy as np
import pytest
import torch
import yaml
from PIL import Image

from framegen.cli import main
from framegen.models.builtins import tiny_build

from .test_real_anchor import PROMPT, STEPS, pixels
from .test_real_anchor import board as real_anchor_board
from .test_real_anchor import photo as real_anchor_photo

FAMILIES = ("tiny-random-flux", "tiny-random-sd3")


@pytest.fixture(scope="module", params=FAMILIES)
def flow_pipe(request):
    pipe = tiny_build(request.param)
    pipe.set_progress_bar_config(disable=True)
    return pipe


def photo(folder):
    """test_real_anchor's 64x64 picture (a sky, a ground, a figure) as folder/photo.png, opened."""
    with Image.open(real_anchor_photo(folder)) as image:
        return image.convert("RGB")


def test_the_inversion_walks_the_pipelines_own_schedule(flow_pipe):
    """Same timesteps as the pipeline's loop, bit for bit (FLUX: its sigmas and its shift for the size)."""
    from framegen.engine.flow_inversion import flow_latents, schedule

    latents, grid = flow_latents(flow_pipe, Image.new("RGB", (64, 64), "gray"))
    tokens = latents.shape[1] if grid else latents.shape[2] * latents.shape[3] // 4
    seen = []

    def record(pipe, i, t, kwargs):
        seen.append(t.item())
        return kwargs

    flow_pipe(PROMPT, width=64, height=64, num_inference_steps=STEPS, callback_on_step_end=record, output_type="latent")
    assert schedule(flow_pipe, STEPS, tokens).timesteps.tolist() == seen


def test_inverse_euler_round_trips_and_refinements_close_the_gap(flow_pipe):
    """Guidance 1 (FLUX: no embedded guidance in tiny-random-flux), 12 steps: the pipeline
    from the inverted noise misses the latents; each fixed-point refinement brings every
    forward step's end back towards the inversion's, so the error falls with each."""
    from framegen.engine.flow_inversion import invert_flow

    flux = flow_pipe.transformer.config.get("num_single_layers") is not None
    shape, grid = ((1, 16, 16), (4, 4)) if flux else ((1, 4, 8, 8), None)
    latents = torch.randn(*shape, generator=torch.Generator().manual_seed(0))
    errors = []
    for refine in (0, 1, 2, 5):
        noise = invert_flow(flow_pipe, latents, PROMPT, 12, refine=refine, grid=grid).noise
        options = dict(num_inference_steps=12, latents=noise, output_type="latent", width=64, height=64)
        if not flux:
            options["guidance_scale"] = 1.0
        back = flow_pipe(PROMPT, max_sequence_length=64, **options).images  # FLUX's still packed
        errors.append((back - latents).abs().max().item())
    assert errors == sorted(errors, reverse=True), errors
    assert errors[-1] < 0.01 * errors[0], errors


def test_a_refinement_costs_one_call_per_step_reusing_the_last_velocity(flow_pipe):
    from framegen.engine.flow_inversion import flow_latents, invert_flow

    latents, grid = flow_latents(flow_pipe, Image.new("RGB", (64, 64), "red"))
    calls = []
    handle = flow_pipe.transformer.register_forward_pre_hook(lambda module, args: calls.append(1))
    try:
        for refine in (0, 1, 3):
            calls.clear()
            invert_flow(flow_pipe, latents, PROMPT, STEPS, refine=refine, grid=grid)
            assert len(calls) == (STEPS if refine == 0 else 1 + STEPS * refine), (refine, len(calls))
    finally:
        handle.remove()


def test_nudging_scales_the_latents_the_trajectory_ends_on(flow_pipe):
    from framegen.engine.flow_inversion import flow_latents, invert_flow

    latents, grid = flow_latents(flow_pipe, Image.new("RGB", (64, 64), "red"))
    plain = invert_flow(flow_pipe, latents, PROMPT, STEPS, grid=grid)
    nudged = invert_flow(flow_pipe, latents, PROMPT, STEPS, nudge=1.15, grid=grid)
    assert torch.equal(plain.trajectory[-1], latents) and torch.equal(nudged.trajectory[-1], latents * 1.15)
    assert len(nudged.trajectory) == STEPS and not torch.equal(plain.noise, nudged.noise)


def board(model: str, **anchor) -> dict:
    """test_real_anchor's storyboard on `model`, its whole-tensor rule on D0, guidance 3."""
    changes = {f"anchor.{key}": value for key, value in anchor.items()}
    spec = real_anchor_board(**{"model.id": model, "render.guidance": 3.0, **changes})
    spec["swap"] = [{"mode": "full", "layers": ["D0"], "steps": "1-3"}]
    return spec


@pytest.mark.parametrize("model", FAMILIES)
def test_a_real_anchor_renders_and_latents_at_every_step_give_the_image_through_the_vae(tmp_path, capsys, model):
    from framegen.engine.inversion import encode

    image = photo(tmp_path)
    path = tmp_path / "board.yaml"
    path.write_text(yaml.safe_dump(board(model, inversion={"nudge": 1.0})))
    assert main(["render", "-q", str(path), "-o", str(tmp_path / "out")]) == 0, capsys.readouterr().err
    out = tmp_path / "out"
    report = json.loads((out / "report.json").read_text())
    anchor = pixels(out / "anchor.png").astype(np.float64)
    mse = np.mean((np.asarray(image, dtype=np.float64) - anchor) ** 2)
    assert report["anchor"]["psnr"] == round(10 * np.log10(255**2 / mse), 2)
    pipe = tiny_build(model)
    vae = pipe.vae
    latents = encode(pipe, image) / vae.config.scaling_factor + (vae.config.shift_factor or 0.0)
    through_vae = pipe.image_processor.postprocess(vae.decode(latents).sample.detach(), output_type="pil")[0]
    assert np.array_equal(pixels(out / "frames" / "0002.png"), np.asarray(through_vae))
    assert not np.array_equal(pixels(out / "frames" / "0001.png"), np.asarray(through_vae))


def test_the_reconstruction_is_the_pipelines_own_pass_from_the_inverted_noise(tmp_path, flow_pipe):
    """SD3 (real guidance): the anchor prompt as the negative, so the guided velocity is the
    conditional one the inversion followed; FLUX: the render's embedded guidance. Bit for bit."""
    from framegen.engine.encoding import text_length
    from framegen.run.prepare import prepare
    from framegen.storyboard import load_storyboard

    photo(tmp_path)
    model = "tiny-random-flux" if flow_pipe.transformer.config.get("num_single_layers") else "tiny-random-sd3"
    prepared = prepare(load_storyboard(board(model), folder=tmp_path), flow_pipe)
    renderer = prepared.renderer()
    inverted = renderer.invert(prepared.anchor_image, PROMPT)
    anchor = renderer.anchor(PROMPT, None, inverted.trajectory, prepared.anchor_negative_prompt)
    options = dict(num_inference_steps=STEPS, guidance_scale=3.0, width=64, height=64, **text_length(flow_pipe))
    if model == "tiny-random-sd3":
        options["negative_prompt"] = PROMPT
    direct = flow_pipe(PROMPT, latents=inverted.noise.clone(), **options).images[0]
    assert np.array_equal(np.asarray(anchor), np.asarray(direct))


@pytest.mark.parametrize(
    "model, inversion, where, message",
    [
        ("tiny-random", {"nudge": 1.15}, "anchor.inversion.nudge", "nudge applies to flow models"),
        ("tiny-random-flux", {"method": "ddim", "guidance": 2.0}, "anchor.inversion.guidance", "embedded guidance"),
    ],
)
def test_inversion_settings_a_family_cannot_use_are_one_line(tmp_path, capsys, model, inversion, where, message):
    photo(tmp_path)
    path = tmp_path / "board.yaml"
    spec = board(model, inversion=inversion)
    spec["swap"] = []
    path.write_text(yaml.safe_dump(spec))
    assert main(["render", "-q", str(path)]) == 2
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert f": {where}: " in line and message in line, line
