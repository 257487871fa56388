"""The whole render job, in order: storyboard -> anchor -> frames -> MP4 -> report.

    from framegen import load_storyboard, render_storyboard
    report, exit_code = render_storyboard(load_storyboard("storyboards/demo.yaml"))
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
from PIL import Image

from . import __version__
from .assemble import write_mp4, write_png, write_text
from .errors import EXIT_CHECK_FAILED, EXIT_OK
from .models import configs_offline, configs_online, is_hub_id
from .render import Renderer, check_known_layers
from .report import compare, report_csv, run_checks, segmenter_for
from .storyboard import Storyboard


class Quiet:
    """Progress that shows nothing; the CLI passes a rich progress bar instead."""

    def image(self, name: str, total_steps: int) -> None: ...

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


def render_storyboard(board: Storyboard, output: Path | None = None, pipe=None, progress=None) -> tuple[dict, int]:
    """Render every frame, write the output folder, and return (report, exit code)."""
    progress = progress or Quiet()
    out = Path(output) if output is not None else board.output_dir
    spec = board.spec
    validate_before_loading(board)
    segmenter = segmenter_for(spec.report.background, spec.model.id, board.path.parent)
    renderer = Renderer(board, pipe)

    progress.image("anchor", renderer.steps)
    start = time.perf_counter()
    anchor = renderer.anchor(progress.step)
    anchor_seconds = time.perf_counter() - start
    write_png(anchor, out / "anchor.png")
    anchor_person = segmenter.person(anchor)

    frames, images = [], []
    for plan in board.frames:
        progress.image(plan.name, renderer.steps)
        result = renderer.frame(plan, progress.step)
        image_path = f"frames/{plan.index:04d}.png"
        write_png(result.image, out / image_path)
        images.append(result.image)
        masks = []
        for number, (kind, mask) in enumerate(result.masks, start=1):
            mask_path = f"masks/{plan.index:04d}{'' if number == 1 else f'-{number}'}.png"
            write_png(mask_image(mask, result.image.size), out / mask_path)
            masks.append({"kind": kind, "image": mask_path})
        frames.append(
            {
                "index": plan.index,
                "name": plan.name,
                "prompt": plan.prompt,
                "image": image_path,
                "hold": plan.hold,
                "rules": renderer.describe_rules(plan),
                "masks": masks,
                **compare(anchor, result.image, anchor_person, segmenter.person(result.image)),
                "seconds": round(result.seconds, 3),
            }
        )
    written = {f["image"] for f in frames} | {m["image"] for f in frames for m in f["masks"]}
    for stale in [*(out / "frames").glob("*.png"), *(out / "masks").glob("*.png")]:  # of an earlier storyboard
        if f"{stale.parent.name}/{stale.name}" not in written:
            stale.unlink()

    frame_count = write_mp4([anchor, *images], [1, *(p.hold for p in board.frames)], out / "clip.mp4", spec.video.fps, spec.video.crf)
    report = {
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
        "segmenter": segmenter.name,
        "anchor": {"prompt": spec.anchor.prompt, "image": "anchor.png", "seconds": round(anchor_seconds, 3)},
        "frames": frames,
        "video": {"path": "clip.mp4", "fps": spec.video.fps, "frame_count": frame_count},
        "checks": run_checks(frames, spec.checks.max_background_mse),
    }
    write_text(report_csv(report), out / "report.csv")
    write_text(json.dumps(report, indent=2) + "\n", out / "report.json")
    return report, EXIT_OK if all(c["passed"] for c in report["checks"]) else EXIT_CHECK_FAILED
