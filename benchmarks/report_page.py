"""How fast report.html opens for a long render (issue #16: 500 frames, under 2 s in Chromium).

    python benchmarks/report_page.py [--frames 500] [--repeats 5] [--out /tmp/report-page]

Renders a tiny-random storyboard of `--frames` frames (64x64, 4 steps; every third frame
with a mask rule, so masks are on the page too; a background-MSE limit, drawn on the chart), unless the
output folder already holds that render, then opens its report.html in headless Chromium
(Debian's, through Playwright) `--repeats` times, each in a fresh browser, and prints the
median time from navigation to DOMContentLoaded, to the load event, and to the first
screen's images decoded, with the page's size.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import time
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from tests.test_review import CHROMIUM_FLAGS, chromium  # noqa: E402


def storyboard(frames: int) -> dict:
    words = ["red", "green", "blue", "yellow", "black", "white", "pink", "orange"]
    entries = []
    for i in range(frames):
        entry = {"name": f"f{i + 1:03d}", "replace": {"blue skirt": f"{words[i % len(words)]} skirt"}}
        if i % 3 == 0:
            entry["swap"] = [
                {"mode": "mask", "layers": ["LATENTS"], "steps": "all", "mask": {"grid": ["1100", "1100"]}}
            ]
        entries.append(entry)
    return {
        "version": 1,
        "model": {"id": "tiny-random"},
        "render": {"width": 64, "height": 64, "steps": 4, "guidance": 7.5, "seed": 1, "batch": 8},
        "anchor": {"prompt": "girl, white hair, school uniform, blue skirt, outdoor"},
        "swap": [{"mode": "full", "layers": ["OUT3", "OUT4", "OUT5", "OUT6"], "steps": "1-2"}],
        "frames": entries,
        "video": {"fps": 24},
        "report": {"background": {"segmenter": "none"}},
        "checks": {"max_background_mse": 60},
    }


def page_timings(page_path: Path, repeats: int, profile: Path) -> tuple[list[float], list[float], list[float]]:
    """Seconds from navigation to DOMContentLoaded, to the load event and to the first
    screen's images decoded, for `page_path` opened `repeats` times, each in a fresh
    headless Chromium (Debian's, through Playwright) with its own profile."""
    from playwright.sync_api import sync_playwright

    loaded, content, first_screen = [], [], []
    with sync_playwright() as playwright:
        for _ in range(repeats):
            shutil.rmtree(profile, ignore_errors=True)
            browser = playwright.chromium.launch_persistent_context(
                str(profile), executable_path=chromium(), args=CHROMIUM_FLAGS, viewport={"width": 1280, "height": 900}
            )
            page = browser.new_page()
            page.goto(page_path.as_uri(), wait_until="load")
            timing = page.evaluate("JSON.parse(JSON.stringify(performance.getEntriesByType('navigation')[0]))")
            page.wait_for_function(
                """() => Array.from(document.images)
                    .filter(image => image.getBoundingClientRect().top < innerHeight)
                    .every(image => image.complete && image.naturalWidth > 0)"""
            )
            first_screen.append(page.evaluate("performance.now()") / 1000)
            content.append(timing["domContentLoadedEventEnd"] / 1000)
            loaded.append(timing["loadEventEnd"] / 1000)
            browser.close()
    shutil.rmtree(profile, ignore_errors=True)
    return content, loaded, first_screen


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--frames", type=int, default=500)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--out", type=Path, default=Path("/tmp/report-page"))
    args = parser.parse_args()

    from framegen.cli import main as framegen

    args.out.mkdir(parents=True, exist_ok=True)
    board = args.out / "board.yaml"
    board.write_text(yaml.safe_dump(storyboard(args.frames), sort_keys=False))
    start = time.perf_counter()
    framegen(["render", "-q", str(board), "-o", str(args.out / "render")])  # exit 1 if a check fails: still timed
    print(f"render of {args.frames} frames: {time.perf_counter() - start:.0f} s (or reused)")
    page_path = args.out / "render" / "report.html"
    size = page_path.stat().st_size
    images = len(list((args.out / "render").glob("*/*.png")))

    content, loaded, first_screen = page_timings(page_path, args.repeats, args.out / "profile")
    print(f"report.html: {size:,} bytes, {args.frames} frames, {images} images in the folder")
    print(f"median of {args.repeats} fresh Chromium starts, seconds from navigation:")
    print(f"  DOMContentLoaded      {statistics.median(content):.3f}")
    print(f"  load event            {statistics.median(loaded):.3f}")
    print(f"  first screen decoded  {statistics.median(first_screen):.3f}")
    worst = max(statistics.median(loaded), statistics.median(first_screen))
    print(f"{'meets' if worst < 2 else 'MISSES'} the 2 s goal")


if __name__ == "__main__":
    main()
