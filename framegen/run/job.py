"""The whole render job, in order: storyboard -> anchor -> frames -> MP4 -> report.

    from framegen import load_storyboard, render_storyboard
    result = render_storyboard(load_storyboard("storyboards/demo.yaml"))
    result.passed, result.frames[0]["background_mse"]

The output folder is held for the whole render (output.py): files in the way that
framegen did not write stop it before it starts, and nothing but framegen's own files is
ever replaced or removed. Frames already there with the same key (a PNG text chunk) are reused,
so a killed render picks up where it stopped. With `render.cache: disk` the anchor cache
is kept in the output folder and reused by later renders.

Under `accelerate launch` with K processes the anchor cache goes to disk: process 0
builds it while the others wait, each process renders every K-th remaining frame, and
process 0 writes the MP4 and the report.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass
from itertools import chain
from pathlib import Path

from PIL import Image

from ..engine.cache import DiskCache, cache_key
from ..engine.layers import LayerMap
from ..engine.masks import mask_png
from ..errors import RenderFailure
from ..models.load import (
    add_loras,
    configs_before_loading,
    invertible_scheduler,
    load_pipeline,
    native_size,
    set_lora_scales,
)
from ..output.files import read_png_text, write_mp4, write_png, write_text
from ..output.folder import OutputFolder
from ..output.page import write_review
from ..output.report import build_report, report_csv, segmenter_for
from ..output.review import heatmap_name
from ..storyboard import Storyboard
from .prepare import Prepared, prepare

MASK_TEXT = {"framegen-mask": "white = kept from the anchor"}  # marks framegen's masks (output.py)


class Quiet:
    """Progress that shows nothing; the CLI passes a rich progress bar instead."""

    def image(self, name: str, total_steps: int, count: int = 1) -> None: ...

    def step(self, step: int) -> None: ...


@dataclass
class RenderResult:
    """What a render wrote: `report` is report.json's content."""

    output: Path
    report: dict

    @property
    def frames(self) -> list[dict]:
        return self.report["frames"]

    @property
    def checks(self) -> list[dict]:
        return self.report["checks"]

    @property
    def passed(self) -> bool:
        """Every `checks` limit held."""
        return all(check["passed"] for check in self.checks)

    @property
    def anchor_cache(self) -> str:
        """`built`, `reused` (from the disk cache) or `not needed` (every frame was in place)."""
        return self.report["anchor_cache"]

    def to_json(self) -> str:
        return json.dumps(self.report, indent=2) + "\n"


def check_before_loading(board: Storyboard, online: bool = True) -> bool:
    """Check what the U-Net config tells when it can be read without weights: layer
    names, and drawn boxes against the image size. Returns whether it could (else the
    loaded model checks them)."""
    configs = configs_before_loading(board.spec.model, online)
    if configs is not None:
        board.check_layers(LayerMap(configs[0]))
        native = native_size(*configs)
        board.check_boxes(board.spec.render.width or native, board.spec.render.height or native)
        if configs[0].get("addition_embed_type") == "text_time":  # SDXL: size and pooled text in the time embedding
            board.check_no_noise_masks("noise masks support SD1.x/2.x pipelines; use auto: attention")
            board.check_sd_pipeline_for_real_anchor()
    return configs is not None


def process_state():
    """accelerate's PartialState when started by `accelerate launch` with several
    processes (on CPU-only machines too), else None."""
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return None
    import torch
    from accelerate import PartialState

    state = PartialState(cpu=not torch.cuda.is_available())
    return state if state.num_processes > 1 else None


def render_storyboard(board: Storyboard, output: Path | None = None, pipe=None, progress=None) -> RenderResult | None:
    """Render every frame and write the output folder; raises FramegenError on failure.
    `output` (default: the storyboard's) may lie anywhere: giving it is consent.
    Returns None in the processes of a distributed render other than the main one."""
    out = Path(output) if output is not None else board.output_dir
    state = process_state()
    if state is not None and not state.is_main_process:  # the main process holds the folder
        return _render(board, out, pipe, progress or Quiet(), state, None)
    with OutputFolder(out).open() as folder:
        folder.check_replaceable([*SUMMARY_FILES, *output_names(board)])
        return _render(board, out, pipe, progress or Quiet(), state, folder)


SUMMARY_FILES = ("anchor.png", "clip.mp4", "report.json", "report.csv", "report.html", "sheet.png")


def output_names(board: Storyboard) -> list[str]:
    """The frames, masks and heat-maps a render of `board` writes, relative to its output folder."""
    return [name for plan in board.video_order() for name in (plan.image, *plan.mask_images, heatmap_name(plan.image))]


def _render(board: Storyboard, out: Path, pipe, progress, state, folder: OutputFolder | None) -> RenderResult | None:
    main_process = folder is not None
    checked = check_before_loading(board)
    if pipe is None:
        pipe = load_pipeline(board.spec.model, device=state.device if state is not None else None)
    else:  # a caller's pipe: the storyboard's LoRAs on it too
        add_loras(pipe, board.spec.model)
    if not checked:
        board.check_layers(LayerMap.of(pipe.unet))
    if board.spec.anchor.image is not None and board.spec.model.scheduler is None:
        invertible_scheduler(pipe)
    segmenter = segmenter_for(board.spec.report.background, board.spec.model.id, board.folder) if main_process else None
    prepared = prepare(board, pipe)
    cache = None
    if board.spec.render.cache == "disk" or state is not None:
        cache = DiskCache(prepared.needed, out / "anchor-cache")
    renderer = prepared.renderer(cache)
    fields = prepared.anchor_fields(renderer.cache.needed)
    anchor_key = cache_key(fields)
    keys = {plan.index: prepared.frame_key(plan, anchor_key) for plan in board.frames}
    keys |= {tween.index: prepared.tween_key(tween, anchor_key) for tween in board.tweens}
    shown_plans = board.video_order()
    done = {p.index for p in shown_plans if read_png_text(out / p.image).get("framegen-key") == keys[p.index]}
    pending = [p for p in board.frames if p.index not in done]
    pending_tweens = [t for t in board.tweens if t.index not in done]

    # 1. the anchor: built, or reused from the disk cache or the output folder
    if main_process:
        anchor, anchor_cache, anchor_seconds = obtain_anchor(
            prepared, renderer, out, anchor_key, fields, bool(pending or pending_tweens), progress
        )
    if state is not None:
        state.wait_for_everyone()  # the cache on disk is complete
        if not main_process and (pending or pending_tweens):
            status, tensors = renderer.cache.reopen(anchor_key)
            if status != "reused":
                raise RenderFailure(f"process {state.process_index}: the anchor cache on disk is unusable ({status})")
            prepared.anchor_state.load_tensors(tensors, pipe.device, pipe.unet.dtype)
        pending = pending[state.process_index :: state.num_processes]
        pending_tweens = pending_tweens[state.process_index :: state.num_processes]

    # 2. the frames, each written as soon as it is done
    for group in prepared.batches(pending, board.spec.render.batch):
        name = group[0].name if len(group) == 1 else f"{group[0].name} +{len(group) - 1}"
        progress.image(name, prepared.settings.steps, len(group))
        set_lora_scales(pipe, group[0].lora)  # a batch shares its scales (Prepared.batches)
        controls = [prepared.control(plan.control) for plan in group] if group[0].control else None
        shots = [prepared.shot(plan) for plan in group]
        for plan, result in zip(group, renderer.frames(shots, progress.step, controls)):
            for path, (_, mask) in zip(plan.mask_images, result.masks):
                write_png(mask_png(mask, result.image.size), out / path, MASK_TEXT)
            # the frame last: its key vouches for its masks too
            text = {"framegen-key": keys[plan.index], "framegen-seconds": f"{result.seconds:.3f}"}
            if state is not None:
                text["framegen-process"] = str(state.process_index)
            write_png(result.image, out / plan.image, text)
    for tween in pending_tweens:  # in-betweens: encoded conditioning, one at a time
        progress.image(tween.name, prepared.settings.steps)
        set_lora_scales(pipe, tween.frame.lora)
        control = prepared.tween_control(tween)
        (result,) = renderer.frames([prepared.tween_shot(tween)], progress.step, [control] if control else None)
        text = {"framegen-key": keys[tween.index], "framegen-seconds": f"{result.seconds:.3f}"}
        write_png(result.image, out / tween.image, text)
    if state is not None:
        state.wait_for_everyone()  # every frame is on disk
    if not main_process:
        return None

    # 3. the clip and the report, one frame in memory at a time
    for plan in shown_plans if state is not None else []:  # frames other processes wrote
        if read_png_text(out / plan.image).get("framegen-key") != keys[plan.index]:
            raise RenderFailure(f"frame '{plan.name}' is missing from {out / 'frames'}")
    folder.remove_stale(set(output_names(board)))
    shown = chain([(anchor, 1)], ((read_image(out / plan.image), plan.hold) for plan in shown_plans))
    frame_count = write_mp4(shown, out / "clip.mp4", board.spec.video.fps, board.spec.video.crf)
    report = build_report(prepared, renderer.cache, out, anchor, done, segmenter, frame_count)
    report.update(anchor_cache=anchor_cache)
    report["anchor"]["seconds"] = round(anchor_seconds, 3)
    result = RenderResult(out, report)
    write_text(report_csv(report), out / "report.csv")
    write_text(result.to_json(), out / "report.json")
    write_review(report, out)
    return result


def read_image(path: Path) -> Image.Image:
    with Image.open(path) as image:
        return image.convert("RGB")


def obtain_anchor(
    prepared: Prepared, renderer, out: Path, anchor_key: str, fields: dict, need_cache: bool, progress
) -> tuple[Image.Image, str, float]:
    """(anchor image, how, seconds): `not needed` (no frame left to render: the output
    folder's anchor, the cache untouched), `reused` (a sound disk cache) or `built` (the
    anchor pass, sealing the disk cache if there is one). The output's anchor.png ends
    up this anchor's."""
    anchor_path = out / "anchor.png"
    in_output = read_png_text(anchor_path).get("framegen-key") == anchor_key
    if not need_cache and in_output:
        return read_image(anchor_path), "not needed", 0.0
    cache = renderer.cache
    if isinstance(cache, DiskCache):
        status, tensors = cache.reopen(anchor_key)
        if status == "reused":
            prepared.anchor_state.load_tensors(tensors, prepared.pipe.device, prepared.pipe.unet.dtype)
            anchor = read_image(cache.folder / "anchor.png")
            if not in_output:
                write_png(anchor, anchor_path, {"framegen-key": anchor_key})
            return anchor, "reused", 0.0
    set_lora_scales(prepared.pipe, prepared.board.lora)
    start = time.perf_counter()
    anchor = prepared.render_anchor(renderer, progress.step, lambda name: progress.image(name, prepared.settings.steps))
    seconds = time.perf_counter() - start
    if isinstance(cache, DiskCache):
        cache.seal(anchor_key, prepared.anchor_state.to_tensors(), fields, anchor)
    write_png(anchor, anchor_path, {"framegen-key": anchor_key})
    return anchor, "built", seconds
