"""From saving a one-word change to the live page showing the new frame, with `render --watch`
on the demo storyboard, against the time that one frame takes to render.

    OMP_NUM_THREADS=2 python benchmarks/watch_latency.py [--saves 3] [--port 8766]

Copies storyboards/demo.yaml and the images beside it to a temporary folder, runs the watch loop on it with the live
page, opens the page in headless Chromium (Debian's `chromium`), and for each save changes
one word of the last frame's prompt (its skirt's colour), then waits until the page shows it. Prints, per save,
the seconds from the write to the page showing the word, the frame's own render time from the
report, and the difference: the goal (iteration-loop issue) is at most 1 s over the frame.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from framegen.cli.watch import watch  # noqa: E402
from tests.test_review import CHROMIUM_FLAGS, chromium  # noqa: E402

WORDS = ["pink", "gray", "purple", "green", "orange"]  # no frame of demo.yaml has a skirt of these


@contextmanager
def watching_demo(port: int, prefix: str) -> Iterator[tuple[Path, dict]]:
    """`render --watch` with its live page on `port`, on a copy of the demo storyboard (and
    the images beside it) in a temporary folder, once its first render is written: yields
    the copy's path and its content, to change and write back."""
    folder = Path(tempfile.mkdtemp(prefix=prefix))
    for image in (ROOT / "storyboards").glob("*.png"):  # the masks and images the storyboard names
        shutil.copy(image, folder)
    board = folder / "demo.yaml"
    spec = yaml.safe_load((ROOT / "storyboards" / "demo.yaml").read_text())
    spec.pop("output", None)
    board.write_text(yaml.safe_dump(spec, sort_keys=False))
    stop = threading.Event()
    loop = threading.Thread(target=watch, args=(board, folder / "out", True), kwargs={"stop": stop, "port": port})
    loop.start()
    try:
        deadline = time.monotonic() + 300
        while not (folder / "out" / "report.json").is_file():  # a storyboard that does not validate never gets there
            if time.monotonic() > deadline or not loop.is_alive():
                raise SystemExit("the first render did not finish in 300 s")
            time.sleep(0.2)
        yield board, spec
    finally:
        stop.set()
        loop.join(30)
        shutil.rmtree(folder, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--saves", type=int, default=3)
    parser.add_argument("--port", type=int, default=8766)
    args = parser.parse_args()
    from playwright.sync_api import sync_playwright

    with watching_demo(args.port, "watch-latency-") as (board, spec), sync_playwright() as playwright:
        report = board.parent / "out" / "report.json"
        browser = playwright.chromium.launch(executable_path=chromium(), args=CHROMIUM_FLAGS)
        page = browser.new_page()
        page.goto(f"http://127.0.0.1:{args.port}/", wait_until="load")
        last = spec["frames"][-1]
        print("| save | write -> page shows it, s | the frame's render, s | over the frame, s |")
        print("|---|---|---|---|")
        for i in range(args.saves):
            word = WORDS[i % len(WORDS)]
            last["replace"] = {"blue skirt": f"{word} skirt"}  # a word of the demo model's grammar
            start = time.perf_counter()
            board.write_text(yaml.safe_dump(spec, sort_keys=False))
            page.wait_for_function(f"document.body.innerText.includes('{word} skirt')", timeout=120_000)
            seconds = time.perf_counter() - start
            frame = json.loads(report.read_text())["frames"][-1]
            print(f"| {i + 1} | {seconds:.2f} | {frame['seconds']:.2f} | {seconds - frame['seconds']:.2f} |")
        browser.close()


if __name__ == "__main__":
    main()
