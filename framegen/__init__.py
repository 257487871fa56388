"""framegen: consistent frame sequences from a YAML storyboard with Stable Diffusion,
by swapping U-Net activations from an anchor image. No training.

Importing this package is cheap; torch and diffusers load on first use.
"""

__version__ = "0.1.0"


def __getattr__(name):  # lazy: `framegen --help` must not import torch
    if name == "load_storyboard":
        from .storyboard import load_storyboard

        return load_storyboard
    if name == "render_storyboard":
        from .job import render_storyboard

        return render_storyboard
    if name == "Renderer":
        from .render import Renderer

        return Renderer
    raise AttributeError(name)
