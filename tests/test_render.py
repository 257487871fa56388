"""Renderer on tiny-random: mask sources agree, rules resolve, cache modes agree."""

import numpy as np
import torch
from PIL import Image

from framegen.engine.masks import drawn_mask
from framegen.run.rules import compact_steps
from framegen.storyboard import MaskSpec, load_storyboard

from .conftest import open_board, render_frame


def mask_tensor(spec, width, height, folder):
    return drawn_mask(spec.plan(folder), width, height)


BOARD = """
version: 1
model: {{id: tiny-random}}
render: {{width: 64, height: 64, steps: 6, seed: 3, cache: {cache}}}
anchor: {{prompt: "girl, white hair, blue skirt"}}
swap: [{{mode: mask, layers: [OUT3, OUT6, OUT10, MID], steps: all, mask: {mask}}}]
frames:
  - {{name: edit, replace: {{"blue skirt": "red pants"}}}}
"""


def test_mask_sources_build_the_same_region(tmp_path):
    picture = np.zeros((64, 64), np.uint8)
    picture[:32, :32] = 255
    picture[32:, 32:] = 255
    Image.fromarray(picture).save(tmp_path / "mask.png")
    grid = mask_tensor(MaskSpec(grid=["10", "01"]), 64, 64, tmp_path)
    image = mask_tensor(MaskSpec(image="mask.png"), 64, 64, tmp_path)
    boxes = mask_tensor(MaskSpec(boxes=[(0, 0, 32, 32), (32, 32, 64, 64)]), 64, 64, tmp_path)
    assert grid.tolist() == [[True, False], [False, True]]
    assert torch.equal(image, boxes) and image.shape == (64, 64) and image.sum() == 2 * 32 * 32


def render_board(tmp_path, tiny_pipe, mask, cache="device"):
    path = tmp_path / "board.yaml"
    path.write_text(BOARD.format(mask=mask, cache=cache))
    board = load_storyboard(path)
    prepared, renderer = open_board(board, tiny_pipe)
    anchor = renderer.anchor(board.spec.anchor.prompt)
    return np.asarray(anchor), np.asarray(render_frame(prepared, renderer, board.frames[0]).image), prepared


def test_grid_image_and_boxes_masks_give_the_same_frame(tmp_path, tiny_pipe):
    picture = np.zeros((64, 64), np.uint8)
    picture[:32, :32] = 255
    picture[32:, 32:] = 255
    Image.fromarray(picture).save(tmp_path / "mask.png")
    _, by_grid, _ = render_board(tmp_path, tiny_pipe, '{grid: ["10", "01"]}')
    _, by_image, _ = render_board(tmp_path, tiny_pipe, "{image: mask.png}")
    _, by_boxes, prepared = render_board(tmp_path, tiny_pipe, "{boxes: [[0, 0, 32, 32], [32, 32, 64, 64]]}")
    assert np.array_equal(by_grid, by_image) and np.array_equal(by_grid, by_boxes)
    _, nothing_kept, _ = render_board(tmp_path, tiny_pipe, '{grid: ["00", "00"]}')
    _, everything_kept, _ = render_board(tmp_path, tiny_pipe, '{grid: ["11", "11"]}')
    assert not np.array_equal(by_grid, nothing_kept) and not np.array_equal(by_grid, everything_kept)
    (rules,) = prepared.rules.values()
    assert rules[0].layers == {
        "up_blocks.1.attentions.0",
        "up_blocks.2.attentions.0",
        "up_blocks.3.attentions.1",
        "mid_block",
    }


def test_host_cache_renders_the_same_frame(tmp_path, tiny_pipe):
    _, on_device, _ = render_board(tmp_path, tiny_pipe, '{grid: ["10", "01"]}')
    _, on_host, prepared = render_board(tmp_path, tiny_pipe, '{grid: ["10", "01"]}', cache="cpu")
    assert np.array_equal(on_device, on_host) and prepared.renderer().cache.offload


def test_compact_steps():
    assert compact_steps((1, 2, 3, 7, 9, 10)) == "1-3,7,9-10"
    assert compact_steps(range(1, 51)) == "1-50"


def test_local_diffusers_folder_loads_through_the_real_path(tmp_path, tiny_pipe):
    """`model.id` as a folder goes through diffusers' from_pretrained (safetensors only)
    and renders what the in-memory pipeline renders."""
    from framegen.models.load import load_pipeline
    from framegen.storyboard import ModelSpec

    tiny_pipe.save_pretrained(tmp_path / "model", safe_serialization=True)
    assert not list((tmp_path / "model").rglob("*.bin"))
    loaded = load_pipeline(ModelSpec(id=str(tmp_path / "model"), scheduler="euler"))
    assert type(loaded.scheduler).__name__ == "EulerDiscreteScheduler"
    assert list(loaded.unet.config.block_out_channels) == list(tiny_pipe.unet.config.block_out_channels)
    for name, tensor in tiny_pipe.unet.state_dict().items():
        assert torch.equal(loaded.unet.state_dict()[name], tensor), name


def test_latents_layer_from_a_storyboard_on_every_cache(tmp_path, tiny_pipe):
    """LATENTS (prompt-to-prompt's local blending) goes through the same rules, cache
    and byte prediction as the modules' outputs."""
    from framegen.engine.cache import DiskCache
    from framegen.engine.placement import cache_bytes

    text = BOARD.format(mask='{grid: ["10", "01"]}', cache="{cache}").replace(
        "[OUT3, OUT6, OUT10, MID]", "[LATENTS, OUT10]"
    )
    frames = {}
    for cache in ("device", "disk"):
        path = tmp_path / f"{cache}.yaml"
        path.write_text(text.replace("{cache}", cache))
        board = load_storyboard(path)
        prepared, renderer = open_board(board, tiny_pipe)
        if cache == "disk":
            prepared, renderer = open_board(board, tiny_pipe, DiskCache(prepared.needed, tmp_path / "anchor-cache"))
        renderer.anchor(board.spec.anchor.prompt)
        frames[cache] = np.asarray(render_frame(prepared, renderer, board.frames[0]).image)
        settings = prepared.settings
        assert (
            cache_bytes(
                tiny_pipe, renderer.cache.needed, settings.width, settings.height, settings.steps, settings.guidance
            )
            == renderer.cache.nbytes
        )
    assert {layer for layer, _ in renderer.cache.needed} == {"latents", "up_blocks.3.attentions.1"}
    assert np.array_equal(frames["device"], frames["disk"])


def test_the_api_example_runs_offline(tmp_path):
    """examples/api.py: the engine on a pipe the user brings (LATENTS through the clock's
    diffusers PipelineCallback), a rule as a pure function, and a storyboard from a mapping."""
    import subprocess
    import sys
    from pathlib import Path

    example = Path(__file__).resolve().parents[1] / "examples" / "api.py"
    run = subprocess.run(
        [sys.executable, "-W", "error::FutureWarning", str(example)], cwd=tmp_path, capture_output=True, text=True
    )
    assert run.returncode == 0, run.stderr[-2000:]
    assert "threshold 0.5 kept the anchor in 50% of the elements" in run.stdout
    assert "storyboard: passed=True" in run.stdout
    assert (tmp_path / "anchor.png").is_file() and (tmp_path / "out" / "api" / "report.json").is_file()


def test_the_flux_api_example_runs_offline(tmp_path):
    """examples/flux_api.py: kv rules whole and masked on a FLUX pipe the user brings; the
    cache holds one key and one value per named block and step (8 steps x 4 blocks x 2)."""
    import subprocess
    import sys
    from pathlib import Path

    example = Path(__file__).resolve().parents[1] / "examples" / "flux_api.py"
    run = subprocess.run(
        [sys.executable, "-W", "error::FutureWarning", str(example)], cwd=tmp_path, capture_output=True, text=True
    )
    assert run.returncode == 0, run.stderr[-2000:]
    assert "anchor cache: 64 tensors, 524,288 bytes" in run.stdout  # each (1, 32 channels, 8x8 tokens) float32
    assert (tmp_path / "anchor.png").is_file() and (tmp_path / "frame.png").is_file()


def test_the_clock_callback_is_a_diffusers_pipeline_callback(tiny_pipe):
    from diffusers.callbacks import PipelineCallback

    from framegen.engine.hooks import StepClock

    clock = StepClock(tiny_pipe.scheduler, 4)
    assert isinstance(clock.callback, PipelineCallback) and clock.callback.tensor_inputs == ["latents"]


def test_the_clock_places_a_view_into_the_schedule_by_its_offset_as_a_copy_by_its_value(tiny_pipe):
    """`for t in timesteps` hands the U-Net views into the schedule: their position is
    their offset, read without waiting for a GPU; a copy is matched by value. Both place
    every call, PNDM's repeated timestep included."""
    from diffusers import PNDMScheduler

    from framegen.engine.hooks import StepClock, _element_of

    scheduler = PNDMScheduler.from_config(tiny_pipe.scheduler.config)
    scheduler.set_timesteps(6)
    timesteps = scheduler.timesteps
    assert len(set(timesteps.tolist())) < len(timesteps)  # a repeated timestep
    by_view, by_value = StepClock(scheduler, 6), StepClock(scheduler, 6)
    for i, t in enumerate(timesteps):
        assert _element_of(t, timesteps) == i and _element_of(t.clone(), timesteps) is None
        by_view(None, (None, t), {})
        by_value(None, (None, t.clone()), {})
        assert by_view.position == by_value.position == i and by_view.step == by_value.step


def test_float16_on_a_cpu_warns_in_one_line_and_names_the_better_choice(capsys):
    from framegen.models.load import load_pipeline
    from framegen.storyboard import ModelSpec

    def framegen_lines():  # the libraries' own notices aside (the CLI quiets them)
        return [line for line in capsys.readouterr().err.splitlines() if line.startswith("framegen")]

    load_pipeline(ModelSpec(id="tiny-random", dtype="float16", device="cpu"))
    (line,) = framegen_lines()
    assert line.startswith("framegen: warning: dtype float16 on a CPU") and "`dtype: bfloat16`" in line
    load_pipeline(ModelSpec(id="tiny-random", dtype="bfloat16", device="cpu"))
    assert framegen_lines() == []


def test_a_folder_of_fp16_variant_weights_loads_with_or_without_model_variant(tmp_path, tiny_pipe):
    from framegen.models.load import load_pipeline
    from framegen.storyboard import ModelSpec

    tiny_pipe.save_pretrained(tmp_path / "model", safe_serialization=True, variant="fp16")
    assert (tmp_path / "model" / "unet" / "diffusion_pytorch_model.fp16.safetensors").is_file()
    assert not (tmp_path / "model" / "unet" / "diffusion_pytorch_model.safetensors").exists()
    for spec in (ModelSpec(id=str(tmp_path / "model")), ModelSpec(id=str(tmp_path / "model"), variant="fp16")):
        loaded = load_pipeline(spec)
        for name, tensor in tiny_pipe.unet.state_dict().items():
            assert torch.equal(loaded.unet.state_dict()[name], tensor), name


def test_the_gpu_benchmark_runs_its_cpu_fallback(tmp_path):
    """benchmarks/gpu.py measures on CUDA; without it the same code runs at a tiny size, so it cannot rot."""
    import subprocess
    import sys
    from pathlib import Path

    script = Path(__file__).resolve().parents[1] / "benchmarks" / "gpu.py"
    run = subprocess.run(
        [sys.executable, str(script), "--cpu", "--steps", "4"], capture_output=True, text=True, cwd=tmp_path
    )
    assert run.returncode == 0, run.stderr[-2000:]
    assert "CPU fallback" in run.stdout and "| frame: attention |" in run.stdout and "| 8 |" in run.stdout
    assert "| cpu |" in run.stdout
