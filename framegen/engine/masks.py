"""Keep-the-anchor masks: where a `mask` rule takes the anchor's values (True = keep).

A `mask` rule asks its mask source for the mask at each layer's grid; the source may be
drawn (a grid, an image, boxes: `DrawnMask`) or found by the model during the frame's
pass (automask.AttentionMask, automask.NoiseMask). Every source has one (h, w) mask at
its own resolution, resized with nearest-neighbour to each grid, so it marks the same
region on every layer; `mask_png` draws it at image size for the output folder. A
control mask (`auto: control`) is drawn from the frame's and the anchor's control images.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from .specs import MaskPlan


def true_values(image: Image.Image) -> Image.Image:
    """An image whose samples are 16-bit or float (mode I;16, I, F: a 16-bit greyscale PNG,
    a float TIFF) brought to 8 bits by its range, not clipped: `convert` would turn a
    16-bit mid-grey white. Other modes come back as they are."""
    if image.mode not in ("I", "F") and not image.mode.startswith("I;16"):
        return image
    values = np.asarray(image, dtype=np.float64)
    top = 65535.0  # I;16 and I: 16-bit samples
    if image.mode == "F":  # floats: 0..1, else taken as 0..255
        top = 1.0 if values.max(initial=0) <= 1.0 else 255.0
    return Image.fromarray(np.clip(np.round(values / top * 255), 0, 255).astype(np.uint8), "L")


def drawn_mask(plan: MaskPlan, width: int, height: int) -> torch.Tensor:
    """A drawn mask as an (h, w) bool tensor at its own resolution; boxes are in image pixels."""
    if plan.grid is not None:
        return torch.tensor([[c == "1" for c in row] for row in plan.grid])
    if plan.image is not None:
        with Image.open(plan.image) as image:
            return torch.from_numpy(np.asarray(true_values(image).convert("L")) > 127)
    mask = torch.zeros(height, width, dtype=torch.bool)
    for x0, y0, x1, y1 in plan.boxes:
        mask[max(y0, 0) : max(y1, 0), max(x0, 0) : max(x1, 0)] = True
    return mask


def resized(mask: torch.Tensor, size: tuple[int, int], device: torch.device) -> torch.Tensor:
    """`mask` at a grid of `size` (h, w) by nearest-neighbour, shaped (1, 1, h, w) to broadcast."""
    grid = mask[None, None].float()
    return F.interpolate(grid, size=tuple(size), mode="nearest-exact").to(device) > 0.5


def mask_png(mask: torch.Tensor, size: tuple[int, int]) -> Image.Image:
    """A keep-the-anchor mask at image `size` (w, h): white = kept from the anchor."""
    grid = Image.fromarray((mask.cpu().numpy() * 255).astype(np.uint8))
    return grid.resize(size, Image.Resampling.NEAREST)


class MaskSource:
    """Where a `mask` rule's keep-the-anchor mask comes from. `begin` is called by
    `hooks.swapping` before each frame pass and returns the attention stores the source
    must observe during it; `keep` gives the mask at a layer's grid; `mask` the (h, w)
    mask itself. `alone`: the source reads one frame's own pass, so it is not batched."""

    kind = "drawn"
    alone = False

    def __init__(self):
        self._resized: dict = {}

    def begin(self, pipe) -> list:
        return []

    def mask(self) -> torch.Tensor:
        raise NotImplementedError

    def keep(self, step: int, size: tuple[int, int], device: torch.device) -> torch.Tensor:
        key = (tuple(size), device)
        if key not in self._resized:
            self._resized[key] = resized(self.mask(), size, device)
        return self._resized[key]


class DrawnMask(MaskSource):
    """A fixed mask: a grid, an image, boxes, or any (h, w) bool tensor."""

    def __init__(self, tensor: torch.Tensor, kind: str = "drawn"):
        super().__init__()
        self.tensor, self.kind = tensor, kind

    def mask(self) -> torch.Tensor:
        return self.tensor


CONTROL_THRESHOLD = 0.1  # of the pixel range: a change below it in every channel is no change
CONTROL_DILATE = 1  # latent cells


def control_mask(
    anchor_images: list, frame_images: list, latent_size: tuple[int, int], threshold: float, dilate: int
) -> torch.Tensor:
    """The keep-the-anchor mask (h, w) at the latent grid where the anchor's and the frame's
    control images (PIL, one pair per ControlNet, at the render's size) agree: a latent
    cell is freed when any of its pixels differs by more than `threshold` (0..1) in any
    channel of any pair, then grown by `dilate` cells."""
    w, h = latent_size
    changed = torch.zeros(1, 1, h, w)
    for anchor, frame in zip(anchor_images, frame_images):
        a, b = (torch.from_numpy(np.asarray(image.convert("RGB"), dtype=np.float32) / 255) for image in (anchor, frame))
        moved = ((a - b).abs().amax(dim=2) > threshold).float()[None, None]
        changed = torch.maximum(changed, F.adaptive_max_pool2d(moved, (h, w)))
    if dilate:
        changed = F.max_pool2d(changed, kernel_size=2 * dilate + 1, stride=1, padding=dilate)
    return changed[0, 0] < 0.5
