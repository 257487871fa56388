"""`framegen render | check | report | layers | sweep | validate | schema`.

Errors the user can fix print one line each (`file:line:col: where: what`) and exit
non-zero; `--debug` shows the traceback instead. Heavy imports (torch, diffusers)
happen inside the commands, so `framegen --help` is instant.
"""

from __future__ import annotations

import argparse
import io
import os
import signal
import sys
import threading
import warnings
from pathlib import Path

from .. import __version__, errors
from ..errors import EXIT_CHECK_FAILED, EXIT_OK, EXIT_RUNTIME, FramegenError, InvalidInput, Terminated
from ..models.fingerprints import cache_folder
from .arguments import Parser, limit, path, port, side
from .progress import RichProgress, quiet_libraries, show_progress
from .report import cmd_check, cmd_report, frame_lines, print_annotations, wants_github
from .sweep import add_arguments as add_sweep_arguments
from .sweep import cmd_sweep


def cmd_render(args) -> int:
    from ..storyboard import load_storyboard

    if args.watch:
        from .watch import watch

        quiet_libraries()
        return watch(Path(args.storyboard), Path(args.output) if args.output else None, args.quiet, port=args.port)
    # before torch and diffusers import: what parsing a long storyboard leaves free, their imports fill
    board = load_storyboard(args.storyboard)
    quiet_libraries()
    from ..output.report import failure_lines
    from ..run.job import render_storyboard
    from ..run.shots import shots_of

    output = Path(args.output) if args.output else board.output_dir
    if show_progress(args):
        with RichProgress(len(shots_of(board)) + (board.spec.anchor.image is not None)) as progress:
            result = render_storyboard(board, output, progress=progress)
    else:
        result = render_storyboard(board, output)
    if result is None:  # another process of a distributed render writes the output
        return EXIT_OK
    for line in failure_lines(result.failing_report):
        print(line, file=sys.stderr)
    if wants_github(args):
        print_annotations(result.failing_report, frame_lines(str(board.path), board.marks))
    if not args.quiet:
        print(
            f"wrote {output}/ ({result.count} frames, clip.mp4, report.json, report.html, sheet.png); "
            f"anchor cache {result.anchor_cache}, {result.summary['cache_bytes']:,} bytes"
        )
    return EXIT_OK if result.passed else EXIT_CHECK_FAILED


def cmd_validate(args) -> int:
    from ..models.facts import configs_before_loading
    from ..output.folder import check_writable
    from ..storyboard import load_storyboard

    board = load_storyboard(args.storyboard)
    check_writable(board.output_dir)
    config = configs_before_loading(board.spec.model, online=False)
    if config is not None:
        board.check_model(config)
    note = "" if config is not None else "; layer names are checked when the model loads"
    print(f"{args.storyboard}: ok ({len(board.frames)} frames{note})")
    return EXIT_OK


def cmd_layers(args) -> int:
    from ..models.facts import configs_offline, configs_online
    from ..storyboard import ModelSpec
    from ..storyboard.checks import locate_checked

    location = locate_checked(args.model)
    if location.problem:
        raise InvalidInput(f"framegen layers: {location.problem}")
    spec = ModelSpec(id=location.path if location.kind in ("file", "folder") else args.model)
    config = configs_offline(spec) or configs_online(args.model)
    layers, vae_scale = config.layers, config.vae_scale
    width, height = args.width or config.native, args.height or config.native
    grid = "tokens" if layers.transformer else "grid"
    rows = [("name", "module", "channels", f"{grid} at {width}x{height}", "sees")]
    rows[0] += ("carries control",) if args.controlnet else ()
    for layer in layers.layers:
        if args.cross_attention and not layer.cross_attention:
            continue
        w, h = layer.grid(width // vae_scale, height // vae_scale)
        row = (layer.name, layer.module, str(layer.channels), f"{w}x{h}", layer.sees)
        rows.append(row + (("yes" if layer.carries_control else "no",) if args.controlnet else ()))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip())
    if args.controlnet:
        print(
            "With a ControlNet: its residuals join the skip connections and the mid block after the IN and MID "
            "outputs, so swapping those does not bring the anchor's control along; OUT blocks and LATENTS do."
        )
    return EXIT_OK


def cmd_schema(args) -> int:
    import json

    from ..storyboard.schema import json_schema

    print(json.dumps(json_schema(), indent=2))
    return EXIT_OK


def add_render_and_check(commands) -> tuple[argparse.ArgumentParser, argparse.ArgumentParser]:
    render = commands.add_parser("render", help="render a storyboard: frames, clip.mp4 and report.json")
    render.add_argument("storyboard", type=path)
    render.add_argument("-o", "--output", type=path, help="output folder (default: the storyboard's `output`)")
    render.add_argument("-q", "--quiet", action="store_true", help="no progress bar, no summary line")
    render.add_argument(
        "--watch", action="store_true", help="render again on every save of the storyboard or a file it names"
    )
    render.add_argument(
        "--port", type=port, default=8765, help="with --watch: the live page's port on 127.0.0.1 (default 8765)"
    )
    render.add_argument(
        "--progress", action="store_true", help="progress bars on stderr even when it is not a terminal"
    )
    render.set_defaults(run=cmd_render)

    check = commands.add_parser(
        "check", help="re-check a report.json against limits (for CI); none given: the storyboard's own checks"
    )
    check.add_argument("report", type=path)
    check.add_argument("--max-background-mse", type=limit, metavar="X")
    check.add_argument("--max-flicker", type=limit, metavar="X", help="background MSE from the video frame before")
    check.add_argument("--junit", type=path, metavar="FILE", help="also write JUnit XML here")
    check.add_argument("--force", action="store_true", help="let --junit replace a file framegen did not write")
    check.set_defaults(run=cmd_check)
    return render, check


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(prog="framegen", description=__doc__.split("\n\n")[0])
    parser.add_argument("--version", action="version", version=f"framegen {__version__}")
    parser.add_argument("--debug", action="store_true", help="show tracebacks instead of one-line errors")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    render, check = add_render_and_check(commands)

    report = commands.add_parser("report", help="write report.html and sheet.png again from an output folder")
    report.add_argument("output_dir", type=path, help="a render's output folder (with its report.json)")
    report.add_argument(
        "--force", action="store_true", help="replace report.html and sheet.png even when framegen did not write them"
    )
    report.set_defaults(run=cmd_report)

    layers = add_layers_command(commands)

    sweep = commands.add_parser(
        "sweep",
        help="search what to swap: probe layers, subsets x step ranges, mask / threshold phases",
        description="The paper's experiments on any model, from one anchor pass. Writes sweep.csv, sweep.md, "
        "contact sheets and best.yaml into -o (default: sweep/ in the storyboard's output folder); "
        "an interrupted sweep resumes.",
    )
    add_sweep_arguments(sweep)
    sweep.set_defaults(run=cmd_sweep)

    validate = commands.add_parser("validate", help="check a storyboard without rendering")
    validate.add_argument("storyboard", type=path)
    validate.set_defaults(run=cmd_validate)

    schema = commands.add_parser(
        "schema", help="print the storyboard JSON Schema (for editors: framegen schema > storyboard.schema.json)"
    )
    schema.set_defaults(run=cmd_schema)
    for sub in (render, check):
        sub.add_argument(
            "--github", action="store_true",
            help="print GitHub Actions ::error annotations at failing frames (on by itself when GITHUB_ACTIONS=true)",
        )  # fmt: skip
    for sub in (render, check, report, layers, sweep, validate, schema):
        sub.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help=argparse.SUPPRESS)
    return parser


def add_layers_command(commands) -> argparse.ArgumentParser:
    layers = commands.add_parser("layers", help="list a model's layers: aliases, module paths, channels, grid")
    layers.add_argument("model", type=path, help="tiny-random, demo, a diffusers folder or a hub id")
    layers.add_argument("--width", type=side)
    layers.add_argument("--height", type=side)
    layers.add_argument("--cross-attention", action="store_true", help="only the layers that take text")
    layers.add_argument(
        "--controlnet", action="store_true", help="say which layers carry a ControlNet's conditioning when swapped"
    )
    layers.set_defaults(run=cmd_layers)
    return layers


def prepare_process() -> None:
    """What the libraries under framegen print and write, set before they import."""
    # their log lines (dtype notes, size mismatches before an exception) are not the user's:
    # framegen says what failed in a line of its own
    for name in ("TRANSFORMERS_VERBOSITY", "DIFFUSERS_VERBOSITY", "HF_HUB_VERBOSITY"):
        os.environ.setdefault(name, "critical")
    # torch makes its compile cache folder when diffusers imports it, by default in the temp
    # folder; a command leaves nothing there, so it goes with framegen's own cache
    os.environ.setdefault("TORCHINDUCTOR_CACHE_DIR", str(cache_folder() / "torchinductor"))
    # a path given as bytes that are not UTF-8 is echoed back as it came, not as a crash
    if isinstance(sys.stdout, io.TextIOWrapper):
        sys.stdout.reconfigure(errors="backslashreplace")


def main(argv: list[str] | None = None) -> int:
    prepare_process()
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
        given = list(sys.argv[1:] if argv is None else argv)
        args.argv = given[given.index(args.command) + 1 :]  # for the record in sweep.md
    except SystemExit as exit:  # argparse: usage errors exit 2, --help exits 0
        return int(exit.code or 0)
    previous = (
        signal.signal(signal.SIGTERM, _terminate) if threading.current_thread() is threading.main_thread() else None
    )
    shown = warnings.showwarning
    if not args.debug:
        warnings.showwarning = one_line_warning
    try:
        code = args.run(args)
        sys.stdout.flush()  # a write error (a full disk, a closed pipe) is said here, not at exit
        return code
    except Terminated:
        if args.debug:
            raise
        print("framegen: terminated (SIGTERM); files already written are complete", file=sys.stderr)
        return errors.EXIT_TERMINATED
    except BrokenPipeError:  # the reader of our output went away (`framegen layers demo | head`)
        sys.stdout = open(os.devnull, "w")  # noqa: SIM115 - so that exiting does not fail on the closed pipe
        return EXIT_OK
    except FramegenError as error:
        if args.debug:
            raise
        for line in map(errors.printable, error.lines):
            print(f"framegen: {line}" if not isinstance(error, InvalidInput) else line, file=sys.stderr)
        return error.exit_code
    except KeyboardInterrupt:
        if args.debug:
            raise
        print("framegen: interrupted; files already written are complete", file=sys.stderr)
        return errors.EXIT_INTERRUPTED
    except OSError as error:  # the environment's: a full disk, a folder that went away, a device error
        if args.debug:
            raise
        print(f"framegen: {errors.printable(os_error_line(error))}", file=sys.stderr)
        sys.stdout = open(os.devnull, "w")  # noqa: SIM115 - what could not be written is not tried again at exit
        return EXIT_RUNTIME
    except Exception as error:  # anything else is framegen's bug: said in one line, never as a class name
        if args.debug:
            raise
        message = errors.printable(errors.error_line(error) if str(error).strip() else "no message")
        print(f"framegen: internal error: {message} (run with --debug for the traceback)", file=sys.stderr)
        return EXIT_RUNTIME
    finally:
        warnings.showwarning = shown
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


def os_error_line(error: OSError) -> str:
    """An OSError as the user needs it: what failed, on which file."""
    what = error.strerror or errors.error_line(error)
    return f"{error.filename}: {what}" if error.filename else f"cannot write its output: {what}"


def one_line_warning(message, category, filename, lineno, file=None, line=None) -> None:
    """A library's warning (PIL, the hub, peft) as one framegen line: its first line, no
    source path; with --debug Python's own form is kept."""
    text = str(message).strip().splitlines()[0] if str(message).strip() else category.__name__
    errors.warn(text)


def _terminate(signum, frame):
    raise Terminated()


if __name__ == "__main__":
    sys.exit(main())
