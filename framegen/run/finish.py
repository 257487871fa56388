"""The clip and the report of a render, written as its frames are read back. Each frame is
read from disk once, added to the clip, measured against the anchor (its heat-map
written), and written into report.json, report.csv, report.html and the sheet before the
next is read. Nothing holds the whole clip: report.json is written as frames are
measured, the page's entries wait in a temporary file, and what stays in memory is the
checks' failing frames, the chart's bars and the sheet's tiles. The clip lands first;
the report only once the clip is whole.

    result = render_storyboard(board)      # run/job.py ends with `finish`
    result.passed, result.failing          # held; result.frames reads report.json back
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

from PIL import Image

from ..output.files import atomic_file, clip_writer, json_chunks
from ..output.measure import Measure
from ..output.pages import Review
from ..output.report import Checks, csv_writer, summary_of
from ..storyboard import Storyboard
from .anchor import Anchor
from .shots import Shot


@dataclass
class RenderResult:
    """What a render wrote: `summary` is report.json's content but its frames, `failing`
    the entries of the frames that failed a check, `count` the number of frames. `report`
    and `frames` read report.json, on first use (a long clip's report is large)."""

    output: Path
    summary: dict
    failing: list[dict]
    count: int

    @cached_property
    def report(self) -> dict:
        return json.loads(self.to_json())

    @property
    def frames(self) -> list[dict]:
        return self.report["frames"]

    @property
    def checks(self) -> list[dict]:
        return self.summary["checks"]

    @property
    def passed(self) -> bool:
        """Every `checks` limit held."""
        return all(check["passed"] for check in self.checks)

    @property
    def failing_report(self) -> dict:
        """The report with only its failing frames: what failure lines and annotations read."""
        return {**self.summary, "frames": self.failing}

    @property
    def anchor_cache(self) -> str:
        """`built`, `reused` (from the disk cache), `kept` (from a loop's last render, as
        render --watch keeps it) or `not needed` (every frame was in place)."""
        return self.summary["anchor_cache"]

    def to_json(self) -> str:
        return (self.output / "report.json").read_text(encoding="utf-8")


def read_frame(path: Path) -> tuple[Image.Image, float]:
    """A frame from the output folder, and the seconds its render took (from its PNG)."""
    with Image.open(path) as file:
        return file.convert("RGB"), float(file.text.get("framegen-seconds", "0"))


def finish(board: Storyboard, out: Path, frames: list[Shot], entry: Callable[[Shot], dict], anchor: Anchor,
           reference: Image.Image | None, head: dict, segmenter) -> RenderResult:  # fmt: skip
    """Write the clip of the anchor and `frames` (on disk in `out`, in video order) and the
    report. `entry(shot)` is what the report says of a shot before it is measured; `head`
    is report.json's content down to its frames (output/report.py: report_head) but the
    anchor's reconstruction, filled in here for a real anchor image, against which every
    frame is measured (else against the anchor)."""
    spec = board.spec
    measure = Measure(reference if reference is not None else anchor.image, anchor.image, segmenter)
    if reference is not None:
        head["anchor"].update(measure.reconstruction(anchor.image))
    checks = Checks(spec.checks.max_background_mse, spec.checks.max_flicker)
    review = Review(out, head, anchor.image, len(frames), spec.checks.max_background_mse)
    with atomic_file(out / "report.json") as report, atomic_file(out / "report.csv") as table, review:
        rows = csv_writer(table)
        with clip_writer(out / "clip.mp4", spec.video.fps, spec.video.crf) as clip:
            clip.add(anchor.image, 1)

            def measured():
                for shot in frames:
                    image, seconds = read_frame(out / shot.image)
                    clip.add(image, shot.hold)
                    frame = measure.frame(entry(shot), image, seconds, out)
                    state = checks.add(frame)
                    rows.writerow(frame)
                    review.add(frame, state, image)
                    yield frame

            video = {"path": "clip.mp4", "fps": spec.video.fps, "frame_count": lambda: clip.count}
            report.writelines(json_chunks({**head, "frames": measured(), "video": video, "checks": checks.result}))
            report.write("\n")
        summary = summary_of({**head, "video": {**video, "frame_count": clip.count}, "checks": checks.result()})
        review.write(summary)
    return RenderResult(out, summary, checks.failing_entries, len(frames))
