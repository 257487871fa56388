"""`framegen sweep`: the paper's search for what to swap, automated for any model.

The paper found its settings by hand for one model (probe each layer alone, then every
subset of the composition layers over a few step ranges, then a mask or threshold
phase). A sweep renders one anchor, caches the union of every run's (layer, step)
pairs once, and renders the chosen frame under each run's rules:

    plan_runs(...)      -> the runs, each a `swap:` block plus its place in a table
    Sweep.run()         -> anchor pass, then every run not already in sweep.csv
    write_summary(...)  -> sweep.md (tables shaped like the paper's), contact sheets,
                           best.yaml (paste into a storyboard; renders the same numbers)

`sweep.csv` gains a row as each run finishes, so an interrupted sweep resumes where it
stopped; rows are keyed by the run's rules and belong to one fingerprint of everything
else that decides the image (model, render settings, prompts, segmenter).
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
import re
import shutil
from dataclasses import dataclass
from pathlib import Path

import yaml
from PIL import Image

from . import __version__
from .assemble import atomic_path, contact_sheet, write_png, write_text
from .automask import AttentionMask
from .errors import InvalidInput
from .cache import DiskCache, choose_cache
from .layers import LayerMap, canonical
from .models import weights_fingerprint
from .render import Renderer, batched
from .report import compare, segmenter_for
from .storyboard import FramePlan, MaskSpec, RulePlan, Storyboard, parse_steps

CSV_COLUMNS = ["key", "table", "row", "col", "rules", "background_mse", "foreground_mse", "background_fraction", "seconds", "image"]
MAX_SUBSET_LAYERS = 10  # 1,023 subsets


@dataclass(frozen=True)
class Run:
    rules: tuple[dict, ...]  # the `swap:` block, as a storyboard writes it
    table: str  # which table of sweep.md holds it ("" for the no-swap baseline)
    row: str
    col: str

    @property
    def key(self) -> str:
        """Stable text of the rules: what sweep.csv rows are matched by on resume."""
        return json.dumps(self.rules, sort_keys=True, separators=(",", ":"))

    @property
    def slug(self) -> str:
        return hashlib.sha1(self.key.encode()).hexdigest()[:12]


# ------------------------------------------------------------------------- arguments


def parse_ranges(text: str, total: int) -> list[tuple[int, int]]:
    """`1-15,1-20,1-25` -> [(1, 15), (1, 20), (1, 25)]: whole-tensor phases."""
    ranges = []
    for piece in text.split(","):
        match = re.fullmatch(r"\s*(\d+)\s*-\s*(\d+)\s*|\s*(\d+)\s*", piece)
        if not match:
            raise InvalidInput(f"--steps: cannot read '{piece.strip()}' (use ranges like 1-15,1-20,1-25)")
        first, last = (int(match[1]), int(match[2])) if match[1] else (int(match[3]), int(match[3]))
        if not 1 <= first <= last <= total:
            raise InvalidInput(f"--steps: range {first}-{last} is not inside 1..{total} (render.steps)")
        ranges.append((first, last))
    return list(dict.fromkeys(ranges))


def parse_thresholds(text: str) -> list[float]:
    """`0.01:0.20:0.01` (start:stop:step, inclusive) or `0.05,0.1,0.13`."""
    try:
        if ":" in text:
            start, stop, step = (float(v) for v in text.split(":"))
            if step <= 0 or stop < start:
                raise ValueError
            count = int(round((stop - start) / step)) + 1
            values = [round(start + i * step, 10) for i in range(count)]
        else:
            values = [float(v) for v in text.split(",")]
    except ValueError:
        raise InvalidInput(f"--thresholds: cannot read '{text}' (use start:stop:step like 0.01:0.20:0.01, or 0.05,0.13)") from None
    if any(v < 0 for v in values):
        raise InvalidInput("--thresholds: thresholds must be >= 0")
    return values


def parse_layers(text: str, layers: LayerMap, option: str) -> list[str]:
    names = [canonical(n) for n in text.split(",") if n.strip()]
    if not names:
        raise InvalidInput(f"{option}: no layers given")
    for name in names:
        if name not in layers:
            raise InvalidInput(f"{option}: unknown layer '{name}' (known: {layers.listing()})")
    return list(dict.fromkeys(names))


def subsets(names: list[str], include_empty: bool) -> list[tuple[str, list[str]]]:
    """Every subset as (bit string, layers); bit i is `names[i]`, counted from 00..01."""
    out = []
    for number in range(0 if include_empty else 1, 2 ** len(names)):
        bits = format(number, f"0{len(names)}b")
        out.append((bits, [n for n, b in zip(names, bits) if b == "1"]))
    return out


# ------------------------------------------------------------------------------ plan


def _full(layers: list[str], first: int, last: int) -> dict:
    return {"mode": "full", "layers": list(layers), "steps": f"{first}-{last}"}


def plan_runs(
    *,
    total_steps: int,
    probe: list[str] | None = None,
    layers: list[str] | None = None,
    ranges: list[tuple[int, int]] = (),
    use_subsets: bool = False,
    then: str | None = None,
    then_layers: list[str] | None = None,
    thresholds: list[float] = (),
    reduce: str = "element",
    relative: bool = False,
    mask: dict | None = None,
) -> list[Run]:
    """The no-swap baseline, then the runs of one protocol:

    - probe: each layer alone, full, at every step;
    - whole: `layers` (or each subset of them) full over each step range;
    - then mask / threshold: `layers` full over each range, then `then_layers` (or each
      subset, the empty one included) by mask or by each threshold for the rest."""
    runs = [Run((), "", "no swap", "")]
    if probe is not None:
        return runs + [Run((_full([n], 1, total_steps),), "probe", n, "all steps") for n in probe]
    for first, last in ranges:
        col = f"{first}-{last}"
        if then is None:
            for bits, chosen in subsets(layers, False) if use_subsets else [("", layers)]:
                runs.append(Run((_full(chosen, first, last),), "whole", bits or "+".join(layers), col))
            continue
        if last >= total_steps:
            raise InvalidInput(f"--then {then}: the phase {col} leaves no later steps (render.steps is {total_steps})")
        later = f"{last + 1}-{total_steps}"
        for bits, chosen in subsets(then_layers, True) if use_subsets else [("", then_layers)]:
            second = {"layers": chosen, "steps": later}
            if then == "mask":
                rules = (_full(layers, first, last),) + (({"mode": "mask", **second, "mask": mask},) if chosen else ())
                runs.append(Run(rules, "mask", bits or "+".join(then_layers), col))
            else:
                for threshold in thresholds:
                    rule = {"mode": "threshold", **second, "threshold": threshold}
                    if reduce != "element":
                        rule["reduce"] = reduce
                    if relative:
                        rule["relative"] = True
                    rules = (_full(layers, first, last),) + ((rule,) if chosen else ())
                    table = f"threshold {bits}" if bits else "threshold"
                    runs.append(Run(rules, table, f"{threshold:g}", col))
    return list({run.key: run for run in runs}.values())  # the empty subset repeats per threshold


def rule_plans(run: Run, total_steps: int) -> list[RulePlan]:
    plans = []
    for i, rule in enumerate(run.rules):
        plans.append(
            RulePlan(
                mode=rule["mode"],
                layers=tuple(rule["layers"]),
                steps=parse_steps(rule["steps"], total_steps),
                where=f"sweep.run.swap[{i}]",
                threshold=rule.get("threshold"),
                reduce=rule.get("reduce", "element"),
                relative=rule.get("relative", False),
                mask=MaskSpec(**rule["mask"]) if rule["mode"] == "mask" else None,
            )
        )
    return plans


# --------------------------------------------------------------------------- results


def fingerprint(board: Storyboard, frame: FramePlan, mask: dict | None) -> str:
    """Everything besides the rules that decides a run's image and score."""
    spec = board.spec
    render = spec.render.model_dump(exclude={"cache"})
    decided = {
        "model": spec.model.model_dump(),
        "weights": weights_fingerprint(spec.model),
        "render": render,
        "anchor": spec.anchor.prompt,
        "frame": frame.prompt,
        "background": spec.report.background.model_dump(),
        "mask": mask,
    }
    if mask and mask.get("image"):
        decided["mask_bytes"] = hashlib.sha1((board.path.parent / mask["image"]).read_bytes()).hexdigest()
    return hashlib.sha1(json.dumps(decided, sort_keys=True).encode()).hexdigest()[:16]


def read_rows(path: Path) -> dict[str, dict]:
    """The finished rows of sweep.csv by key; a row cut short by a kill is dropped."""
    if not path.exists():
        return {}
    rows = {}
    text = path.read_text(encoding="utf-8")
    complete = text if text.endswith("\n") else text[: text.rfind("\n") + 1]
    for row in csv.DictReader(io.StringIO(complete)):
        if None in row or any(row.get(c) is None for c in CSV_COLUMNS):
            continue
        rows[row["key"]] = row
    return rows


def _csv_line(row: dict) -> str:
    buffer = io.StringIO()
    csv.DictWriter(buffer, fieldnames=CSV_COLUMNS, lineterminator="\n").writerow({k: "" if v is None else v for k, v in row.items()})
    return buffer.getvalue()


def _number(value) -> float | None:
    return None if value in (None, "", "None") else float(value)


# -------------------------------------------------------------------------------- run


class Sweep:
    def __init__(self, board: Storyboard, frame: FramePlan, runs: list[Run], out: Path, cache: str = "auto", pipe=None, batch: int = 1):
        self.board, self.frame, self.runs, self.out = board, frame, runs, out
        self.batch = batch  # runs per U-Net batch: faster, but then within one 8-bit level of a render
        self.cache_mode = cache
        self.pipe = pipe
        masks = [rule["mask"] for run in runs for rule in run.rules if rule["mode"] == "mask"]
        self.fingerprint = fingerprint(board, frame, masks[0] if masks else None)

    def _check_folder(self) -> dict[str, dict]:
        """Finished rows from an earlier run of this sweep; refuse another sweep's folder."""
        meta_path = self.out / "sweep.json"
        if meta_path.exists():
            earlier = json.loads(meta_path.read_text(encoding="utf-8")).get("fingerprint")
            if earlier != self.fingerprint:
                raise InvalidInput(
                    f"{self.out}: holds a sweep of other settings (model, render settings, prompts, mask or "
                    "segmenter changed); pass another -o or delete that folder"
                )
        rows = read_rows(self.out / "sweep.csv")
        self.out.mkdir(parents=True, exist_ok=True)
        write_text(json.dumps({"fingerprint": self.fingerprint, "framegen_version": __version__}, indent=2) + "\n", meta_path)
        # rewrite without a row cut short by a kill, so appends start on a fresh line
        write_text("".join([",".join(CSV_COLUMNS) + "\n"] + [_csv_line(r) for r in rows.values()]), self.out / "sweep.csv")
        return rows

    def run(self, progress=None, log=print) -> dict[str, dict]:
        """Render every run not yet in sweep.csv; return all rows by key."""
        rows = self._check_folder()
        todo = [run for run in self.runs if run.key not in rows]
        log(f"sweep: {len(self.runs)} runs, {len(self.runs) - len(todo)} already done, {len(todo)} to render")
        if not todo:
            return rows
        renderer = Renderer(self.board, self.pipe)
        total = renderer.steps
        rules = {run.key: renderer.swap_rules(rule_plans(run, total), self.frame) for run in todo}
        needed = set().union(*({(layer, step) for r in rs for layer in r.layers for step in r.steps} for rs in rules.values()))
        renderer.cache = choose_cache(renderer, needed, self.cache_mode, self.out / "anchor-cache")
        segmenter = segmenter_for(self.board.spec.report.background, self.board.spec.model.id, self.board.path.parent)

        if progress is not None:
            progress.image("anchor", total)
        try:
            anchor = renderer.anchor(progress.step if progress is not None else None)
            log(f"anchor cache: {renderer.cache.nbytes:,} bytes for {len(needed)} (layer, step) pairs, in {renderer.cache.where} ({renderer.device})")
            write_png(anchor, self.out / "runs" / "anchor.png")
            anchor_person = segmenter.person(anchor)
            with open(self.out / "sweep.csv", "a", encoding="utf-8") as table:
                for group in run_batches(todo, rules, self.batch):
                    if progress is not None:
                        progress.image(group[0].row[:16] or "no swap", total, len(group))
                    step = progress.step if progress is not None else None
                    results = renderer.frames([self.frame] * len(group), step, [rules[run.key] for run in group])
                    for run, result in zip(group, results):
                        image = f"runs/{run.slug}.png"
                        write_png(result.image, self.out / image)
                        scores = compare(anchor, result.image, anchor_person, segmenter.person(result.image))
                        row = {
                            "key": run.key, "table": run.table, "row": run.row, "col": run.col,
                            "rules": describe(run), **scores, "seconds": round(result.seconds, 3), "image": image,
                        }  # fmt: skip
                        table.write(_csv_line(row))
                        table.flush()
                        os.fsync(table.fileno())
                        rows[run.key] = {k: "" if v is None else str(v) for k, v in row.items()}  # as read back
        finally:
            renderer.cache.clear()
            if isinstance(renderer.cache, DiskCache):
                shutil.rmtree(renderer.cache.folder, ignore_errors=True)
        return rows


def run_batches(runs: list[Run], rules: dict, size: int) -> list[list[Run]]:
    """Runs in groups of `render.batch` (one U-Net batch each); attention-mask runs alone."""
    return batched(runs, size, alone=lambda run: any(isinstance(rule.mask, AttentionMask) for rule in rules[run.key]))


def describe(run: Run) -> str:
    """`full OUT3+OUT4 1-20; mask OUT3+OUT5 21-50` — a run's rules on one line."""
    parts = []
    for rule in run.rules:
        text = f"{rule['mode']} {'+'.join(rule['layers'])} {rule['steps']}"
        if rule["mode"] == "threshold":
            text += f" < {rule['threshold']:g}" + (" relative" if rule.get("relative") else "") + (f" ({rule['reduce']})" if "reduce" in rule else "")
        parts.append(text)
    return "; ".join(parts) or "no swap"


# ---------------------------------------------------------------------------- summary


def best_run(runs: list[Run], rows: dict[str, dict], min_foreground: float) -> Run | None:
    """The lowest background MSE among runs whose foreground MSE is at least
    `min_foreground` (the edit still happened)."""
    eligible = []
    for run in runs:
        row = rows[run.key]
        background, foreground = _number(row["background_mse"]), _number(row["foreground_mse"])
        if background is not None and (foreground or 0.0) >= min_foreground:
            eligible.append((background, run))
    return min(eligible, key=lambda pair: pair[0])[1] if eligible else None


def default_min_foreground(runs: list[Run], rows: dict[str, dict]) -> float:
    """Half of the no-swap frame's foreground MSE: a run must keep half the change."""
    baseline = _number(rows[runs[0].key]["foreground_mse"])
    return 0.5 * baseline if baseline is not None else 0.0


def best_yaml(run: Run | None, row: dict | None, frame: FramePlan, min_foreground: float) -> str:
    if run is None:
        return f"# no run kept a foreground MSE of at least {min_foreground:.1f} (the edit vanished); try a lower --min-foreground-mse\nswap: []\n"
    header = (
        f"# framegen sweep: best run for frame '{frame.name}' ({describe(run)})\n"
        f"# background MSE {_fmt(row['background_mse'], 2)}, foreground MSE {_fmt(row['foreground_mse'], 2)} "
        f"(runs needed foreground MSE >= {min_foreground:.1f}). Paste into the storyboard, at the top\n"
        "# level (every frame's default) or under a frame.\n"
    )
    flow = [yaml.safe_dump(rule, default_flow_style=True, sort_keys=False, width=1000).strip() for rule in run.rules]
    return header + "swap:" + ("".join(f"\n  - {rule}" for rule in flow) if flow else " []") + "\n"


def tables_markdown(runs: list[Run], rows: dict[str, dict], min_foreground: float, header: str) -> str:
    baseline = rows[runs[0].key]
    lines = [header, "", f"No swap: background MSE {_fmt(baseline['background_mse'])}, foreground MSE {_fmt(baseline['foreground_mse'])}.", ""]
    tables: dict[str, list[Run]] = {}
    for run in runs[1:]:
        tables.setdefault(run.table, []).append(run)
    for name, members in tables.items():
        row_names = list(dict.fromkeys(r.row for r in members))
        col_names = list(dict.fromkeys(r.col for r in members))
        cell = {(r.row, r.col): rows[r.key] for r in members}
        lines.append(f"### {name}")
        lines.append("")
        if name == "probe":
            lines += ["| layer | background MSE | foreground MSE |", "|---|---|---|"]
            for r in row_names:
                found = cell[(r, col_names[0])]
                weak = " *" if (_number(found["foreground_mse"]) or 0.0) < min_foreground else ""
                lines.append(f"| {r} | {_fmt(found['background_mse'])}{weak} | {_fmt(found['foreground_mse'])} |")
        else:
            first = _row_heading(name, members)
            lines.append(f"| {first} | " + " | ".join(f"steps {c}" for c in col_names) + " |")
            lines.append("|---" * (len(col_names) + 1) + "|")
            for r in row_names:
                cells = []
                for c in col_names:
                    found = cell.get((r, c))
                    if found is None:
                        cells.append("")
                        continue
                    weak = (_number(found["foreground_mse"]) or 0.0) < min_foreground
                    cells.append(_fmt(found["background_mse"]) + (" *" if weak else ""))
                lines.append(f"| {r} | " + " | ".join(cells) + " |")
            lines.append("")
            lines.append("Cells: background MSE.")
        lines.append("")
    if min_foreground > 0:
        lines.append(f"`*`: foreground MSE below {min_foreground:.1f} (half the no-swap frame's unless set): the edit mostly vanished.")
    return "\n".join(lines) + "\n"


def _row_heading(table: str, members: list[Run]) -> str:
    if table.startswith("threshold"):
        return "threshold"
    if re.fullmatch(r"[01]+", members[0].row):
        return "subset (bits: " + ", ".join(_subset_order(members)) + ")"
    return "layers"


def _subset_order(members: list[Run]) -> list[str]:
    """The layer for each bit, read back from the runs' rules."""
    names: list[str] = []
    for run in members:
        last = run.rules[-1]["layers"] if run.rules else []
        if run.row.count("1") == 1 and len(last) == 1:
            names.append((run.row.index("1"), last[0]))
    return [n for _, n in sorted(set(names))]


def _fmt(value, digits: int = 1) -> str:
    number = _number(value)
    return "n/a" if number is None else f"{number:.{digits}f}"


def write_summary(sweep: Sweep, rows: dict[str, dict], min_foreground: float | None, header: str) -> tuple[Run | None, float]:
    runs, out = sweep.runs, sweep.out
    if min_foreground is None:
        min_foreground = default_min_foreground(runs, rows)
    best = best_run(runs, rows, min_foreground)
    write_text(best_yaml(best, rows.get(best.key) if best else None, sweep.frame, min_foreground), out / "best.yaml")
    write_text(tables_markdown(runs, rows, min_foreground, header), out / "sweep.md")

    anchor = Image.open(out / "runs" / "anchor.png")
    baseline = rows[runs[0].key]
    start = [("anchor", anchor), (f"no swap\nbg {_fmt(baseline['background_mse'])}", Image.open(out / baseline["image"]))]
    tables: dict[str, list[Run]] = {}
    for run in runs[1:]:
        tables.setdefault(run.table, []).append(run)
    for name, members in tables.items():
        tiles = list(start)
        for run in members:
            row = rows[run.key]
            label = f"{run.row} {run.col}".strip()
            tiles.append((f"{label[:24]}\nbg {_fmt(row['background_mse'])}", Image.open(out / row["image"])))
        sheet = contact_sheet(tiles, columns=min(8, len(tiles)), tile_width=128)
        slug = re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")
        with atomic_path(out / f"sheet-{slug}.png") as temporary:
            sheet.save(temporary, format="PNG")
    return best, min_foreground


# --------------------------------------------------------------------------- command


def pick_frame(board: Storyboard, name: str | None) -> FramePlan:
    if name is None:
        return board.frames[0]
    for frame in board.frames:
        if frame.name == name:
            return frame
    raise InvalidInput(f"--frame: no frame named '{name}' (frames: {', '.join(f.name for f in board.frames)})")


def layer_map(board: Storyboard) -> tuple[LayerMap, object]:
    """The model's layers, from its config alone when it can be read without weights
    (so bad arguments fail fast), else from the loaded pipeline; and the pipeline if
    it was loaded."""
    from .models import configs_offline, configs_online, is_hub_id, load_pipeline

    model = board.spec.model
    configs = configs_offline(model.id)
    if configs is None and is_hub_id(model.id):
        try:
            configs = configs_online(model.id, model.revision)
        except Exception:  # offline: find out once the weights load
            configs = None
    if configs is not None:
        return LayerMap(configs[0]), None
    pipe = load_pipeline(model)
    return LayerMap.of(pipe.unet), pipe


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
        if rule.mode == "mask":
            return rule.mask.model_dump(exclude_unset=True)
    return None


def plan_from_args(args, board: Storyboard, frame: FramePlan, layers: LayerMap) -> list[Run]:
    total = board.spec.render.steps
    if args.then is None and (args.then_layers or args.thresholds or args.mask or args.relative):
        raise InvalidInput("--then-layers, --thresholds, --relative and --mask belong to a second phase: add --then mask or --then threshold")
    if args.probe:
        if args.then or args.subsets or args.steps:
            raise InvalidInput("--probe swaps each layer alone at every step: drop --steps, --subsets and --then")
        names = (
            parse_layers(args.layers, layers, "--layers")
            if args.layers
            else [layer.name for layer in layers.cross_attention_layers()]
        )
        return plan_runs(total_steps=total, probe=names)
    if not args.layers:
        raise InvalidInput("give --probe, or --layers (with --steps) for whole-tensor runs")
    names = parse_layers(args.layers, layers, "--layers")
    ranges = parse_ranges(args.steps or f"1-{max(1, round(0.4 * total))}", total)
    then_layers = parse_layers(args.then_layers, layers, "--then-layers") if args.then_layers else names
    searched = then_layers if args.then else names
    if args.subsets and len(searched) > MAX_SUBSET_LAYERS:
        raise InvalidInput(f"--subsets: {len(searched)} layers make {2 ** len(searched) - 1:,} runs; give at most {MAX_SUBSET_LAYERS}")
    mask = None
    if args.then == "mask":
        mask = frame_mask(board, frame, args.mask)
        if mask is None:
            raise InvalidInput(f"--then mask: give --mask FILE (white = keep the anchor) or a mask rule in frame '{frame.name}'")
    thresholds = parse_thresholds(args.thresholds or "0.01:0.20:0.01") if args.then == "threshold" else []
    return plan_runs(
        total_steps=total, layers=names, ranges=ranges, use_subsets=args.subsets, then=args.then,
        then_layers=then_layers, thresholds=thresholds, reduce=args.reduce, relative=args.relative, mask=mask,
    )  # fmt: skip
