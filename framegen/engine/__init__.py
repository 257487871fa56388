"""framegen's engine: swap a diffusers pipeline's denoiser activations (a U-Net's, or a
FLUX / SD3 transformer's image tokens and attention keys and values) from an anchor pass.

It works on any diffusers SD1.x/2.x/XL, FLUX.1 or SD3.x pipeline and knows nothing of storyboards,
files or reports (that is the app above it: framegen.storyboard, framegen.run, ...):

    from framegen.engine import AnchorCache, LayerMap, SwapRule, needed_pairs, record, swapping

    rules = [SwapRule("full", {"OUT3"}, range(1, 13))]  # LDM aliases (D0, S5 on FLUX) or module paths
    cache = AnchorCache(needed_pairs(rules))
    with record(pipe, 30, cache):  # a LATENTS rule also needs callback_on_step_end=clock.callback
        anchor = pipe(prompt, num_inference_steps=30, generator=torch.manual_seed(1)).images[0]
    with swapping(pipe, 30, cache, rules):
        frame = pipe(other_prompt, num_inference_steps=30, generator=torch.manual_seed(1)).images[0]

Modules, in the order a tensor meets them: families (what each kind of denoiser can do),
layers (names -> modules), swap (the rules), masks (drawn masks), automask (attention
masks, the attention observer; joint: a transformer's maps), noise (noise masks),
encoding (prompts as each family's pipe takes them), hooks (record and swap; tokens: a
transformer's image tokens as a grid), cache (the anchor's activations), placement (where
a cache fits), anchor (the anchor's other state), specs (resolved rules as plain data),
compile (specs -> swap rules for one pipe), inversion (a real image as the anchor: its
noise), tween (in-between frames' text conditioning).
"""

from importlib import import_module

# name -> module; loaded on first use, so the torch-free parts (layers, specs) import cheaply
_WHERE = {
    "AnchorState": "anchor", "AttentionMask": "automask", "AttentionStore": "automask", "NoiseMask": "noise",
    "observing": "automask", "AnchorCache": "cache", "DiskCache": "cache", "cache_bytes": "placement",
    "choose_cache": "placement", "Compiler": "compile", "RuleError": "compile", "LatentsCallback": "hooks",
    "StepClock": "hooks", "record": "hooks", "swapping": "hooks", "LATENTS": "layers", "Layer": "layers",
    "LayerMap": "layers", "DrawnMask": "masks", "MaskSource": "masks", "Edit": "specs", "MaskPlan": "specs",
    "RuleSpec": "specs", "SwapRule": "swap", "choose": "swap", "needed_pairs": "swap", "swap": "swap",
    "Inversion": "inversion", "encode": "inversion", "fitted": "inversion", "invert": "inversion",
    "between": "tween", "slerp": "tween", "Family": "families", "family_of": "families", "digest": "digest",
}  # fmt: skip
__all__ = sorted(_WHERE)


def __getattr__(name: str):
    if name not in _WHERE:
        raise AttributeError(f"module 'framegen.engine' has no attribute '{name}'")
    return getattr(import_module(f".{_WHERE[name]}", __name__), name)
