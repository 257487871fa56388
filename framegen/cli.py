"""`framegen render | check | layers | validate`.

Errors the user can fix print one line each (`file:line:col: where: what`) and exit
non-zero; `--debug` shows the traceback instead. Heavy imports (torch, diffusers)
happen inside the commands, so `framegen --help` is instant.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from . import __version__
from .errors import EXIT_OK, EXIT_RUNTIME, FramegenError, InvalidInput


class RichProgress:
    """Two bars on stderr: images done, and the current image's denoising steps."""

    def __init__(self, images: int):
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

        self.bar = Progress(
            TextColumn("{task.description:>16}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeRemainingColumn(),
            console=Console(stderr=True),
        )
        self.images = self.bar.add_task("images", total=images)
        self.steps = self.bar.add_task("steps", total=1)
        self.started = 0

    def image(self, name: str, total_steps: int, count: int = 1) -> None:
        """`count` images start now (a batch of frames)."""
        if not self.started:  # shown from the first image on, after validation and loading
            self.bar.start()
        self.bar.update(self.images, completed=self.started)
        self.bar.reset(self.steps, total=total_steps, description=name[:16])
        self.started += count

    def step(self, step: int) -> None:
        self.bar.update(self.steps, completed=step)
        if step == self.bar.tasks[self.steps].total:
            self.bar.update(self.images, completed=self.started)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        if self.started:
            self.bar.stop()


def _quiet_libraries() -> None:
    """framegen shows its own progress; the libraries' loading bars and notices go."""
    import warnings

    import diffusers.utils.logging
    import transformers.utils.logging

    diffusers.utils.logging.disable_progress_bar()
    transformers.utils.logging.disable_progress_bar()
    warnings.filterwarnings("ignore", category=FutureWarning)


def cmd_render(args) -> int:
    from .job import render_storyboard
    from .report import failure_lines
    from .storyboard import load_storyboard

    _quiet_libraries()

    board = load_storyboard(args.storyboard)
    output = Path(args.output) if args.output else board.output_dir
    if args.quiet:
        report, code = render_storyboard(board, output)
    else:
        with RichProgress(len(board.frames) + 1) as progress:
            report, code = render_storyboard(board, output, progress=progress)
    if report is None:  # another process of a distributed render writes the output
        return code
    for line in failure_lines(report):
        print(line, file=sys.stderr)
    if not args.quiet:
        print(
            f"wrote {output}/ ({len(report['frames'])} frames, clip.mp4, report.json); "
            f"anchor cache {report['anchor_cache']}, {report['cache_bytes']:,} bytes"
        )
    return code


def cmd_sweep(args) -> int:
    import shlex
    import time

    from .storyboard import load_storyboard
    from .sweep import Sweep, layer_map, pick_frame, plan_from_args, write_summary

    _quiet_libraries()
    board = load_storyboard(args.storyboard)
    frame = pick_frame(board, args.frame)
    layers, pipe = layer_map(board)
    runs = plan_from_args(args, board, frame, layers)
    out = Path(args.output) if args.output else board.output_dir / "sweep"
    sweep = Sweep(board, frame, runs, out, cache=args.cache, pipe=pipe, batch=args.batch)
    start = time.perf_counter()
    say = (lambda line: None) if args.quiet else (lambda line: print(line, file=sys.stderr))
    if args.quiet:
        rows = sweep.run(log=say)
    else:
        with RichProgress(len(runs) + 1) as progress:
            rows = sweep.run(progress, log=say)
    spec = board.spec
    header = (
        f"# framegen sweep: {spec.model.id}, frame '{frame.name}'\n\n"
        f"`framegen sweep {shlex.join(args.argv)}`\n\n"
        f"Anchor: `{spec.anchor.prompt}`; frame: `{frame.prompt}`. {spec.render.steps} steps, guidance "
        f"{spec.render.guidance:g}, seed {spec.render.seed}; {len(runs)} runs."
    )
    best, min_foreground = write_summary(sweep, rows, args.min_foreground_mse, header)
    seconds = time.perf_counter() - start
    chosen = "none kept the edit" if best is None else f"{rows[best.key]['rules']} (background MSE {float(rows[best.key]['background_mse']):.2f})"
    print(f"wrote {out}/ (sweep.csv, sweep.md, best.yaml, sheets) in {seconds:.0f} s; best: {chosen}")
    return EXIT_OK


def cmd_validate(args) -> int:
    from .job import validate_before_loading
    from .storyboard import load_storyboard

    board = load_storyboard(args.storyboard)
    layers_checked = validate_before_loading(board, online=False)
    note = "" if layers_checked else "; layer names are checked when the model loads"
    print(f"{args.storyboard}: ok ({len(board.frames)} frames{note})")
    return EXIT_OK


def cmd_check(args) -> int:
    import json

    from .assemble import write_text
    from .report import failure_lines, junit_xml, read_report, recheck

    report, code = recheck(read_report(Path(args.report)), args.max_background_mse)
    if args.junit:
        write_text(junit_xml(report), Path(args.junit))
    for line in failure_lines(report):
        print(line, file=sys.stderr)
    if code == EXIT_OK:
        worst = max((f["background_mse"] for f in report["frames"]), default=None)
        print(f"ok: {len(report['frames'])} frames, worst background MSE {json.dumps(worst)} <= {args.max_background_mse}")
    return code


def cmd_layers(args) -> int:
    from .layers import LayerMap
    from .models import configs_offline, configs_online

    config, vae_scale = configs_offline(args.model) or configs_online(args.model)
    layers = LayerMap(config)
    native = config.get("sample_size", 64)
    native = (native if isinstance(native, int) else native[0]) * vae_scale
    width, height = args.width or native, args.height or native
    rows = [("name", "module", "channels", f"grid at {width}x{height}", "cross-attention")]
    for layer in layers.layers:
        if args.cross_attention and not layer.cross_attention:
            continue
        w, h = layer.grid(width // vae_scale, height // vae_scale)
        rows.append((layer.name, layer.module, str(layer.channels), f"{w}x{h}", "yes" if layer.cross_attention else ""))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip())
    return EXIT_OK


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="framegen", description=__doc__.split("\n\n")[0])
    parser.add_argument("--version", action="version", version=f"framegen {__version__}")
    parser.add_argument("--debug", action="store_true", help="show tracebacks instead of one-line errors")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    render = commands.add_parser("render", help="render a storyboard: frames, clip.mp4 and report.json")
    render.add_argument("storyboard")
    render.add_argument("-o", "--output", help="output folder (default: the storyboard's `output`)")
    render.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    render.set_defaults(run=cmd_render)

    check = commands.add_parser("check", help="re-check a report.json against a limit (for CI)")
    check.add_argument("report")
    check.add_argument("--max-background-mse", type=float, required=True, metavar="X")
    check.add_argument("--junit", metavar="FILE", help="also write JUnit XML here")
    check.set_defaults(run=cmd_check)

    layers = commands.add_parser("layers", help="list a model's layers: aliases, module paths, channels, grid")
    layers.add_argument("model", help="tiny-random, demo, a diffusers folder or a hub id")
    layers.add_argument("--width", type=int)
    layers.add_argument("--height", type=int)
    layers.add_argument("--cross-attention", action="store_true", help="only the layers that take text")
    layers.set_defaults(run=cmd_layers)

    sweep = commands.add_parser(
        "sweep",
        help="search what to swap: probe layers, subsets x step ranges, mask / threshold phases",
        description="The paper's experiments on any model, from one anchor pass. Writes sweep.csv, sweep.md, "
        "contact sheets and best.yaml into -o (default: sweep/ in the storyboard's output folder); "
        "an interrupted sweep resumes.",
    )
    sweep.add_argument("storyboard")
    sweep.add_argument("--frame", metavar="NAME", help="the frame whose prompt is the edit (default: the first)")
    sweep.add_argument("--probe", action="store_true", help="swap each layer alone at every step (default layers: every cross-attention layer)")
    sweep.add_argument("--layers", metavar="L,L", help="layers of the whole-tensor phase (or the probe's candidates)")
    sweep.add_argument("--subsets", action="store_true", help="every non-empty subset of the searched layers (--then-layers when --then is given)")
    sweep.add_argument("--steps", metavar="RANGES", help="whole-tensor step ranges, e.g. 1-15,1-20,1-25 (default: the first 40%%)")
    sweep.add_argument("--then", choices=["mask", "threshold"], help="a second phase on the steps after each range")
    sweep.add_argument("--then-layers", metavar="L,L", help="the second phase's layers (default: --layers)")
    sweep.add_argument("--thresholds", metavar="A:B:S", help="thresholds for --then threshold: start:stop:step or a list (default 0.01:0.20:0.01)")
    sweep.add_argument("--reduce", choices=["element", "position"], default="element", help="threshold per element (default) or per position")
    sweep.add_argument("--relative", action="store_true", help="thresholds as fractions of the anchor tensor's mean |value| (see swap rules)")
    sweep.add_argument("--mask", metavar="FILE", help="region for --then mask: an image (white = keep the anchor), auto:attention or auto:noise (default: the frame's mask rule)")
    sweep.add_argument("--min-foreground-mse", type=float, metavar="X", help="best.yaml only considers runs whose foreground MSE is at least X (default: half the no-swap frame's)")
    sweep.add_argument("--cache", choices=["auto", "device", "cpu", "disk"], default="auto", help="where the anchor cache lives (auto: device, else host memory, else disk)")
    sweep.add_argument("--batch", type=int, default=1, metavar="N", help="runs per U-Net batch: faster; numbers then match a render within one 8-bit level, not exactly")
    sweep.add_argument("-o", "--output", help="output folder")
    sweep.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    sweep.set_defaults(run=cmd_sweep)

    validate = commands.add_parser("validate", help="check a storyboard without rendering")
    validate.add_argument("storyboard")
    validate.set_defaults(run=cmd_validate)
    for sub in (render, check, layers, sweep, validate):
        sub.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help=argparse.SUPPRESS)
    return parser


def main(argv: list[str] | None = None) -> int:
    import os

    # transformers/diffusers chatter (torchvision absent, dtype notes) is not ours to show
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    os.environ.setdefault("DIFFUSERS_VERBOSITY", "error")
    os.environ.setdefault("HF_HUB_VERBOSITY", "error")
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
        given = list(sys.argv[1:] if argv is None else argv)
        args.argv = given[given.index(args.command) + 1 :]  # for the record in sweep.md
    except SystemExit as exit:  # argparse: usage errors exit 2, --help exits 0
        return int(exit.code or 0)
    try:
        return args.run(args)
    except FramegenError as error:
        if args.debug:
            raise
        for line in error.lines:
            print(f"framegen: {line}" if not isinstance(error, InvalidInput) else line, file=sys.stderr)
        return error.exit_code
    except KeyboardInterrupt:
        if args.debug:
            raise
        print("framegen: interrupted; files already written are complete", file=sys.stderr)
        return 130
    except Exception as error:  # anything else is our bug or the environment's
        if args.debug:
            raise
        message = str(error).strip().splitlines()[0] if str(error).strip() else ""
        print(f"framegen: {type(error).__name__}: {message} (run with --debug for the traceback)", file=sys.stderr)
        return EXIT_RUNTIME


if __name__ == "__main__":
    sys.exit(main())
