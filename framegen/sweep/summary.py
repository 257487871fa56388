"""A finished sweep, summarised: sweep.md (tables shaped like the paper's), labelled
contact sheets, and best.yaml (the run to paste into a storyboard)."""

from __future__ import annotations

import re

import yaml
from PIL import Image

from ..output.files import atomic_path, contact_sheet, write_text
from ..storyboard import FramePlan
from .plan import Run, describe
from .run import Sweep, number


def best_run(runs: list[Run], rows: dict[str, dict], min_foreground: float) -> Run | None:
    """The lowest background MSE among runs whose foreground MSE is at least
    `min_foreground` (the edit still happened)."""
    eligible = []
    for run in runs:
        row = rows[run.key]
        background, foreground = number(row["background_mse"]), number(row["foreground_mse"])
        if background is not None and (foreground or 0.0) >= min_foreground:
            eligible.append((background, run))
    return min(eligible, key=lambda pair: pair[0])[1] if eligible else None


def default_min_foreground(runs: list[Run], rows: dict[str, dict]) -> float:
    """Half of the no-swap frame's foreground MSE: a run must keep half the change."""
    baseline = number(rows[runs[0].key]["foreground_mse"])
    return 0.5 * baseline if baseline is not None else 0.0


def best_yaml(run: Run | None, row: dict | None, frame: FramePlan, min_foreground: float) -> str:
    if run is None:
        return (
            f"# no run kept a foreground MSE of at least {min_foreground:.1f} (the edit vanished); "
            "try a lower --min-foreground-mse\nswap: []\n"
        )
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
    lines = [
        header,
        "",
        f"No swap: background MSE {_fmt(baseline['background_mse'])}, "
        f"foreground MSE {_fmt(baseline['foreground_mse'])}.",
        "",
    ]
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
            lines += [f"| layer ({col_names[0]}) | background MSE | foreground MSE |", "|---|---|---|"]
            for r in row_names:
                found = cell[(r, col_names[0])]
                weak = " *" if (number(found["foreground_mse"]) or 0.0) < min_foreground else ""
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
                    weak = (number(found["foreground_mse"]) or 0.0) < min_foreground
                    cells.append(_fmt(found["background_mse"]) + (" *" if weak else ""))
                lines.append(f"| {r} | " + " | ".join(cells) + " |")
            lines.append("")
            lines.append("Cells: background MSE.")
        lines.append("")
    if min_foreground > 0:
        lines.append(
            f"`*`: foreground MSE below {min_foreground:.1f} (half the no-swap frame's unless set): "
            "the edit mostly vanished."
        )
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
    value = number(value)
    return "n/a" if value is None else f"{value:.{digits}f}"


def write_summary(
    sweep: Sweep, rows: dict[str, dict], min_foreground: float | None, header: str
) -> tuple[Run | None, float]:
    runs, out = sweep.runs, sweep.out
    if min_foreground is None:
        min_foreground = default_min_foreground(runs, rows)
    best = best_run(runs, rows, min_foreground)
    write_text(best_yaml(best, rows.get(best.key) if best else None, sweep.frame, min_foreground), out / "best.yaml")
    write_text(tables_markdown(runs, rows, min_foreground, header), out / "sweep.md")

    anchor = Image.open(out / "runs" / "anchor.png")
    baseline = rows[runs[0].key]
    start = [
        ("anchor", anchor),
        (f"no swap\nbg {_fmt(baseline['background_mse'])}", Image.open(out / baseline["image"])),
    ]
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
