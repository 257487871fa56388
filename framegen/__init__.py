"""framegen: consistent frame sequences from a YAML storyboard with Stable Diffusion,
by swapping U-Net activations from an anchor image. No training.

    from framegen import load_storyboard, render_storyboard
    result = render_storyboard(load_storyboard("storyboards/demo.yaml"))

`framegen.engine` works on any diffusers pipeline without storyboards (record, swapping,
SwapRule, ...). Importing this package is cheap: torch and diffusers load on first use.
"""

from importlib import import_module

__version__ = "0.3.0"

_WHERE = {
    "load_storyboard": "storyboard",
    "Storyboard": "storyboard",
    "render_storyboard": "run.job",
    "RenderResult": "run.finish",
    "prepare": "run.prepare",
    "Prepared": "run.prepare",
    "Renderer": "run.render",
    "RenderSettings": "run.render",
    "FramegenError": "errors",
    "InvalidInput": "errors",
    "RenderFailure": "errors",
}
__all__ = ["__version__", *_WHERE]


def __getattr__(name: str):  # lazy: `framegen --help` must not import torch
    if name not in _WHERE:
        raise AttributeError(f"module 'framegen' has no attribute '{name}'")
    return getattr(import_module(f".{_WHERE[name]}", __name__), name)


def __dir__():
    return sorted(__all__)
