"""`framegen sweep`: its arguments, and the command that plans, runs and summarises a sweep."""

from __future__ import annotations

import math
import os
import shlex
import time
from pathlib import Path

from ..engine.layers import LayerMap, UnknownLayer, canonical
from ..errors import EXIT_OK, InvalidInput
from ..models.facts import configs_before_loading, facts_of
from ..models.load import load_pipeline
from ..storyboard import FramePlan, Storyboard, load_storyboard, mask_as_written, step_ranges
from .arguments import batch, limit, path
from .progress import RichProgress, quiet_libraries, show_progress

MAX_SUBSET_LAYERS = 10  # 1,023 subsets
MAX_THRESHOLDS = 1000


def add_arguments(sweep) -> None:
    add_phase_arguments(sweep)
    sweep.add_argument(
        "--cache",
        choices=["auto", "device", "cpu", "disk"],
        default="auto",
        help="where the anchor cache lives (auto: device, else host memory, else disk)",
    )
    sweep.add_argument(
        "--batch",
        type=batch,
        default=1,
        metavar="N",
        help="runs per U-Net batch: faster; numbers then match a render within one 8-bit level, not exactly",
    )
    sweep.add_argument("-o", "--output", type=path, help="output folder")
    sweep.add_argument("-q", "--quiet", action="store_true", help="no progress bar, no summary lines")
    sweep.add_argument("--progress", action="store_true", help="progress bars on stderr, also off a terminal")


def add_phase_arguments(sweep) -> None:
    """What the sweep searches: the frame, the probe or the phases, and how best.yaml is chosen."""
    sweep.add_argument("storyboard", type=path)
    sweep.add_argument("--frame", metavar="NAME", help="the frame whose prompt is the edit (default: the first)")
    sweep.add_argument(
        "--probe",
        action="store_true",
        help="swap each layer alone at every step, or over one --steps range (default layers: every "
        "cross-attention layer); a transformer's blocks each carry the whole image, so give it early steps",
    )
    sweep.add_argument("--kv", action="store_true", help="with --probe: each layer's attention keys and values")
    sweep.add_argument("--layers", metavar="L,L", help="layers of the whole-tensor phase (or the probe's candidates)")
    sweep.add_argument(
        "--subsets",
        action="store_true",
        help="every non-empty subset of the searched layers (--then-layers when --then is given)",
    )
    sweep.add_argument(
        "--steps", metavar="RANGES", help="whole-tensor step ranges, e.g. 1-15,1-20,1-25 (default: the first 40%%)"
    )
    sweep.add_argument("--then", choices=["mask", "threshold"], help="a second phase on the steps after each range")
    sweep.add_argument("--then-layers", metavar="L,L", help="the second phase's layers (default: --layers)")
    sweep.add_argument(
        "--thresholds",
        metavar="A:B:S",
        help="thresholds for --then threshold: start:stop:step or a list (default 0.01:0.20:0.01)",
    )
    sweep.add_argument(
        "--reduce",
        choices=["element", "position"],
        default="element",
        help="threshold per element (default) or per position",
    )
    sweep.add_argument(
        "--relative",
        action="store_true",
        help="thresholds as fractions of the anchor tensor's mean |value| (see swap rules)",
    )
    sweep.add_argument(
        "--mask",
        type=path,
        metavar="FILE",
        help="region for --then mask: an image (white = keep the anchor), auto:attention or auto:noise "
        "(default: the frame's mask rule)",
    )
    sweep.add_argument(
        "--min-foreground-mse",
        type=limit,
        metavar="X",
        help="best.yaml only considers runs whose foreground MSE is at least X (default: half the no-swap frame's)",
    )


def cmd_sweep(args) -> int:
    from ..sweep import Sweep, write_summary

    quiet_libraries()
    board = load_storyboard(args.storyboard)
    frame = pick_frame(board, args.frame)
    config, pipe = model_config(board)
    board.check_model(config)  # the storyboard against what the model is, as a render checks it
    layers = config.layers
    runs = plan_from_args(args, board, frame, layers)
    out = Path(args.output) if args.output else board.output_dir / "sweep"
    sweep = Sweep(
        board,
        frame,
        runs,
        out,
        cache=args.cache,
        pipe=pipe
        if pipe is not None
        else load_pipeline(board.spec.model, image_anchor=board.spec.anchor.image is not None),
        batch=args.batch,
    )
    start = time.perf_counter()
    say = (lambda line: None) if args.quiet else print
    if show_progress(args):
        with RichProgress(len(runs) + 1) as progress:
            rows = sweep.run(progress, log=say)
    else:
        rows = sweep.run(log=say)
    spec = board.spec
    header = (
        f"# framegen sweep: {spec.model.id}, frame '{frame.name}'\n\n"
        f"`framegen sweep {shlex.join(args.argv)}`\n\n"
        f"Anchor: `{spec.anchor.prompt}`; frame: `{frame.prompt}`. {spec.render.steps} steps, guidance "
        f"{spec.render.guidance:g}, seed {spec.render.seed}; {len(runs)} runs."
    )
    best, min_foreground = write_summary(sweep, rows, args.min_foreground_mse, header)
    seconds = time.perf_counter() - start
    chosen = (
        "none kept the edit"
        if best is None
        else f"{rows[best.key]['rules']} (background MSE {float(rows[best.key]['background_mse']):.2f})"
    )
    print(f"wrote {out}/ (sweep.csv, sweep.md, best.yaml, sheets) in {seconds:.0f} s; best: {chosen}")
    return EXIT_OK


def parse_ranges(text: str, total: int) -> list[tuple[int, int]]:
    """`1-15,1-20,1-25` -> [(1, 15), (1, 20), (1, 25)]: whole-tensor phases."""
    ranges = []
    for piece in text.split(","):
        try:
            ((first, last),) = step_ranges(piece)  # the storyboard's own grammar, one range per piece
        except ValueError:
            raise InvalidInput(f"--steps: cannot read '{piece.strip()}' (use ranges like 1-15,1-20,1-25)") from None
        if not 1 <= first <= last <= total:
            raise InvalidInput(f"--steps: range {first}-{last} is not inside 1..{total} (render.steps)")
        ranges.append((first, last))
    return list(dict.fromkeys(ranges))


def parse_thresholds(text: str) -> list[float]:
    """`0.01:0.20:0.01` (start:stop:step, inclusive) or `0.05,0.1,0.13`."""
    try:
        if ":" in text:
            start, stop, step = (float(v) for v in text.split(":"))
            if not all(map(math.isfinite, (start, stop, step))) or step <= 0 or stop < start:
                raise ValueError
            count = int(round((stop - start) / step)) + 1
            if count > MAX_THRESHOLDS:
                raise InvalidInput(f"--thresholds: '{text}' makes {count:,} runs; give at most {MAX_THRESHOLDS}")
            values = [round(start + i * step, 10) for i in range(count)]
        else:
            values = [float(v) for v in text.split(",")]
            if not all(map(math.isfinite, values)) or len(values) > MAX_THRESHOLDS:
                raise ValueError
    except (ValueError, OverflowError):
        raise InvalidInput(
            f"--thresholds: cannot read '{text}' (use start:stop:step like 0.01:0.20:0.01, or 0.05,0.13)"
        ) from None
    if any(v < 0 for v in values):
        raise InvalidInput("--thresholds: thresholds must be >= 0")
    return values


def parse_layers(text: str, layers: LayerMap, option: str, kv: bool = False) -> list[str]:
    """Layer names as a storyboard's rules take them; with `kv`, each one with an attention."""
    names = [canonical(n) for n in text.split(",") if n.strip()]
    if not names:
        raise InvalidInput(f"{option}: no layers given")
    for name in names:
        if name not in layers and not layers.may_hold(name):
            raise InvalidInput(f"{option}: unknown layer '{name}' (known: {layers.listing()})")
        if kv and name in layers:  # a path inside a block is checked once the model loads
            try:
                layers.kv_paths(name)
            except UnknownLayer as error:
                raise InvalidInput(f"{option}: {error}") from None
    return list(dict.fromkeys(names))


def pick_frame(board: Storyboard, name: str | None) -> FramePlan:
    if name is None:
        return board.frames[0]
    for frame in board.frames:
        if frame.name == name:
            return frame
    raise InvalidInput(f"--frame: no frame named '{name}' (frames: {', '.join(f.name for f in board.frames)})")


def has_image_anchor(board: Storyboard) -> bool:
    return board.spec.anchor.image is not None


def model_config(board: Storyboard):
    """The model's ModelConfig, from its files alone when they can be read without weights
    (so bad arguments fail fast), else from the loaded pipeline; and the pipeline if it was
    loaded."""
    config = configs_before_loading(board.spec.model)
    if config is not None:
        return config, None
    pipe = load_pipeline(board.spec.model, image_anchor=has_image_anchor(board))
    return facts_of(pipe).config, pipe


def frame_mask(board: Storyboard, frame: FramePlan, mask_file: str | None) -> dict | None:
    """The second phase's region: `--mask FILE` (white = keep the anchor) or
    `auto:attention` / `auto:noise`, else the first mask rule the frame renders with."""
    if mask_file in ("auto:attention", "auto:noise"):
        return {"auto": mask_file.split(":")[1]}
    if mask_file is not None:
        path = Path(mask_file)
        if not path.is_file():
            raise InvalidInput(f"--mask: no such file '{mask_file}'")
        return {"image": os.path.relpath(path.resolve(), board.path.parent.resolve())}
    for rule in frame.rules:
        if rule.mask is not None:
            return mask_as_written(rule.mask, board.folder)
    return None


def plan_from_args(args, board: Storyboard, frame: FramePlan, layers: LayerMap) -> list:
    from ..sweep import plan_runs

    total = board.spec.render.steps
    if args.then is None and (args.then_layers or args.thresholds or args.mask or args.relative):
        raise InvalidInput(
            "--then-layers, --thresholds, --relative and --mask belong to a second phase: "
            "add --then mask or --then threshold"
        )
    if args.kv and not args.probe:
        raise InvalidInput("--kv belongs to --probe")
    if args.probe:
        ranges = parse_ranges(args.steps, total) if args.steps else [(1, total)]
        if args.then or args.subsets or len(ranges) > 1:
            raise InvalidInput("--probe swaps each layer alone over one step range: drop --subsets and --then")
        names = (
            parse_layers(args.layers, layers, "--layers", kv=args.kv)
            if args.layers
            else [layer.name for layer in layers.cross_attention_layers()]
        )
        mode = "kv" if args.kv else "full"
        return plan_runs(total_steps=total, probe=names, probe_mode=mode, probe_steps=ranges[0])
    if not args.layers:
        raise InvalidInput("give --probe, or --layers (with --steps) for whole-tensor runs")
    names = parse_layers(args.layers, layers, "--layers")
    ranges = parse_ranges(args.steps or f"1-{max(1, round(0.4 * total))}", total)
    then_layers = parse_layers(args.then_layers, layers, "--then-layers") if args.then_layers else names
    searched = then_layers if args.then else names
    if args.subsets and len(searched) > MAX_SUBSET_LAYERS:
        raise InvalidInput(
            f"--subsets: {len(searched)} layers make {2 ** len(searched) - 1:,} runs; give at most {MAX_SUBSET_LAYERS}"
        )
    mask = None
    if args.then == "mask":
        mask = frame_mask(board, frame, args.mask)
        if mask is None:
            raise InvalidInput(
                f"--then mask: give --mask FILE (white = keep the anchor) or a mask rule in frame '{frame.name}'"
            )
    thresholds = parse_thresholds(args.thresholds or "0.01:0.20:0.01") if args.then == "threshold" else []
    return plan_runs(
        total_steps=total, layers=names, ranges=ranges, use_subsets=args.subsets, then=args.then,
        then_layers=then_layers, thresholds=thresholds, reduce=args.reduce, relative=args.relative, mask=mask,
    )  # fmt: skip
