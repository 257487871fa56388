"""Who is the person in a frame: pixels the segmenter calls the person are not background,
so background MSE compares only what should stay. rembg's models (or a local ONNX file
with u2net's contract, such as the demo model's own), or none."""

from __future__ import annotations

import os
from contextlib import contextmanager
from pathlib import Path

import numpy as np
from PIL import Image

from ..errors import RenderFailure, error_line
from ..storyboard.schema import Background


class NoSegmenter:
    """`segmenter: none`: the whole image is background."""

    name = "none"

    def person(self, image: Image.Image) -> np.ndarray:
        return np.zeros((image.height, image.width), dtype=bool)


@contextmanager
def _rembg_home(folder: Path):
    # rembg only opens custom models that lie inside its home folder
    previous = os.environ.get("U2NET_HOME")
    os.environ["U2NET_HOME"] = str(folder)
    try:
        yield
    finally:
        if previous is None:
            os.environ.pop("U2NET_HOME", None)
        else:
            os.environ["U2NET_HOME"] = previous


class RembgSegmenter:
    """A rembg session: a model by name (u2net, isnet-general-use, ...) or a local
    ONNX file with u2net's input/output contract (`model_path`, works offline)."""

    def __init__(self, model: str = "u2net", model_path: Path | None = None):
        import onnxruntime
        import torch

        threads = torch.get_num_threads()
        from rembg import new_session  # its pymatting import resets torch's thread count

        torch.set_num_threads(threads)

        # onnxruntime's idle threads spin by default; the U-Net runs between two
        # segmentations and should not compete with them
        options = onnxruntime.SessionOptions()
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        options.add_session_config_entry("session.inter_op.allow_spinning", "0")
        self.name = f"rembg:{model_path or model}"
        try:
            if model_path is not None:
                model_path = Path(model_path).resolve()
                if not model_path.is_file():
                    raise RenderFailure(f"segmenter model not found: {model_path}")
                with _rembg_home(model_path.parent):
                    self.session = new_session("u2net_custom", model_path=str(model_path), sess_opts=options)
            else:
                self.session = new_session(model, sess_opts=options)
        except (ValueError, OSError) as error:  # unknown name, download impossible offline
            raise RenderFailure(
                f"rembg model '{model_path or model}' unavailable ({error_line(error, 120)}); "
                "rembg downloads named models on first use: offline, give `model_path` to a local ONNX file "
                "or use `segmenter: none`"
            ) from None

    def person(self, image: Image.Image) -> np.ndarray:
        mask = self.session.predict(image.convert("RGB"))[0]
        return np.asarray(mask.convert("L")) > 127


def segmenter_for(background: Background, model_id: str, folder: Path):
    """The storyboard's segmenter. Unset, it is the demo model's own segmenter for
    `demo` and `demo-flow`, none for `tiny-random` (random images hold no person), else rembg's u2net."""
    tiny = model_id.startswith("tiny-random")
    if background.segmenter == "none" or (tiny and "segmenter" not in background.model_fields_set):
        return NoSegmenter()
    model = background.model or ("demo" if model_id in ("demo", "demo-flow") else "u2net")
    if background.model_path:
        return RembgSegmenter(model, folder / background.model_path)
    if model == "demo":
        from ..models.demo import segmenter_path

        return RembgSegmenter("demo", segmenter_path())
    return RembgSegmenter(model)
