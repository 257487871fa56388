"""The values every storyboard key is made of: strict types (a YAML boolean is no number),
their ranges (what the libraries under them accept) and the names they may carry."""

from __future__ import annotations

import os
from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, Strict

SCHEDULERS = ("ddim", "euler", "euler_a", "dpmpp_2m", "pndm", "lms")
MAX_SEED = 2**64 - 1  # torch.Generator.manual_seed takes 0 .. 2^64 - 1
MAX_SIDE = 16384  # pixels: past any published model's size
MAX_BATCH = 1024  # images in one denoiser batch: far past what any accelerator holds
# names land in one-line messages, JUnit XML and annotations: no control characters or line separators
NAME_PATTERN = r"^[^\x00-\x1f\x7f-\x9f\u2028\u2029]*$"


class StrictModel(BaseModel):
    # strict: a YAML boolean is no number (`tween: yes` is not 1), a float no integer, a
    # number no string; no NaN or infinity anywhere (a limit or scale that is NaN decides nothing)
    model_config = ConfigDict(extra="forbid", strict=True, allow_inf_nan=False)


# a LoRA's or a ControlNet's weight: finite, and within what anyone renders with (LoRAs are
# used from about -2 to 2, ControlNets from 0 to 2); a typo like 50 is refused, not rendered
LoraScale = Annotated[float, Field(ge=-10, le=10, allow_inf_nan=False)]
ControlScale = Annotated[float, Field(ge=0, le=10, allow_inf_nan=False)]
Coordinate = Annotated[int, Strict(), Field(ge=-MAX_SIDE, le=2 * MAX_SIDE)]  # a box's corner in image pixels
Box = Annotated[list[Coordinate], Field(strict=False, min_length=4, max_length=4)]  # [x0, y0, x1, y1]; a tuple too


def path_problem(value: str) -> str | None:
    """Why the file system could not even look `value` up (too long, `~` of no user), or None."""
    try:
        encoded = os.fsencode(value)
    except UnicodeEncodeError:
        return "is not a path (it holds a lone surrogate)"
    if len(encoded) >= 4096 or any(len(name) > 255 for name in encoded.split(b"/")):
        return "is longer than a path can be (4,096 bytes, 255 for one name)"
    home = value.split("/")[0]
    if home.startswith("~") and os.path.expanduser(home) == home:
        return f"starts with {home}, which names no home folder here"
    if "\x00" in value:
        return "holds a NUL character"
    return None


def _path(value: str) -> str:
    problem = path_problem(value)
    if problem:
        raise ValueError(problem)
    return value


# a path (or a name that may be one: model ids, ControlNets) as the file system can look it up
PathText = Annotated[str, Field(min_length=1), AfterValidator(_path)]
