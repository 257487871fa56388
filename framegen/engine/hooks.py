"""Capture and swap denoiser activations with plain PyTorch forward hooks.

`record(...)` caches the anchor's outputs of the needed (layer, step) pairs;
`swapping(...)` replaces a frame's outputs by the rules. Both attach their hooks for
one pipeline call and remove them on exit, also when the call fails; both yield the
call's `StepClock`, whose `callback` (a diffusers `PipelineCallback`) the pipeline call
must be given when a rule or the cache names the LATENTS layer:

    with record(pipe, steps, cache) as clock:
        anchor = pipe(prompt, num_inference_steps=steps, callback_on_step_end=clock.callback, ...)

Which step a denoiser call belongs to is read from its `timestep` argument in a forward
pre-hook (on a transformer whose pipeline rescales it, as FLUX's does, from the flow
scheduler's own `step_index`), not from a call counter: the position in the scheduler's timestep schedule
keys the cache, and the denoising step (1-based, as diffusers' progress bar counts it)
selects the rules. A scheduler that calls the U-Net twice per step (Heun, PNDM's
warm-up) thus keeps one cache entry per call and one step number per step.

The LATENTS layer is no module: the pipeline hands each step's latents to the clock's
`step_end` (from its `callback_on_step_end`), which passes them through the same
`on_output` as the modules' outputs, at the position of the step's last U-Net call.

Tokens (a transformer block's output, an attention's keys and values, FLUX's packed
latents) reach `on_output` as the grid of their image tokens, (B, C, h, w), so one rule
works on every family; a transformer block's text tokens (its other output, or the
first tokens of a single-stream block's keys) are never swapped.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

import torch
from diffusers.callbacks import PipelineCallback

from .automask import AttentionStore, observing
from .cache import AnchorCache
from .families import denoiser
from .layers import KV_PROJECTIONS, LATENTS, LayerMap
from .swap import SwapRule, choose, needed_pairs
from .tokens import from_grid, image_index, latent_size, to_grid

OnOutput = Callable[[str, "StepClock", torch.Tensor], "torch.Tensor | None"]


class StepClock:
    """Denoiser forward pre-hook: which call of the schedule is running now, and the
    latent grid it runs at."""

    def __init__(self, scheduler, num_steps: int, by_index: bool = False):
        self.scheduler = scheduler
        self.num_steps = num_steps
        # place a call that is no view into the schedule by the scheduler's step_index (flow schedulers have one)
        self.by_index = by_index and hasattr(scheduler, "step_index")
        self.position = -1  # index into scheduler.timesteps
        self.step = 0  # 1-based denoising step
        self._schedule: tuple[list[float], list[int]] | None = None
        self._schedule_of = None
        self.latent_size: tuple[int, int] | None = None  # (w, h), read once per pass
        self.on_latents: Callable[[torch.Tensor], torch.Tensor | None] | None = None
        self.callback = LatentsCallback(self)

    def step_end(self, latents: torch.Tensor) -> torch.Tensor:
        """The latents a finished step hands on, after the LATENTS layer's hook."""
        replaced = self.on_latents(latents) if self.on_latents is not None else None
        return latents if replaced is None else replaced

    def _steps_of_positions(self, timesteps) -> tuple[list[float], list[int]]:
        values = [float(t) for t in (timesteps.tolist() if torch.is_tensor(timesteps) else timesteps)]  # one read
        order = getattr(self.scheduler, "order", 1)
        warmup = len(values) - self.num_steps * order
        steps, done = [], 0
        for i in range(len(values)):  # the pipeline's own rule for a finished step
            steps.append(min(done + 1, self.num_steps))
            if i == len(values) - 1 or (i + 1 > warmup and (i + 1) % order == 0):
                done += 1
        return values, steps

    def __call__(self, module, args, kwargs) -> None:
        sample = args[0] if args else kwargs.get("sample", kwargs.get("hidden_states"))
        if self.latent_size is None and torch.is_tensor(sample):
            self.latent_size = latent_size(sample, kwargs)
        timestep = kwargs["timestep"] if "timestep" in kwargs else args[1]
        timesteps = self.scheduler.timesteps
        if self._schedule_of is not timesteps:
            self._schedule = self._steps_of_positions(timesteps)
            self._schedule_of = timesteps
        values, steps = self._schedule
        position = _element_of(timestep, timesteps)
        if position is None and self.by_index:  # FLUX hands t / 1000: its scheduler knows, without a device wait
            position = self.scheduler.step_index or 0  # None until its first step
        if position is None:  # a timestep of its own: match its value
            t = float(timestep.flatten()[0]) if torch.is_tensor(timestep) else float(timestep)
            matches = [i for i, v in enumerate(values) if v == t]
            if not matches:
                raise RuntimeError(f"the denoiser was called at timestep {t}, which is not in the scheduler's schedule")
            # a repeated timestep (Heun, PNDM) is the next occurrence after the last call
            later = [i for i in matches if i > self.position]
            position = later[0] if later else matches[0]
        self.position = position
        self.step = steps[position]


def _element_of(timestep, timesteps) -> int | None:
    """The index of `timestep` in `timesteps` when it is one of its elements (a pipeline
    looping `for t in timesteps` hands the U-Net views into the schedule), found from
    the view's offset: reading the value of a tensor on a GPU would wait for the GPU to
    finish all queued work, once per U-Net call."""
    if not (torch.is_tensor(timestep) and torch.is_tensor(timesteps)) or timesteps.dim() != 1 or not len(timesteps):
        return None
    if timestep.untyped_storage().data_ptr() != timesteps.untyped_storage().data_ptr():
        return None
    index, remainder = divmod(timestep.storage_offset() - timesteps.storage_offset(), timesteps.stride(0))
    return index if remainder == 0 and 0 <= index < len(timesteps) else None


class LatentsCallback(PipelineCallback):
    """A clock's `step_end` as a diffusers `callback_on_step_end`: the LATENTS layer.
    Combine it with other callbacks through diffusers' `MultiPipelineCallbacks`."""

    tensor_inputs = ["latents"]

    def __init__(self, clock: StepClock):
        super().__init__()
        self.clock = clock

    def callback_fn(self, pipeline, step_index, timestep, callback_kwargs: dict) -> dict:
        callback_kwargs["latents"] = self.clock.step_end(callback_kwargs["latents"])
        return callback_kwargs


def _on_tensor(path: str, clock: StepClock, layers: LayerMap, on_output: OnOutput):
    """`on_output` for one path, with tokens seen as their image grid."""
    layer = layers.layer_of(path)  # once, not at every call

    def deliver(tensor: torch.Tensor) -> torch.Tensor | None:
        if tensor.dim() != 3:
            return on_output(path, clock, tensor)
        replaced = on_output(path, clock, to_grid(tensor, layer.grid(*clock.latent_size)))
        return None if replaced is None else from_grid(replaced, tensor)

    return deliver


def _output_hook(path: str, index: int, deliver):
    def hook(module, args, output):
        tensor = output[index] if isinstance(output, tuple) else output
        if not torch.is_tensor(tensor):
            raise TypeError(f"cannot swap '{path}': its output is a {type(output).__name__}, not a tensor")
        replaced = deliver(tensor)
        if replaced is None:
            return None
        return (*output[:index], replaced, *output[index + 1 :]) if isinstance(output, tuple) else replaced

    return hook


def _check_projection(model, path: str) -> None:
    attention = path.rpartition(".")[0]
    if getattr(model.get_submodule(attention), "fused_projections", False):
        message = "kv rules need its separate to_k and to_v (call unfuse_qkv_projections() on the denoiser)"
        raise ValueError(f"'{attention}' uses fused QKV projections: {message}")


@contextmanager
def hooked(pipe, num_steps: int, layers: set[str], on_output: OnOutput) -> Iterator[StepClock]:
    """Attach the step clock and an output hook on each layer (module path)."""
    model = denoiser(pipe)
    layer_map = LayerMap.of(model)
    clock = StepClock(pipe.scheduler, num_steps, by_index=layer_map.transformer)
    handles = [model.register_forward_pre_hook(clock, with_kwargs=True)]
    try:
        for path in sorted(layers):
            deliver = _on_tensor(path, clock, layer_map, on_output)
            if path == LATENTS:
                clock.on_latents = deliver
                continue
            if path.endswith(KV_PROJECTIONS):
                _check_projection(model, path)
            module = model.get_submodule(path)
            handles.append(module.register_forward_hook(_output_hook(path, image_index(module), deliver)))
        yield clock
    finally:
        for handle in handles:
            handle.remove()


@contextmanager
def record(
    pipe, num_steps: int, cache: AnchorCache, observers: list[AttentionStore] = (), latents: list | None = None
) -> Iterator[StepClock]:
    """Run the anchor inside this block; `cache` fills with the needed activations and
    each of `observers` (the anchor's attention stores) with its maps. `latents` (one
    per step) are cached for the LATENTS layer instead of the pass's own: a real image's
    inversion trajectory, so local blending keeps the image itself. A needed (layer,
    step) that the pass never produced (LATENTS without `clock.callback`) raises."""
    cache.needed = module_pairs(cache.needed, LayerMap.of(denoiser(pipe)))
    cache.clear()
    for store in observers:
        store.maps.clear()
    stored = set()

    def store(path: str, clock: StepClock, tensor: torch.Tensor) -> None:
        stored.add((path, clock.step))
        if latents is not None and path == LATENTS:  # seen as the pass's own are: FLUX's packed as their grid
            own = latents[clock.step - 1]
            tensor = to_grid(own, (tensor.shape[-1], tensor.shape[-2])) if own.dim() == 3 else own
        cache.store(path, clock, tensor)

    with hooked(pipe, num_steps, cache.layers, store) as clock, observing(pipe, clock, list(observers)):
        yield clock
    cache.finish()
    never_reached(cache.needed - stored, "the anchor pass never produced")


def module_pairs(pairs: set[tuple[str, int]], layers: LayerMap) -> set[tuple[str, int]]:
    """(layer, step) pairs with aliases (OUT3, LATENTS, kv:D5) resolved to module paths."""
    return {(path, step) for layer, step in pairs for path in layers.resolve(layer)}


def never_reached(missing: set[tuple[str, int]], what: str) -> None:
    if not missing:
        return
    layer, step = min(missing)
    hint = " (pass `callback_on_step_end=clock.callback` to the pipeline call)" if layer == LATENTS else ""
    raise RuntimeError(f"{what} {len(missing)} needed (layer, step) pairs, e.g. ({layer}, {step}){hint}")


@contextmanager
def swapping(
    pipe, num_steps: int, cache: AnchorCache, rules: list[SwapRule] | list[list[SwapRule]]
) -> Iterator[StepClock]:
    """Run a frame inside this block; its activations are swapped by `rules`.

    For a batch of N frames give one rule list per frame: the denoiser's batch is then
    [uncond 1..N, cond 1..N] (FLUX's [1..N]: its guidance is embedded) and frame i's rows
    (i, N + i) meet the anchor's [uncond, cond] under frame i's rules. Each mask source
    begins its pass here and its attention stores (if any) are observed during it."""
    layers = LayerMap.of(denoiser(pipe))
    batch = [[rule.on(layers) for rule in r] for r in (rules if rules and isinstance(rules[0], list) else [rules])]
    needed = set().union(*(needed_pairs(r) for r in batch))
    missing = needed - module_pairs(cache.needed, layers)
    if missing:
        raise ValueError(f"the anchor cache lacks {len(missing)} (layer, step) pairs, e.g. {sorted(missing)[0]}")
    sources = list({id(rule.mask): rule.mask for r in batch for rule in r if rule.mask is not None}.values())
    if len(batch) > 1 and any(source.alone for source in sources):
        raise ValueError("a frame whose mask reads its own pass (an attention mask) renders alone")
    observers = [store for source in sources for store in source.begin(pipe)]
    swapped = set()

    def swap_output(path: str, clock: StepClock, tensor: torch.Tensor):
        chosen = [choose(r, clock.step, path) for r in batch]
        if all(rule is None for rule in chosen):
            return None
        swapped.add((path, clock.step))
        anchor = cache.get(path, clock.position, tensor.device)
        if len(batch) == 1:
            return chosen[0](anchor, tensor, chosen[0].keep_for(clock.step, tensor))
        n, out = len(batch), tensor.clone()
        for i, rule in enumerate(chosen):
            if rule is not None:
                rows = list(range(i, tensor.shape[0], n))
                out[rows] = rule(anchor, tensor[rows], rule.keep_for(clock.step, tensor))
        return out

    cache.rewind()
    with (
        hooked(pipe, num_steps, {layer for layer, _ in needed}, swap_output) as clock,
        observing(pipe, clock, observers),
    ):
        yield clock
    never_reached(needed - swapped, "the frame's pass never reached")
