"""report.html, its further pages and sheet.png, written as a render's frames are measured
(`Review`), or again from a report.json (`write_review`, for `framegen report`). A clip of
more than PAGE_FRAMES frames gets pages of that many frames, report-2.html, ..., linked
from each other, so that every page opens fast however long the clip.
"""

from __future__ import annotations

import shutil
import tempfile
from contextlib import ExitStack
from html import escape
from pathlib import Path

from PIL import Image

from .chart import Chart
from .files import atomic_file
from .page import PAGE_END, frame_entry, html_head, page_head, report_limits
from .review import Sheet, failing_frames

PAGE_FRAMES = 500  # frames per page (a page of 500 opens in well under 2 s in Chromium)


class Review:
    """report.html (with report-2.html, ... for a clip of more than PAGE_FRAMES frames) and
    sheet.png, fed one measured frame at a time in video order. The first page's entries
    wait in a temporary file (it has no name: the OS removes it if the render dies) until
    the verdict and the chart above them are known; further pages are written as their
    frames come. Every page lands at `write`, none if the render fails first. Held in
    memory: the chart's bars and the sheet's tiles.

        with Review(out, head, anchor, total, limit) as review:
            review.add(frame, "pass", image)
            review.write(report)
    """

    def __init__(self, out: Path, report: dict, anchor: Image.Image | Path, total: int, limit: float | None):
        self.out, self.report, self.limit = out, report, limit  # limit: max_background_mse, shown by each frame
        self.reference = "the image" if "psnr" in report["anchor"] else "the anchor"  # a real image should stay
        self.chart, self.sheet = Chart(total), Sheet(anchor, total)
        self.pages = ExitStack()  # pages 2, 3, ...: each lands when the stack closes
        self.entries = self.pages.enter_context(tempfile.TemporaryFile("w+", encoding="utf-8", dir=out))
        self.page, self.total, self.position = self.entries, total, 0
        self.seconds = 0.0  # rendered now, not reused

    def __enter__(self) -> Review:
        return self

    def __exit__(self, *failure) -> None:
        self.pages.__exit__(*failure)  # after a failure no page lands

    def add(self, frame: dict, state: str, image: Image.Image | Path) -> None:
        """The next frame's entry, its `state` (pass, fail or none) and its image (or file)."""
        if self.position and self.position % PAGE_FRAMES == 0:
            self._end_further_page()
            number = self.position // PAGE_FRAMES + 1
            self.page = self.pages.enter_context(atomic_file(self.out / page_name(number)))
            self.page.write(further_page_head(self.report, number, self.total))
        self.position += 1
        self.page.write(frame_entry(frame, state, self.report["anchor"]["prompt"], self.limit, self.reference))
        self.page.write("\n")
        self.chart.add(frame, state)
        self.sheet.add(frame, image, state == "fail")
        self.seconds += 0 if frame.get("reused") else frame["seconds"]

    def _end_further_page(self) -> None:
        if self.page is not self.entries:  # the first page ends in `write`, below its head
            self.page.write(PAGE_END)

    def write(self, report: dict) -> None:
        """Every page and sheet.png, for `report` (report.json's content but its frames, with
        its checks)."""
        self._end_further_page()
        self.entries.seek(0)
        with atomic_file(self.out / "report.html") as page:
            nav = pages_nav(self.total, 1)
            page.write(page_head(report, failing_frames(report), self.seconds, self.chart, self.reference, nav))
            shutil.copyfileobj(self.entries, page)
            page.write(PAGE_END)
        self.pages.close()
        self.sheet.write(self.out / "sheet.png")


def page_name(number: int) -> str:
    return "report.html" if number == 1 else f"report-{number}.html"


def page_names(total: int) -> list[str]:
    """The pages of a clip of `total` frames."""
    return [page_name(number) for number in range(1, max(1, -(-total // PAGE_FRAMES)) + 1)]


def pages_nav(total: int, current: int) -> str:
    """Links to every page of a clip of `total` frames, the current one unlinked."""
    names = page_names(total)
    if len(names) == 1:
        return ""
    links = []
    for number, name in enumerate(names, 1):
        span = f"frames {(number - 1) * PAGE_FRAMES + 1}-{min(total, number * PAGE_FRAMES)}"
        links.append(f"<b>{span}</b>" if number == current else f'<a href="{name}">{span}</a>')
    return f'<nav class="pages">{" · ".join(links)}</nav>'


def further_page_head(report: dict, number: int, total: int) -> str:
    """A page after the first: its frames' entries follow, as on the first page."""
    name = f"{Path(report['storyboard']['path']).stem}, page {number}"
    return "\n".join([
        html_head(report, name),
        f'<header><h1>{escape(name)}</h1><p><a href="report.html">settings, checks, clip and chart</a></p>',
        pages_nav(total, number),
        '</header><div class="frames">',
    ]) + "\n"  # fmt: skip


def write_review(report: dict, out: Path) -> None:
    """report.html (and its further pages) and sheet.png in the output folder `out`, for
    report.json's content (`framegen report`): images are read only where the sheet shows them."""
    limit = report_limits(report).get("max_background_mse")
    failing = failing_frames(report)
    with Review(out, report, out / report["anchor"]["image"], len(report["frames"]), limit) as review:
        for frame in report["frames"]:
            state = "none" if not report["checks"] else "fail" if frame["name"] in failing else "pass"
            review.add(frame, state, out / frame["image"])
        review.write(report)
