"""The whole render job, in order: storyboard -> anchor -> frames -> MP4 -> report.

    from framegen import load_storyboard, render_storyboard
    result = render_storyboard(load_storyboard("storyboards/demo.yaml"))
    result.passed, result.frames[0]["background_mse"]

Frames already in the output folder with the same key (a PNG text chunk) are reused,
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
from pathlib import Path

from PIL import Image

from .engine.cache import DiskCache, cache_key
from .engine.layers import LayerMap
from .engine.masks import mask_png
from .errors import RenderFailure
from .files import read_png_text, write_mp4, write_png, write_text
from .models import configs_before_loading, load_pipeline
from .prepare import Prepared, prepare
from .report import build_report, report_csv, segmenter_for
from .storyboard import Storyboard


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
        """`built` or `reused` (from the disk cache or the output folder)."""
        return self.report["anchor_cache"]

    def to_json(self) -> str:
        return json.dumps(self.report, indent=2) + "\n"


def check_layers_before_loading(board: Storyboard, online: bool = True) -> bool:
    """Check layer names against the U-Net config when it can be read without weights;
    returns whether they were checked (else the loaded model checks them)."""
    configs = configs_before_loading(board.spec.model, online)
    if configs is not None:
        board.check_layers(LayerMap(configs[0]))
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
    Returns None in the processes of a distributed render other than the main one."""
    progress = progress or Quiet()
    out = Path(output) if output is not None else board.output_dir
    state = process_state()
    main_process = state is None or state.is_main_process
    checked = check_layers_before_loading(board)
    if pipe is None:
        pipe = load_pipeline(board.spec.model, device=state.device if state is not None else None)
    if not checked:
        board.check_layers(LayerMap.of(pipe.unet))
    segmenter = segmenter_for(board.spec.report.background, board.spec.model.id, board.folder) if main_process else None
    prepared = prepare(board, pipe)
    cache = None
    if board.spec.render.cache == "disk" or state is not None:
        cache = DiskCache(prepared.needed, out / "anchor-cache")
    renderer = prepared.renderer(cache)
    fields = prepared.anchor_fields(renderer.cache.needed)
    anchor_key = cache_key(fields)
    keys = {plan.index: prepared.frame_key(plan, anchor_key) for plan in board.frames}
    done = {
        p.index
        for p in board.frames
        if read_png_text(out / f"frames/{p.index:04d}.png").get("framegen-key") == keys[p.index]
    }
    pending = [p for p in board.frames if p.index not in done]

    # 1. the anchor: built, or reused from the disk cache or the output folder
    if main_process:
        anchor, anchor_cache, anchor_seconds = obtain_anchor(
            prepared, renderer, out, anchor_key, fields, bool(pending), progress
        )
    if state is not None:
        state.wait_for_everyone()  # the cache on disk is complete
        if not main_process and pending:
            status, tensors = renderer.cache.reopen(anchor_key)
            if status != "reused":
                raise RenderFailure(f"process {state.process_index}: the anchor cache on disk is unusable ({status})")
            prepared.anchor_state.load_tensors(tensors, pipe.device, pipe.unet.dtype)
        pending = pending[state.process_index :: state.num_processes]

    # 2. the frames, each written as soon as it is done
    for group in prepared.batches(pending, board.spec.render.batch):
        progress.image(
            group[0].name if len(group) == 1 else f"{group[0].name} +{len(group) - 1}",
            prepared.settings.steps,
            len(group),
        )
        for plan, result in zip(group, renderer.frames([prepared.shot(plan) for plan in group], progress.step)):
            for path, (_, mask) in zip(prepared.mask_paths(plan), result.masks):
                write_png(mask_png(mask, result.image.size), out / path)
            # the frame last: its key vouches for its masks too
            text = {"framegen-key": keys[plan.index], "framegen-seconds": f"{result.seconds:.3f}"}
            if state is not None:
                text["framegen-process"] = str(state.process_index)
            write_png(result.image, out / f"frames/{plan.index:04d}.png", text)
    if state is not None:
        state.wait_for_everyone()  # every frame is on disk
    if not main_process:
        return None

    # 3. the clip and the report
    images = read_frames(board, out, keys)
    remove_stale(board, prepared, out)
    holds = [1, *(plan.hold for plan in board.frames)]
    frame_count = write_mp4([anchor, *images], holds, out / "clip.mp4", board.spec.video.fps, board.spec.video.crf)
    report = build_report(prepared, renderer.cache, out, anchor, images, keys, done, segmenter, frame_count)
    report.update(anchor_cache=anchor_cache)
    report["anchor"]["seconds"] = round(anchor_seconds, 3)
    result = RenderResult(out, report)
    write_text(report_csv(report), out / "report.csv")
    write_text(result.to_json(), out / "report.json")
    return result


def read_frames(board: Storyboard, out: Path, keys: dict) -> list[Image.Image]:
    """Every frame as written into `out`, checked against its key."""
    images = []
    for plan in board.frames:
        path = out / f"frames/{plan.index:04d}.png"
        if read_png_text(path).get("framegen-key") != keys[plan.index]:
            raise RenderFailure(f"frame '{plan.name}' is missing from {out / 'frames'}")
        images.append(Image.open(path).convert("RGB"))
    return images


def remove_stale(board: Storyboard, prepared: Prepared, out: Path) -> None:
    """Drop frames and masks of an earlier, longer storyboard."""
    written = {f"frames/{plan.index:04d}.png" for plan in board.frames}
    written |= {path for plan in board.frames for path in prepared.mask_paths(plan)}
    for stale in [*(out / "frames").glob("*.png"), *(out / "masks").glob("*.png")]:
        if f"{stale.parent.name}/{stale.name}" not in written:
            stale.unlink()


def obtain_anchor(
    prepared: Prepared, renderer, out: Path, anchor_key: str, fields: dict, need_cache: bool, progress
) -> tuple[Image.Image, str, float]:
    """(anchor image, 'built' | 'reused', seconds): from a sound disk cache, or from the
    output folder when no frame is left to render, else by the anchor pass (sealing the
    disk cache, if there is one). The output's anchor.png ends up this anchor's."""
    anchor_path = out / "anchor.png"
    in_output = read_png_text(anchor_path).get("framegen-key") == anchor_key
    cache = renderer.cache
    on_disk = isinstance(cache, DiskCache)
    anchor, how, seconds = None, "reused", 0.0
    if on_disk:
        status, tensors = cache.reopen(anchor_key)
        if status == "reused":
            prepared.anchor_state.load_tensors(tensors, prepared.pipe.device, prepared.pipe.unet.dtype)
            anchor = Image.open(cache.folder / "anchor.png").convert("RGB")
    if anchor is None and not need_cache and in_output:
        anchor = Image.open(anchor_path).convert("RGB")
    if anchor is None:
        progress.image("anchor", prepared.settings.steps)
        start = time.perf_counter()
        anchor, how = renderer.anchor(prepared.board.spec.anchor.prompt, progress.step), "built"
        seconds = time.perf_counter() - start
        if on_disk:
            cache.folder.mkdir(parents=True, exist_ok=True)
            anchor.save(cache.folder / "anchor.png")
            cache.seal(anchor_key, prepared.anchor_state.to_tensors(), fields)
    if not in_output:
        write_png(anchor, anchor_path, {"framegen-key": anchor_key})
    return anchor, how, seconds
