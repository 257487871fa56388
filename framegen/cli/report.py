"""`framegen check` and `framegen report`: the CI gate on a report.json, and the page and
sheet written again; GitHub annotations for both `check` and `render`."""

from __future__ import annotations

import os
import sys
from pathlib import Path

from ..errors import EXIT_OK, FramegenError, InvalidInput


def cmd_check(args) -> int:
    import json

    from ..output.files import write_text
    from ..output.ledger import check_replaceable, recording, user_ledger
    from ..output.report import CHECKED, failure_lines, junit_xml, read_report, recheck
    from ..output.report_schema import report_limits

    report = read_report(Path(args.report))
    limits = {"max_background_mse": args.max_background_mse, "max_flicker": args.max_flicker}
    if all(limit is None for limit in limits.values()):  # the storyboard's own `checks:`, as the render ran them
        limits = report_limits(report, Path(args.report))
        if all(limit is None for limit in limits.values()):
            raise InvalidInput(
                f"{args.report}: its storyboard sets no checks; give --max-background-mse or --max-flicker"
            )
    report, code = recheck(report, limits["max_background_mse"], limits["max_flicker"])
    if args.junit:
        check_replaceable(Path(args.junit), "--junit", args.force, reading=(Path(args.report),))
        with recording(user_ledger()):
            write_text(junit_xml(report), Path(args.junit))
    for line in failure_lines(report):
        print(line, file=sys.stderr)
    if wants_github(args):
        print_annotations(report, storyboard_lines(report))
    if code == EXIT_OK:
        worst = []
        for check in report["checks"]:
            field, label = CHECKED[check["name"]]
            value = max((frame[field] for frame in report["frames"]), default=None)
            worst.append(f"worst {label} {json.dumps(value)} <= {check['limit']}")
        print(f"ok: {len(report['frames'])} frames, {', '.join(worst)}")
    return code


def wants_github(args) -> bool:
    return args.github or os.environ.get("GITHUB_ACTIONS") == "true"


def print_annotations(report: dict, frame_line) -> None:
    """GitHub Actions `::error` lines on stdout (where the runner reads workflow commands)."""
    from ..output.report import github_annotations

    for line in github_annotations(report, frame_line):
        print(line)


def storyboard_lines(report: dict):
    """frame_lines for a report's storyboard, read again (it may have moved or changed
    since: then the annotations name no line)."""
    from ..storyboard.source import read_yaml

    path = report.get("storyboard", {}).get("path")
    try:
        _, marks = read_yaml(Path(path).read_text(encoding="utf-8"), path)
    except (OSError, TypeError, ValueError, FramegenError):
        return lambda index: None
    return frame_lines(path, marks)


def frame_lines(path: str, marks: dict):
    """index -> (storyboard file, line of frames[index - 1]), or None where it has none."""
    return lambda index: (path, marks[("frames", index - 1)][0]) if ("frames", index - 1) in marks else None


def cmd_report(args) -> int:
    from ..output.folder import OutputFolder
    from ..output.pages import page_names, write_review
    from ..output.report import read_report

    out = Path(args.output_dir)
    if out.is_file():
        raise InvalidInput(f"{out}: is a file; give the output folder of a framegen render")
    if not (out / "report.json").is_file():
        raise InvalidInput(f"{out}: holds no report.json; give the output folder of a framegen render")
    report = read_report(out / "report.json")
    gone = [image for image in ["anchor.png", *(f["image"] for f in report["frames"])] if not (out / image).is_file()]
    if gone:
        more = f" and {len(gone) - 1} more images" if len(gone) > 1 else ""
        raise InvalidInput(f"{out}: {gone[0]}{more} named in report.json are gone; render again to restore them")
    with OutputFolder(out).open() as folder:
        if not args.force:
            folder.check_replaceable([*page_names(len(report["frames"])), "sheet.png"])
        try:
            write_review(report, out)
        except (KeyError, TypeError, ValueError, AttributeError, OSError) as error:
            what = (
                f"the field '{error.args[0]}' is missing"
                if isinstance(error, KeyError)
                else "a field or image is unreadable"
            )
            raise InvalidInput(f"{out / 'report.json'}: {what} (edited, or another version's); render again") from None
    print(f"wrote {out / 'report.html'} and {out / 'sheet.png'} ({len(report['frames'])} frames)")
    return EXIT_OK
