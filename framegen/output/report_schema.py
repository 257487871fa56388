"""What `check` and `report` trust of a report.json: every field they read, typed as render
writes it (a measure is a finite number >= 0, or null), and the limits of its storyboard
validated by the storyboard's own rules. Anything else was edited or is another version's,
and is one line, exit 2: a gate fails closed rather than judge a frame by it."""

from __future__ import annotations

import json
from pathlib import Path, PurePosixPath
from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError

from ..errors import InvalidInput, shown
from ..storyboard.source import dotted
from ..storyboard.values import NAME_PATTERN

CHECKED_FIELDS = {"max_background_mse": "background_mse", "max_flicker": "flicker"}  # a limit -> the field it limits


class _ReportPart(BaseModel):
    # keys of other versions and fields check does not read are allowed; what it reads is typed strictly
    model_config = ConfigDict(extra="allow", strict=True, allow_inf_nan=False)


Measure = Annotated[float, Field(ge=0)] | None  # null: no shared background, or a blank frame (the check fails)


def _inside_folder(image: str) -> str:
    """A frame's image as render names it: a relative path inside the output folder."""
    path = PurePosixPath(image)
    if not image or "\x00" in image or "\\" in image or path.is_absolute() or ".." in path.parts:
        raise ValueError("not a path inside the output folder")
    return image


class ReportFrame(_ReportPart):
    """What check, JUnit, annotations and the page read of a frame."""

    name: Annotated[str, Field(min_length=1, pattern=NAME_PATTERN)]
    image: Annotated[str, AfterValidator(_inside_folder)]
    index: int = Field(ge=1)
    seconds: float = Field(ge=0)
    background_mse: Measure = None
    flicker: Measure = None
    blank: bool = False


class ReportStoryboard(_ReportPart):
    path: str | None = None
    resolved: dict | None = None


class Report(_ReportPart):
    framegen_version: str
    frames: list[ReportFrame] = Field(min_length=1)
    storyboard: ReportStoryboard = ReportStoryboard()


def report_problem(report) -> str | None:
    """What makes `report` one that check and report cannot trust, or None: every field
    they read is typed (measures finite and >= 0, or null), whatever else it holds."""
    if not isinstance(report, dict) or "framegen_version" not in report:
        return "not a framegen report (it has no framegen_version)"
    try:
        Report.model_validate(report)
    except ValidationError as error:
        version = shown(report["framegen_version"], 20)
        return f"{first_problem(error)} (written by framegen {version}, or edited); render again"
    return None


def first_problem(error: ValidationError, at: tuple = ()) -> str:
    """`where: value: what` of a validation's first error, the value as JSON (NaN shows as NaN)."""
    first = error.errors()[0]
    value = shown(json.dumps(first.get("input"), default=str), 40) if first["type"] != "missing" else "missing"
    return f"{dotted((*at, *first['loc'])) or 'report'}: {value}: {first['msg'].removeprefix('Value error, ')}"


def report_limits(report: dict, path: Path) -> dict[str, float | None]:
    """The limits the render held its frames to (the storyboard's `checks:`), validated as
    the storyboard's own rules validate them: a NaN, infinite, negative or non-numeric limit
    in an edited report is refused, never compared with."""
    from ..storyboard.schema import Checks

    resolved = report.get("storyboard", {}).get("resolved")
    if not isinstance(resolved, dict):
        raise InvalidInput(
            f"{path}: its storyboard's resolved settings are missing (edited?); give the limits on the command line"
        )
    try:
        checks = Checks.model_validate(resolved.get("checks", {}))
    except ValidationError as error:
        where = ("storyboard", "resolved", "checks")
        raise InvalidInput(
            f"{path}: {first_problem(error, where)} (edited?); a limit is a finite number >= 0"
        ) from None
    return {name: getattr(checks, name) for name in CHECKED_FIELDS}
