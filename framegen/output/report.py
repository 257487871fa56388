"""report.json: its shape, its checks (limits on background MSE and flicker, failing
closed), and what CI reads of it (the CSV, JUnit XML, GitHub annotations). A frame's
numbers are measured in measure.py; the render writes the report as frames are measured
(run/finish.py).
"""

from __future__ import annotations

import csv
import json
import math
from collections.abc import Iterator
from pathlib import Path
from xml.sax.saxutils import escape as escape_xml
from xml.sax.saxutils import quoteattr

from .. import __version__
from ..errors import EXIT_CHECK_FAILED, EXIT_OK, InvalidInput
from .report_schema import CHECKED_FIELDS, report_problem

CSV_COLUMNS = ["index", "name", "prompt", "image", "background_mse", "foreground_mse", "background_fraction", "flicker",
               "seconds"]  # fmt: skip
LABELS = {"background_mse": "background MSE", "flicker": "flicker"}  # a frame's field -> how a line names it
# check name -> (the frame's field it limits, how a line names it)
CHECKED = {name: (field, LABELS[field]) for name, field in CHECKED_FIELDS.items()}


def measurement(frame: dict, field: str = "background_mse") -> float | str:
    """A frame's background MSE (or its `flicker`) as a finite number, or why it has none. A
    gate fails closed: whatever is not a finite number fails every limit."""
    label = LABELS[field]
    value = frame.get(field, "missing")
    if frame.get("blank"):
        return "blank frame (a single colour: the render produced NaN or nothing)"
    if value is None:
        return "no shared background"
    if value == "missing":
        return f"no {label} in the report"
    if isinstance(value, bool) or not isinstance(value, int | float):
        return f"{label} {json.dumps(value)[:40]} is not a number"
    if not math.isfinite(value) or value < 0:  # a mean of squares is never negative: edited
        return f"{label} {value}"
    return float(value)


class Checks:
    """The checks' verdicts, decided one frame at a time as frames are measured: each
    limit's failing frames, and the entries of every frame that fails one (what failure
    lines and annotations need), so no one holds every frame. A frame whose measure is no
    finite number (no shared background, a blank frame, NaN, a hand-edited value) cannot
    show consistency, so it fails."""

    def __init__(self, max_background_mse: float | None, max_flicker: float | None = None):
        limits = {"max_background_mse": max_background_mse, "max_flicker": max_flicker}
        self.limits = {name: limit for name, limit in limits.items() if limit is not None}
        self.failing: dict[str, list[str]] = {name: [] for name in self.limits}
        self.failing_entries: list[dict] = []
        self.count = 0

    def add(self, frame: dict) -> str:
        """Decide `frame` (the next in video order): "pass", "fail", or "none" with no limits."""
        self.count += 1
        failed = False
        for name, limit in self.limits.items():
            value = measurement(frame, CHECKED[name][0])
            if not isinstance(value, float) or value > limit:
                self.failing[name].append(frame.get("name", f"#{self.count}"))
                failed = True
        if failed:
            self.failing_entries.append(frame)
        return "none" if not self.limits else "fail" if failed else "pass"

    def result(self) -> list[dict]:
        """Each limit given as {name, limit, passed, failing_frames}."""
        return [
            {"name": name, "limit": limit, "passed": not self.failing[name], "failing_frames": self.failing[name]}
            for name, limit in self.limits.items()
        ]


def run_checks(frames: list[dict], max_background_mse: float | None, max_flicker: float | None = None) -> list[dict]:
    """`Checks` of every frame of `frames` at these limits."""
    checks = Checks(max_background_mse, max_flicker)
    for frame in frames:
        checks.add(frame)
    return checks.result()


def failure_lines(report: dict) -> list[str]:
    by_name = {f["name"]: f for f in report["frames"]}
    return [
        f"check failed: {failure_message(by_name[name], check)}"
        for check in report["checks"]
        for name in check["failing_frames"]
    ]


def csv_writer(file) -> csv.DictWriter:
    """report.csv's writer on an open text file, its header written: `.writerow(frame)` per frame."""
    writer = csv.DictWriter(file, fieldnames=CSV_COLUMNS, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    return writer


def failure_message(frame: dict, check: dict) -> str:
    field, label = CHECKED[check["name"]]
    value = measurement(frame, field)
    if isinstance(value, str):
        return f"frame '{frame['name']}': {value}, so it fails {check['name']} {check['limit']}"
    return f"frame '{frame['name']}': {label} {value:.2f} > {check['name']} {check['limit']}"


def junit_xml(report: dict) -> Iterator[str]:
    """JUnit XML in the common form (testsuites > testsuite > testcase), in pieces, one test
    case at a time: one case per (check, frame), named after the frame, its time the frame's
    render time; a failing frame's case has a <failure> naming the frame, its MSE and the
    limit."""
    name = Path(report["storyboard"]["path"]).stem if "storyboard" in report else "framegen"
    frames, checks = report["frames"], report["checks"]
    failures = sum(len(check["failing_frames"]) for check in checks)
    counts = f'tests="{len(checks) * len(frames)}" failures="{failures}" errors="0" skipped="0"'
    seconds = f"{sum(frame['seconds'] for frame in frames):.3f}"
    yield '<?xml version="1.0" encoding="utf-8"?>\n'
    yield f'<testsuites name="framegen" time="{seconds}" {counts}>\n'
    yield f'  <testsuite name={quoteattr(name)} time="{seconds}" {counts}>\n'
    for check in checks:
        failing = set(check["failing_frames"])
        for frame in frames:
            case = f'<testcase classname="framegen.{check["name"]}" name={quoteattr(frame["name"])} ' \
                   f'time="{frame["seconds"]:.3f}"'  # fmt: skip
            if frame["name"] not in failing:
                yield f"    {case} />\n"
                continue
            message = failure_message(frame, check)
            yield f'    {case}>\n      <failure message={quoteattr(message)} type="{check["name"]}">'
            yield f"{escape_xml(frame['image'] + ': ' + message)}</failure>\n    </testcase>\n"
    yield "  </testsuite>\n</testsuites>\n"


def github_annotations(report: dict, frame_line) -> list[str]:
    """GitHub Actions workflow commands, one `::error` per failing frame, pointing at the
    frame's entry in the storyboard: `frame_line(index)` gives (file, line) or None."""
    by_name = {f["name"]: f for f in report["frames"]}
    lines = []
    for check in report["checks"]:
        for name in check["failing_frames"]:
            frame = by_name[name]
            where = frame_line(frame["index"])
            place = f"file={_escape_property(where[0])},line={where[1]}," if where else ""
            lines.append(
                f"::error {place}title=framegen {check['name']}::{_escape_data(failure_message(frame, check))}"
            )
    return lines


def _escape_data(text: str) -> str:
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def _escape_property(text: str) -> str:
    return _escape_data(text).replace(":", "%3A").replace(",", "%2C")


def read_report(path: Path) -> dict:
    """report.json's content; InvalidInput says in one line what is wrong with the file."""
    path = Path(path)
    if path.is_dir():
        path = path / "report.json"
    if not path.is_file():
        raise InvalidInput(f"{path}: no such file; give the report.json of a framegen render")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise InvalidInput(f"{path}: not a framegen report (a binary file, not JSON text)") from None
    except OSError as error:
        raise InvalidInput(f"{path}: cannot be read ({error.strerror or 'unreadable'})") from None
    try:
        report = json.loads(text)
    except json.JSONDecodeError as error:
        cut = error.pos >= len(text.rstrip())
        where = "it ends early: cut short?" if cut else f"not JSON at line {error.lineno}, column {error.colno}"
        raise InvalidInput(f"{path}: not a framegen report ({where})") from None
    except (ValueError, RecursionError):  # a number of thousands of digits, or thousands of levels
        raise InvalidInput(f"{path}: not a framegen report (a number or a nesting too large to read)") from None
    problem = report_problem(report)
    if problem:
        raise InvalidInput(f"{path}: {problem}")
    return report


def recheck(report: dict, max_background_mse: float | None, max_flicker: float | None = None) -> tuple[dict, int]:
    """The report with its checks recomputed at new limits, and the exit code."""
    checked = dict(report, checks=run_checks(report["frames"], max_background_mse, max_flicker))
    return checked, EXIT_OK if all(c["passed"] for c in checked["checks"]) else EXIT_CHECK_FAILED


def report_head(board, size: tuple[int, int], model: dict, segmenter: str, anchor: dict, cache: dict) -> dict:
    """report.json's content down to its frames: the storyboard as resolved (its frames
    dumped one at a time as the report is written), the model, the anchor cache's state
    (`cache`: cache_bytes, cache_entries, anchor_cache) and the anchor's entry."""
    spec = board.spec
    resolved = {
        **spec.model_dump(mode="json", exclude={"frames"}),
        "frames": lambda: (frame.model_dump(mode="json") for frame in spec.frames),
    }
    return {
        "framegen_version": __version__,
        "storyboard": {"path": str(board.path), "resolved": resolved, "width": size[0], "height": size[1]},
        "model": {"id": spec.model.id, **model},
        **cache,
        "segmenter": segmenter,
        "anchor": anchor,
    }


def summary_of(report: dict) -> dict:
    """`report` without its frames, nor the resolved storyboard's: what a render keeps of it."""
    storyboard = report["storyboard"]
    resolved = {key: value for key, value in storyboard["resolved"].items() if key != "frames"}
    return {key: value for key, value in report.items() if key != "frames"} | {
        "storyboard": {**storyboard, "resolved": resolved}
    }
