"""Running a sweep: one anchor pass caching the union of every run's (layer, step)
pairs, then the frame under each run's rules, a row appended to sweep.csv as each run
finishes, so an interrupted sweep resumes where it stopped. Rows belong to one
fingerprint of everything else that decides the image: the frame's key without its
rules, from the same identity a render keys its shots with (run/identity.py)."""

from __future__ import annotations

import csv
import io
import json
import os
from pathlib import Path

from .. import __version__
from ..engine.placement import cache_bytes, choose_cache
from ..engine.swap import needed_pairs
from ..errors import InvalidInput
from ..models.facts import facts_of
from ..models.load import set_lora_scales
from ..output.files import write_png, write_text
from ..output.folder import OutputFolder
from ..output.measure import compare
from ..output.segmenters import segmenter_for
from ..run.anchor import render_anchor
from ..run.identity import Identity
from ..run.prepare import prepare
from ..run.render import batched
from ..run.rules import alone
from ..run.shots import frame_shot
from ..storyboard import FramePlan, Storyboard
from .plan import Run, describe, run_specs

SWEEP_FILES = ("sweep.csv", "sweep.md", "best.yaml")  # a folder holding these without sweep.json is not framegen's
CSV_COLUMNS = [
    "key",
    "table",
    "row",
    "col",
    "rules",
    "background_mse",
    "foreground_mse",
    "background_fraction",
    "seconds",
    "image",
]


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
    csv.DictWriter(buffer, fieldnames=CSV_COLUMNS, lineterminator="\n").writerow(
        {k: "" if v is None else v for k, v in row.items()}
    )
    return buffer.getvalue()


def number(value) -> float | None:
    return None if value in (None, "", "None") else float(value)


def sweep_fingerprint(board: Storyboard, frame: FramePlan, runs: list[Run], facts) -> str:
    """Everything but a run's rules that decides its image and score: the frame's key with
    no rules, and the masks the runs use, by content (run/identity.py)."""
    masks = [spec for run in runs for spec in run_specs(run, board) if spec.mask is not None]
    return Identity(board, facts).sweep(frame_shot(frame), masks)


class Sweep:
    def __init__(
        self,
        board: Storyboard,
        frame: FramePlan,
        runs: list[Run],
        out: Path,
        cache: str = "auto",
        pipe=None,
        batch: int = 1,
    ):
        self.board, self.frame, self.runs, self.out = board, frame, runs, out
        self.batch = batch  # runs per U-Net batch: faster, but then within one 8-bit level of a render
        self.cache_mode = cache
        self.pipe = pipe
        self.shot = frame_shot(frame)
        self.fingerprint = sweep_fingerprint(board, frame, runs, facts_of(pipe))

    def _check_folder(self) -> dict[str, dict]:
        """Finished rows from an earlier run of this sweep; refuse another sweep's folder."""
        meta_path = self.out / "sweep.json"
        foreign = [name for name in SWEEP_FILES if (self.out / name).exists()]
        if not meta_path.exists() and foreign:
            raise InvalidInput(
                f"{self.out}: {', '.join(foreign)} would be replaced but no framegen sweep wrote this folder "
                "(it has no sweep.json); pass another -o"
            )
        if meta_path.exists():
            try:
                earlier = json.loads(meta_path.read_text(encoding="utf-8")).get("fingerprint")
            except (ValueError, AttributeError):
                earlier = None
            if earlier != self.fingerprint:
                raise InvalidInput(
                    f"{self.out}: holds a sweep of other settings (model, render settings, prompts, mask or "
                    "segmenter changed); pass another -o or delete that folder"
                )
        rows = read_rows(self.out / "sweep.csv")
        self.out.mkdir(parents=True, exist_ok=True)
        write_text(
            json.dumps({"fingerprint": self.fingerprint, "framegen_version": __version__}, indent=2) + "\n", meta_path
        )
        # rewrite without a row cut short by a kill, so appends start on a fresh line
        write_text(
            "".join([",".join(CSV_COLUMNS) + "\n"] + [_csv_line(r) for r in rows.values()]), self.out / "sweep.csv"
        )
        return rows

    def run(self, progress=None, log=print) -> dict[str, dict]:
        """Render every run not yet in sweep.csv; return all rows by key."""
        with OutputFolder(self.out).open():  # one sweep at a time; a killed one's temporary files go
            return self._run(progress, log)

    def _run(self, progress, log) -> dict[str, dict]:
        rows = self._check_folder()
        todo = [run for run in self.runs if run.key not in rows]
        log(f"sweep: {len(self.runs)} runs, {len(self.runs) - len(todo)} already done, {len(todo)} to render")
        if not todo:
            return rows
        prepared = prepare(self.board, self.pipe, shots=[])
        settings, step = prepared.settings, progress.step if progress is not None else None
        rules = {run.key: prepared.compile(run_specs(run, self.board), self.shot) for run in todo}
        needed = set().union(*(needed_pairs(compiled) for compiled in rules.values()))
        size = cache_bytes(self.pipe, needed, settings.width, settings.height, settings.steps, settings.guidance)
        cache = choose_cache(self.cache_mode, needed, self.pipe.device, self.out / "anchor-cache", size)
        renderer = prepared.renderer(cache)
        segmenter = segmenter_for(self.board.spec.report.background, self.board.spec.model.id, self.board.folder)

        announce = (lambda name: progress.image(name, settings.steps)) if progress is not None else None
        try:
            set_lora_scales(self.pipe, self.board.lora)  # the anchor's scales, then the frame's (as a render)
            anchor = render_anchor(prepared, renderer, step, announce)
            set_lora_scales(self.pipe, self.shot.lora)
            where = f"{cache.where} ({self.pipe.device})"
            log(f"anchor cache: {cache.nbytes:,} bytes for {len(needed)} (layer, step) pairs, in {where}")
            write_png(anchor, self.out / "runs" / "anchor.png")
            reference = prepared.anchor_image if prepared.anchor_image is not None else anchor  # what should stay
            anchor_person = segmenter.person(reference)
            control = prepared.conditioning.control(self.shot)
            with open(self.out / "sweep.csv", "a", encoding="utf-8") as table:
                for group in batched(todo, self.batch, alone=lambda run: alone(rules[run.key])):
                    if progress is not None:
                        progress.image(group[0].row[:16] or "no swap", settings.steps, len(group))
                    shots = [(self.shot.prompt, rules[run.key]) for run in group]
                    results = renderer.frames(shots, step, [control] * len(group) if control else None)
                    for run, result in zip(group, results):
                        image = f"runs/{run.slug}.png"
                        write_png(result.image, self.out / image)
                        scores = compare(reference, result.image, anchor_person, segmenter.person(result.image))
                        row = {
                            "key": run.key, "table": run.table, "row": run.row, "col": run.col,
                            "rules": describe(run), **scores, "seconds": round(result.seconds, 3), "image": image,
                        }  # fmt: skip
                        table.write(_csv_line(row))
                        table.flush()
                        os.fsync(table.fileno())
                        rows[run.key] = {k: "" if v is None else str(v) for k, v in row.items()}  # as read back
        finally:
            cache.clear()  # a disk cache deletes its own files, and its folder once empty
        return rows
