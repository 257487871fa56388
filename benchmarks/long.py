"""Long clips: memory and time per frame do not grow with the number of frames.

    OMP_NUM_THREADS=1 python benchmarks/long.py [--frames 10,1000,10000] [--steps 4] [--kill-at 600] [--pages 3]

Renders a storyboard of N frames on tiny-random (64x64, a whole-tensor and a mask rule,
each frame its own prompt) in a fresh process per N and prints, per N: the process's peak
RSS, the mean seconds per frame (from the report), the wall time, and the sizes of
report.json, report.html, sheet.png and clip.mp4. Then the longest render's report.html
opened `--pages` times in headless Chromium (benchmarks/report_page.py): seconds to its
first screen. Then (unless `--kill-at 0`) the longest render again, killed with SIGKILL
once about `--kill-at` frames are on disk, and resumed: the resume must reuse every
finished frame and give the same clip. Goals (issues #12, #26): peak RSS flat within 5%
from 10 to 1,000 and 10,000 frames, time per frame flat, the page's first screen < 2 s.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
from report_page import page_timings  # noqa: E402

# the render in a child: peak RSS is the child's own, in kB
CHILD = """
import resource, sys
from framegen.cli import main
code = main(sys.argv[1:])
print("peak-rss-kb", resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, file=sys.stderr)
sys.exit(code)
"""


def storyboard(frames: int, steps: int) -> dict:
    colours = ["red", "green", "yellow", "purple", "pink", "orange", "black", "gray", "brown", "white"]
    return {
        "version": 1,
        "model": {"id": "tiny-random"},
        "render": {"width": 64, "height": 64, "steps": steps, "guidance": 7.5, "seed": 1111},
        "anchor": {"prompt": "girl, white hair, blue skirt, grass, day"},
        "swap": [
            {"mode": "full", "layers": ["OUT3", "OUT4"], "steps": f"1-{steps // 2}"},
            {
                "mode": "mask",
                "layers": ["OUT3", "OUT6"],
                "steps": f"{steps // 2 + 1}-{steps}",
                "mask": {"grid": ["10", "01"]},
            },
        ],
        "frames": [
            {"name": f"f{i:04d}", "replace": {"blue skirt": f"{colours[i % 10]} skirt"}, "add": f"pose {i}"}
            for i in range(frames)
        ],
        "video": {"fps": 24},
        "report": {"background": {"segmenter": "none"}},
    }


def render(board: Path, out: Path) -> subprocess.Popen:
    env = {**os.environ, "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1")}
    command = [sys.executable, "-c", CHILD, "render", "-q", str(board), "-o", str(out)]
    return subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)


def finish(process: subprocess.Popen) -> int:
    _, err = process.communicate()
    if process.returncode != 0:
        raise SystemExit(f"render failed ({process.returncode}): {err.strip()}")
    return int(next(line for line in err.splitlines() if line.startswith("peak-rss-kb")).split()[1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--frames", default="10,100,1000")
    parser.add_argument("--steps", type=int, default=4)
    parser.add_argument("--kill-at", type=int, default=600, help="0: no kill and resume")
    parser.add_argument("--pages", type=int, default=3, help="Chromium starts to time the page (0: none)")
    args = parser.parse_args()
    counts = [int(n) for n in args.frames.split(",")]

    print(
        f"tiny-random 64x64, {args.steps} DDIM steps, full OUT3+OUT4 then a grid mask on OUT3+OUT6; one process per row"
    )
    files = ("report.json", "report.html", "sheet.png", "clip.mp4")
    print(f"| frames | peak RSS MB | vs first | s per frame | wall s | {' | '.join(f'{f} KB' for f in files)} |")
    print("|---|---|---|---|---|" + "---|" * len(files))
    with tempfile.TemporaryDirectory() as folder:
        folder = Path(folder)
        first = None
        for count in counts:
            board = folder / f"long-{count}.yaml"
            board.write_text(yaml.safe_dump(storyboard(count, args.steps), sort_keys=False))
            out = folder / f"out-{count}"
            start = time.perf_counter()
            peak = finish(render(board, out)) / 1024
            wall = time.perf_counter() - start
            report = json.loads((out / "report.json").read_text())
            per_frame = sum(f["seconds"] for f in report["frames"]) / len(report["frames"])
            first = first or peak
            sizes = [(out / name).stat().st_size / 1024 for name in files]
            row = [f"{count}", f"{peak:.0f}", f"{peak / first:.3f}", f"{per_frame:.3f}", f"{wall:.1f}"]
            print("| " + " | ".join(row + [f"{size:.0f}" for size in sizes]) + " |")

        longest = counts[-1]
        if args.pages:
            page = folder / f"out-{longest}" / "report.html"
            _, _, first_screen = page_timings(page, args.pages, folder / "profile")
            pages = len(list(page.parent.glob("report*.html")))
            seconds = statistics.median(first_screen)
            print(
                f"\nreport.html of {longest} frames ({pages} pages): first screen in {seconds:.2f} s "
                f"(median of {args.pages} fresh headless Chromium starts; goal < 2 s)"
            )
        if not args.kill_at:
            return
        board, out = folder / f"long-{longest}.yaml", folder / "killed"
        process = render(board, out)
        while (
            process.poll() is None
            and len(list((out / "frames").glob("*.png")) if (out / "frames").exists() else []) < args.kill_at
        ):
            time.sleep(0.05)
        process.send_signal(signal.SIGKILL)
        process.wait()
        finished = len(list((out / "frames").glob("*.png")))
        start = time.perf_counter()
        peak = finish(render(board, out)) / 1024
        wall = time.perf_counter() - start
        report = json.loads((out / "report.json").read_text())
        reused = sum(f["reused"] for f in report["frames"])
        same_clip = (out / "clip.mp4").read_bytes() == (folder / f"out-{longest}" / "clip.mp4").read_bytes()
        print(
            f"\nkill -9 after {finished} of {longest} frames on disk; the resume reused {reused} "
            f"({'every finished frame' if reused >= finished else 'NOT every finished frame'}), rendered "
            f"{longest - reused}, wall {wall:.1f} s, peak RSS {peak:.0f} MB; clip identical to the uninterrupted "
            f"render's: {same_clip}"
        )


if __name__ == "__main__":
    main()
