"""Consistency report: background MSE of each frame against the anchor, flicker, and checks.

Background is what the segmenter does not call the person. `background_mse` is the
mean squared error over RGB on the 0-255 scale over pixels that are background in
both the anchor and the frame (the paper's metric); `foreground_mse` is the same over
the other pixels, which shows that the edit happened. `flicker` is the background MSE
between a frame and the video frame before it (the anchor for the first; in-betweens in
their place; a held frame's repeats change nothing), in the same units: what a video
editor sees first, and what a clip can show even when every frame is close to the anchor. With a real anchor image
(`anchor.image`) frames are measured against that image (what should stay), and the
anchor entry gives the reconstruction's PSNR and its own MSEs against it.
"""

from __future__ import annotations

import csv
import io
import json
import math
from pathlib import Path

import numpy as np
from PIL import Image

from .. import __version__
from ..errors import EXIT_CHECK_FAILED, EXIT_OK, InvalidInput
from .review import write_heatmap

CSV_COLUMNS = ["index", "name", "prompt", "image", "background_mse", "foreground_mse", "background_fraction", "flicker",
               "seconds"]  # fmt: skip
# check name -> (the frame's field it limits, how a line names it)
CHECKED = {"max_background_mse": ("background_mse", "background MSE"), "max_flicker": ("flicker", "flicker")}
LABELS = dict(CHECKED.values())  # a frame's field -> how a line names it


def _mse(a: np.ndarray, b: np.ndarray, where: np.ndarray) -> float | None:
    if not where.any():
        return None
    difference = a[where].astype(np.float64) - b[where].astype(np.float64)
    return float(np.mean(difference**2))


def compare(anchor: Image.Image, frame: Image.Image, anchor_person: np.ndarray, frame_person: np.ndarray) -> dict:
    a = np.asarray(anchor.convert("RGB"))
    b = np.asarray(frame.convert("RGB"))
    background = ~anchor_person & ~frame_person
    return {
        "background_mse": _mse(a, b, background),
        "foreground_mse": _mse(a, b, ~background),
        "background_fraction": float(background.mean()),
    }


def blank(image: Image.Image) -> bool:
    """Whether the image is a single colour (what a render that went NaN decodes to)."""
    low, high = zip(*image.convert("RGB").getextrema())
    return low == high


def psnr(a: Image.Image, b: Image.Image) -> float:
    """Peak signal-to-noise ratio of two 8-bit images, in dB (inf when equal)."""
    error = np.mean((np.asarray(a.convert("RGB"), np.float64) - np.asarray(b.convert("RGB"), np.float64)) ** 2)
    return float("inf") if error == 0 else float(10 * np.log10(255**2 / error))


def reconstruction(image: Image.Image, anchor: Image.Image, image_person: np.ndarray, segmenter) -> dict:
    """How well the anchor pass rebuilt a real anchor image: PSNR, and the same MSEs as frames get."""
    value = psnr(image, anchor)
    return {
        "psnr": None if value == float("inf") else round(value, 2),
        **compare(image, anchor, image_person, segmenter.person(anchor)),
    }


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


def run_checks(frames: list[dict], max_background_mse: float | None, max_flicker: float | None = None) -> list[dict]:
    """Each limit given as {name, limit, passed, failing_frames}. A frame whose measure is
    no finite number (no shared background, a blank frame, NaN, a hand-edited value)
    cannot show consistency, so it fails."""
    checks = []
    for name, limit in (("max_background_mse", max_background_mse), ("max_flicker", max_flicker)):
        if limit is None:
            continue
        field = CHECKED[name][0]
        failing = [
            f.get("name", f"#{i + 1}")
            for i, f in enumerate(frames)
            if not isinstance(value := measurement(f, field), float) or value > limit
        ]
        checks.append({"name": name, "limit": limit, "passed": not failing, "failing_frames": failing})
    return checks


def failure_lines(report: dict) -> list[str]:
    by_name = {f["name"]: f for f in report["frames"]}
    return [
        f"check failed: {failure_message(by_name[name], check)}"
        for check in report["checks"]
        for name in check["failing_frames"]
    ]


def report_csv(report: dict) -> str:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=CSV_COLUMNS, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    for frame in report["frames"]:
        writer.writerow(frame)
    return buffer.getvalue()


def failure_message(frame: dict, check: dict) -> str:
    field, label = CHECKED[check["name"]]
    value = measurement(frame, field)
    if isinstance(value, str):
        return f"frame '{frame['name']}': {value}, so it fails {check['name']} {check['limit']}"
    return f"frame '{frame['name']}': {label} {value:.2f} > {check['name']} {check['limit']}"


def junit_xml(report: dict) -> str:
    """JUnit XML in the common form (testsuites > testsuite > testcase): one test case per
    (check, frame), named after the frame, its time the frame's render time; a failing
    frame's case has a <failure> naming the frame, its MSE and the limit."""
    from xml.etree import ElementTree

    name = Path(report["storyboard"]["path"]).stem if "storyboard" in report else "framegen"
    cases = []
    for check in report["checks"]:
        for frame in report["frames"]:
            case = ElementTree.Element(
                "testcase", classname=f"framegen.{check['name']}", name=frame["name"], time=f"{frame['seconds']:.3f}"
            )
            if frame["name"] in check["failing_frames"]:
                message = failure_message(frame, check)
                failure = ElementTree.SubElement(case, "failure", message=message, type=check["name"])
                failure.text = f"{frame['image']}: {message}"
            cases.append(case)
    failures = sum(len(case) for case in cases)
    counts = {"tests": str(len(cases)), "failures": str(failures), "errors": "0", "skipped": "0"}
    seconds = f"{sum(frame['seconds'] for frame in report['frames']):.3f}"
    suites = ElementTree.Element("testsuites", name="framegen", time=seconds, **counts)
    suite = ElementTree.SubElement(suites, "testsuite", name=name, time=seconds, **counts)
    suite.extend(cases)
    ElementTree.indent(suites)
    return '<?xml version="1.0" encoding="utf-8"?>\n' + ElementTree.tostring(suites, encoding="unicode") + "\n"


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
    problem = report_problem(report)
    if problem:
        raise InvalidInput(f"{path}: {problem}")
    return report


# what check and JUnit read of each frame, and what it must be
REPORT_FIELDS = {
    "name": (str, "text"),
    "image": (str, "a path"),
    "index": (int, "a number"),
    "seconds": (int | float, "a number"),
}


def report_problem(report) -> str | None:
    """What makes `report` unusable for `check` and `report`, or None."""
    if not isinstance(report, dict) or "framegen_version" not in report:
        return "not a framegen report (it has no framegen_version)"
    version = report["framegen_version"]
    frames = report.get("frames")
    if not isinstance(frames, list) or not frames or not all(isinstance(frame, dict) for frame in frames):
        return f"a report without its frames (written by framegen {version}, or edited); render again"
    for i, frame in enumerate(frames):
        for field, (kind, noun) in REPORT_FIELDS.items():
            value = frame.get(field)
            if not isinstance(value, kind) or isinstance(value, bool) or value != value:
                return f"frames[{i}].{field} is missing or not {noun} (written by framegen {version}, or edited)"
    if not isinstance(report.get("storyboard", {}), dict):
        return "storyboard is not a mapping (edited?); render again"
    return None


def recheck(report: dict, max_background_mse: float | None, max_flicker: float | None = None) -> tuple[dict, int]:
    """The report with its checks recomputed at new limits, and the exit code."""
    checked = dict(report, checks=run_checks(report["frames"], max_background_mse, max_flicker))
    return checked, EXIT_OK if all(c["passed"] for c in checked["checks"]) else EXIT_CHECK_FAILED


def build_report(board, entries: list[dict], out: Path, anchor: Image.Image, reference: Image.Image, segmenter,
                 frame_count: int, model: dict, size: tuple[int, int]) -> dict:  # fmt: skip
    """report.json's content: every video frame's entry (as the run describes it) with its
    image read back from `out`, one at a time, and scored against `reference` (a real
    anchor image itself, else the anchor), its heat-map written to heatmaps/. The anchor
    cache's state, bytes and the anchor's seconds are the caller's to fill."""
    spec = board.spec
    reference_person = segmenter.person(reference)
    before = [np.asarray(anchor.convert("RGB")), segmenter.person(anchor)]  # the clip's first frame is the anchor
    frames = [measured(entry, out, reference, reference_person, segmenter, before) for entry in entries]
    return {
        "framegen_version": __version__,
        "storyboard": {
            "path": str(board.path),
            "resolved": spec.model_dump(mode="json"),
            "width": size[0],
            "height": size[1],
        },
        "model": {"id": spec.model.id, **model},
        "cache_bytes": 0,
        "cache_entries": 0,
        "anchor_cache": None,
        "segmenter": segmenter.name,
        "anchor": {
            "prompt": spec.anchor.prompt,
            "image": "anchor.png",
            "seconds": None,
            **(reconstruction(reference, anchor, reference_person, segmenter) if spec.anchor.image else {}),
        },
        "frames": frames,
        "video": {"path": "clip.mp4", "fps": spec.video.fps, "frame_count": frame_count},
        "checks": run_checks(frames, spec.checks.max_background_mse, spec.checks.max_flicker),
    }


def measured(entry: dict, out: Path, reference: Image.Image, reference_person, segmenter, before=None) -> dict:
    """A frame's entry with its MSEs against `reference` and its render time; its heat-map
    written. `before`, [pixels, person] of the video frame before, gives its flicker and
    becomes this frame's: the images are read once, in video order."""
    with Image.open(out / entry["image"]) as file:
        image, seconds = file.convert("RGB"), float(file.text.get("framegen-seconds", "0"))
    person = segmenter.person(image)
    write_heatmap(reference, image, ~reference_person & ~person, out / entry["heatmap"])
    scores = compare(reference, image, reference_person, person)
    if blank(image):  # NaN latents decode to one colour: no measurement, and every check fails
        scores.update(background_mse=None, foreground_mse=None, blank=True)
    if before is not None:
        pixels = np.asarray(image)
        scores["flicker"] = None if scores.get("blank") else _mse(before[0], pixels, ~before[1] & ~person)
        before[:] = [pixels, person]
    described = {key: value for key, value in entry.items() if key != "reused"}
    return {**described, **scores, "seconds": round(seconds, 3), "reused": entry["reused"]}
