"""The anchor shot: a real image read and inverted first when the storyboard gives one,
then the anchor pass that fills the cache; or, when nothing is left to render or a disk
cache holds it, the anchor reused without a pass."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

from PIL import Image

from ..engine.cache import DiskCache
from ..engine.families import denoiser
from ..engine.inversion import fitted
from ..engine.masks import true_values
from ..errors import warn
from ..models.load import set_lora_scales
from ..output.files import read_png_text, write_png
from ..storyboard import Storyboard
from .render import Renderer, RenderSettings


@dataclass
class Anchor:
    image: Image.Image
    how: str  # built | reused (from the disk cache) | kept (from a loop's last render) | not needed
    seconds: float = 0.0


class KeptAnchor:
    """The last anchor pass of a loop of renders with one pipe (render --watch): its keys,
    image, filled cache and the state it leaves (attention maps, latents), held in memory."""

    def __init__(self):
        self.keys, self.image, self.cache, self.state = None, None, None, None

    def hold(self, keys: tuple[str, str], image: Image.Image, cache, anchor_state) -> None:
        self.keys, self.image, self.cache, self.state = keys, image, cache, anchor_state.to_tensors()


def load_anchor_image(board: Storyboard, settings: RenderSettings) -> Image.Image | None:
    """A real anchor image at the render's size: centre-cropped to its aspect, resized
    (Lanczos); transparency is composited on white, with a warning. None without one."""
    if board.spec.anchor.image is None:
        return None
    path = board.folder / board.spec.anchor.image
    with Image.open(path) as image:
        if image.mode in ("RGBA", "LA", "PA") or "transparency" in image.info:
            warn(f"{path.name} has transparency; it is composited on white")
            rgba = image.convert("RGBA")
            image = Image.alpha_composite(Image.new("RGBA", rgba.size, "white"), rgba)
        return fitted(true_values(image).convert("RGB"), settings.width, settings.height)


def anchor_negative_prompt(board: Storyboard, settings: RenderSettings) -> str:
    """The anchor pass's negative prompt: a real image's own prompt with the
    negative-prompt method (the guided prediction is then the conditional one, so the
    reconstruction follows the inversion), else the render's."""
    anchor = board.spec.anchor
    if anchor.image is not None and anchor.inversion.method == "negative-prompt":
        return anchor.prompt
    return settings.negative_prompt


def render_anchor(prepared, renderer: Renderer, on_step=None, announce=None) -> Image.Image:
    """The anchor pass as the storyboard asks for it (a Prepared's): a real image inverted
    first (its trajectory for LATENTS), with the anchor's control images. `announce(name)`
    before each pass."""
    anchor, trajectory = prepared.board.spec.anchor, None
    if prepared.anchor_image is not None:
        if announce is not None:
            announce("inversion")
        inversion = anchor.inversion
        inverted = renderer.invert(prepared.anchor_image, anchor.prompt, on_step, inversion)
        trajectory = inverted.trajectory
    if announce is not None:
        announce("anchor")
    control = prepared.conditioning.images(anchor.control)
    return renderer.anchor(anchor.prompt, on_step, trajectory, prepared.anchor_negative_prompt, control)


def in_place(out: Path, image: str, key: str) -> bool:
    """Whether the output folder holds `image` rendered with `key`."""
    return read_png_text(out / image).get("framegen-key") == key


def read_image(path: Path) -> Image.Image:
    with Image.open(path) as image:
        return image.convert("RGB")


def obtain_anchor(
    prepared, renderer: Renderer, out: Path, keys: tuple[str, str], fields: dict, progress, kept=None
) -> Anchor:
    """The anchor for frames to swap from: `kept` from a loop's last render (the renderer
    already holds its cache), `reused` from a sound disk cache (its tensors loaded into the
    anchor state), or `built` by the anchor pass (sealing the disk cache if there is one).
    `keys` are the anchor's and the cache's; the output's anchor.png ends up this anchor's."""
    anchor_key, cache_key = keys
    anchor_path = out / "anchor.png"
    cache = renderer.cache
    if kept is not None:
        prepared.anchor_state.load_tensors(kept.state, prepared.pipe.device, denoiser(prepared.pipe).dtype)
        if not in_place(out, "anchor.png", anchor_key):
            write_png(kept.image, anchor_path, {"framegen-key": anchor_key})
        return Anchor(kept.image, "kept")
    if isinstance(cache, DiskCache):
        status, tensors = cache.reopen(cache_key)
        if status == "reused":
            prepared.anchor_state.load_tensors(tensors, prepared.pipe.device, denoiser(prepared.pipe).dtype)
            image = read_image(cache.folder / "anchor.png")
            if not in_place(out, "anchor.png", anchor_key):
                write_png(image, anchor_path, {"framegen-key": anchor_key})
            return Anchor(image, "reused")
    set_lora_scales(prepared.pipe, prepared.board.lora)
    start = time.perf_counter()
    steps = prepared.settings.steps
    image = render_anchor(prepared, renderer, progress.step, lambda name: progress.image(name, steps))
    seconds = time.perf_counter() - start
    if isinstance(cache, DiskCache):
        cache.seal(cache_key, prepared.anchor_state.to_tensors(), fields, image)
    write_png(image, anchor_path, {"framegen-key": anchor_key})
    return Anchor(image, "built", seconds)
