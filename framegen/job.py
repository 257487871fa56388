"""The whole render job, in order: storyboard -> anchor -> frames -> MP4 -> report.

    from framegen import load_storyboard, render_storyboard
    report, exit_code = render_storyboard(load_storyboard("storyboards/demo.yaml"))
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import numpy as np
from PIL import Image

from . import __version__
from .assemble import read_png_text, write_mp4, write_png, write_text
from .cache import DiskCache, cache_key, sha256
from .errors import EXIT_CHECK_FAILED, EXIT_OK, RenderFailure
from .models import configs_offline, configs_online, is_hub_id, load_pipeline
from .render import Renderer, check_known_layers
from .report import compare, report_csv, run_checks, segmenter_for
from .storyboard import Storyboard


class Quiet:
    """Progress that shows nothing; the CLI passes a rich progress bar instead."""

    def image(self, name: str, total_steps: int, count: int = 1) -> None: ...

    def step(self, step: int) -> None: ...


def validate_before_loading(board: Storyboard, online: bool = True) -> bool:
    """Check layer names against the U-Net config, read without weights: bundled or
    local configs, else (`online`) the hub's config file. A single-file checkpoint is
    checked once loaded. Returns whether the layers were checked."""
    model = board.spec.model
    configs = configs_offline(model.id)
    if configs is None and online and is_hub_id(model.id):
        configs = configs_online(model.id, model.revision)
    if configs is not None:
        check_known_layers(board, configs[0])
    return configs is not None


def mask_image(mask, size: tuple[int, int]) -> Image.Image:
    """A keep-the-anchor mask at image size: white = kept from the anchor."""
    grid = Image.fromarray((mask.cpu().numpy() * 255).astype(np.uint8))
    return grid.resize(size, Image.Resampling.NEAREST)


def frame_key(renderer: Renderer, plan, anchor_key: str) -> str:
    """Everything that decides a frame's image: the anchor's key, its prompt, its rules
    (mask images by content)."""
    rules = renderer.describe_rules(plan)
    for rule in rules:
        image = rule.get("mask", {}).get("image")
        if image:
            rule["mask_sha256"] = sha256(renderer.board.path.parent / image)
    return cache_key({"anchor": anchor_key, "prompt": plan.prompt, "rules": rules})


def process_state():
    """accelerate's PartialState when started by `accelerate launch` with several
    processes (on CPU-only machines too), else None."""
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return None
    import torch
    from accelerate import PartialState

    state = PartialState(cpu=not torch.cuda.is_available())
    return state if state.num_processes > 1 else None


def mask_paths(renderer: Renderer, plan) -> list[str]:
    """Where a frame's masks go: masks/0001.png, then masks/0001-2.png, ..."""
    count = sum(rule.mode == "mask" for rule in renderer.rules[plan.index])
    return [f"masks/{plan.index:04d}{'' if n == 1 else f'-{n}'}.png" for n in range(1, count + 1)]


def render_storyboard(board: Storyboard, output: Path | None = None, pipe=None, progress=None) -> tuple[dict | None, int]:
    """Render every frame, write the output folder, and return (report, exit code).

    Frames already in the output folder with the same key (a PNG text chunk) are
    reused, so a killed render picks up where it stopped. With `render.cache: disk` the
    anchor cache is kept in the output folder and reused by later renders.

    Under `accelerate launch` with K processes the anchor cache goes to disk: process 0
    builds it while the others wait, each process renders every K-th remaining frame,
    and process 0 writes the MP4 and the report (the others return (None, 0))."""
    progress = progress or Quiet()
    out = Path(output) if output is not None else board.output_dir
    spec = board.spec
    state = process_state()
    main_process = state is None or state.is_main_process
    validate_before_loading(board)
    if pipe is None and state is not None:
        pipe = load_pipeline(spec.model, device=state.device)
    segmenter = segmenter_for(spec.report.background, spec.model.id, board.path.parent) if main_process else None
    renderer = Renderer(board, pipe)
    fields = renderer.anchor_fields()
    anchor_key = cache_key(fields)
    keys = {plan.index: frame_key(renderer, plan, anchor_key) for plan in board.frames}
    done = {p.index for p in board.frames if read_png_text(out / f"frames/{p.index:04d}.png").get("framegen-key") == keys[p.index]}
    pending = [p for p in board.frames if p.index not in done]
    if spec.render.cache == "disk" or state is not None:
        renderer.cache = DiskCache(renderer.cache.needed, out / "anchor-cache")

    if main_process:
        anchor, anchor_cache, anchor_seconds = obtain_anchor(renderer, out, anchor_key, fields, need_cache=bool(pending), progress=progress)
    if state is not None:
        state.wait_for_everyone()  # the cache on disk is complete
        if not main_process and pending:
            status, extras = renderer.cache.reopen(anchor_key)
            if status != "reused":
                raise RenderFailure(f"process {state.process_index}: the anchor cache on disk is unusable ({status})")
            renderer.restore_anchor(extras)
        pending = pending[state.process_index :: state.num_processes]

    for group in renderer.batches(pending, spec.render.batch):
        progress.image(group[0].name if len(group) == 1 else f"{group[0].name} +{len(group) - 1}", renderer.steps, len(group))
        for result in renderer.frames(group, progress.step):
            plan, image = result.plan, result.image
            for path, (_, mask) in zip(mask_paths(renderer, plan), result.masks):
                write_png(mask_image(mask, image.size), out / path)
            # the frame last: its key vouches for its masks too
            text = {"framegen-key": keys[plan.index], "framegen-seconds": f"{result.seconds:.3f}"}
            if state is not None:
                text["framegen-process"] = str(state.process_index)
            write_png(image, out / f"frames/{plan.index:04d}.png", text)
    if state is not None:
        state.wait_for_everyone()  # every frame is on disk
    if not main_process:
        return None, EXIT_OK

    report = write_report(renderer, out, anchor, keys, done, segmenter)
    report.update(anchor_cache=anchor_cache)
    report["anchor"]["seconds"] = round(anchor_seconds, 3)
    write_text(report_csv(report), out / "report.csv")
    write_text(json.dumps(report, indent=2) + "\n", out / "report.json")
    return report, EXIT_OK if all(c["passed"] for c in report["checks"]) else EXIT_CHECK_FAILED


def obtain_anchor(renderer: Renderer, out: Path, anchor_key: str, fields: dict, need_cache: bool, progress) -> tuple[Image.Image, str, float]:
    """(anchor image, 'built' | 'reused', seconds): from a sound disk cache, or from the
    output folder when no frame is left to render, else by the anchor pass (sealing the
    disk cache, if there is one). The output's anchor.png ends up this anchor's."""
    anchor_path = out / "anchor.png"
    in_output = read_png_text(anchor_path).get("framegen-key") == anchor_key
    on_disk = isinstance(renderer.cache, DiskCache)
    anchor, how, seconds = None, "reused", 0.0
    if on_disk:
        status, extras = renderer.cache.reopen(anchor_key)
        if status == "reused":
            renderer.restore_anchor(extras)
            anchor = Image.open(renderer.cache.folder / "anchor.png").convert("RGB")
    if anchor is None and not need_cache and in_output:
        anchor = Image.open(anchor_path).convert("RGB")
    if anchor is None:
        progress.image("anchor", renderer.steps)
        start = time.perf_counter()
        anchor, how = renderer.anchor(progress.step), "built"
        seconds = time.perf_counter() - start
        if on_disk:
            renderer.cache.folder.mkdir(parents=True, exist_ok=True)
            anchor.save(renderer.cache.folder / "anchor.png")
            renderer.cache.seal(anchor_key, renderer.anchor_extras(), fields)
    if not in_output:
        write_png(anchor, anchor_path, {"framegen-key": anchor_key})
    return anchor, how, seconds


def write_report(renderer: Renderer, out: Path, anchor: Image.Image, keys: dict, done: set, segmenter) -> dict:
    """Score every frame (read back from the output folder), drop stale files of an
    earlier storyboard, encode the MP4; the report (written by the caller)."""
    board, spec = renderer.board, renderer.board.spec
    anchor_person = segmenter.person(anchor)
    frames, images = [], []
    for plan in board.frames:
        path = out / f"frames/{plan.index:04d}.png"
        text = read_png_text(path)
        if text.get("framegen-key") != keys[plan.index]:
            raise RenderFailure(f"frame '{plan.name}' is missing from {out / 'frames'}")
        image = Image.open(path).convert("RGB")
        images.append(image)
        kinds = [rule.mask.kind for rule in renderer.rules[plan.index] if rule.mode == "mask"]
        frames.append(
            {
                "index": plan.index,
                "name": plan.name,
                "prompt": plan.prompt,
                "image": f"frames/{plan.index:04d}.png",
                "hold": plan.hold,
                "rules": renderer.describe_rules(plan),
                "masks": [{"kind": kind, "image": p} for kind, p in zip(kinds, mask_paths(renderer, plan))],
                **compare(anchor, image, anchor_person, segmenter.person(image)),
                "seconds": round(float(text.get("framegen-seconds", "0")), 3),
                "reused": plan.index in done,
            }
        )
    written = {f["image"] for f in frames} | {m["image"] for f in frames for m in f["masks"]}
    for stale in [*(out / "frames").glob("*.png"), *(out / "masks").glob("*.png")]:
        if f"{stale.parent.name}/{stale.name}" not in written:
            stale.unlink()

    frame_count = write_mp4([anchor, *images], [1, *(p.hold for p in board.frames)], out / "clip.mp4", spec.video.fps, spec.video.crf)
    return {
        "framegen_version": __version__,
        "storyboard": {
            "path": str(board.path),
            "resolved": spec.model_dump(mode="json"),
            "width": renderer.width,
            "height": renderer.height,
        },
        "model": {"id": spec.model.id, "dtype": str(renderer.dtype).removeprefix("torch."), "device": str(renderer.device)},
        "cache_bytes": renderer.cache.nbytes,
        "cache_entries": len(renderer.cache),
        "anchor_cache": None,
        "segmenter": segmenter.name,
        "anchor": {"prompt": spec.anchor.prompt, "image": "anchor.png", "seconds": None},
        "frames": frames,
        "video": {"path": "clip.mp4", "fps": spec.video.fps, "frame_count": frame_count},
        "checks": run_checks(frames, spec.checks.max_background_mse),
    }
