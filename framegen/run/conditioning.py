"""What a shot is conditioned on, for one loaded pipe: its text (a prompt, or an
in-between's encoded conditioning part of the way from the frame before's prompt to its
own) and its control images at the render's size (an in-between's cross-faded)."""

from __future__ import annotations

import functools
from pathlib import Path

from PIL import Image

from ..engine.encoding import encoded
from ..engine.inversion import fitted_file
from ..engine.tween import between_encoded
from .render import RenderSettings
from .shots import Shot

KEPT_ENCODINGS = 4


class Conditioning:
    def __init__(self, pipe, folder: Path, settings: RenderSettings):
        self.pipe, self.folder, self.settings = pipe, folder, settings
        self._images: dict[str, Image.Image] = {}  # control image path -> the image at the render's size
        # a run of in-betweens between two frames encodes the two prompts once; a clip of any length keeps a few
        self.encoded = functools.lru_cache(maxsize=KEPT_ENCODINGS)(self._encode)

    def text(self, shot: Shot) -> str | dict:
        """The prompt, or an in-between's keyword arguments for the pipe (prompt_embeds, ...)."""
        if shot.between is None:
            return shot.prompt
        return between_encoded(self.encoded(shot.between.prompt), self.encoded(shot.prompt), shot.between.t)

    def _encode(self, prompt: str) -> dict:
        return encoded(self.pipe, prompt, self.settings.negative_prompt or None)

    def control(self, shot: Shot) -> list[Image.Image] | None:
        """One image per ControlNet, fitted as an anchor image is; an in-between's the frame
        before's and its own cross-faded by its position."""
        end = self.images(shot.control)
        if not end or shot.between is None:
            return end
        start = self.images(shot.between.control)
        return [Image.blend(a, b, shot.between.t) for a, b in zip(start, end)]

    def images(self, paths) -> list[Image.Image] | None:
        if not paths:
            return None
        for path in paths:
            if path not in self._images:
                self._images[path] = fitted_file(self.folder / path, self.settings.width, self.settings.height)
        return [self._images[path] for path in paths]
