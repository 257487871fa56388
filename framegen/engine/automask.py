"""Automatic masks: the region a frame's edit may change, found from the model itself.

- `auto: attention` (prompt-to-prompt's local blending): where the words the delta
  replaces or removes attend during the anchor pass, and where the words it adds attend
  during the frame's own pass, each word narrowed to the head of its tag (`tag_heads`).
  Cross-attention probabilities are recomputed from each `attn2` module's inputs with
  the module's own projections (a forward pre-hook; no extra U-Net pass), for the
  conditional half of the batch, averaged over heads and layers,
  summed over the steps before the mask is first used, and normalised to 0..1 between
  the map's minimum and maximum (every token gets some attention everywhere, so the
  floor is far from 0 and differs per word); upsampled bilinearly to the latent grid,
  thresholded (default 0.5) and dilated by `dilate` latent cells (default 1).
- `auto: noise` (DiffEdit; noise.py): where the denoiser's prediction under the frame's
  prompt differs from the one under the anchor's.

Both give an (h, w) bool mask at the latent grid, True = keep the anchor, which a `mask`
rule uses like a drawn one; on the LATENTS layer that is prompt-to-prompt's local blend.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager

import torch
import torch.nn.functional as F

from .families import denoiser
from .joint import joint_probabilities
from .layers import Layer, LayerMap
from .masks import MaskSource

ATTENTION_THRESHOLD = 0.5  # of the map's range; tuned on the demo model's tuning pairs (docs/automask.md)
ATTENTION_DILATE = 1  # latent cells: at 0 the edit often fails at the region's border (docs/automask.md)
HEAD_TAG_WORDS = 4  # longer comma-separated pieces are phrases (see tag_heads)


# ------------------------------------------------------------------------------ words


def _occurrences(word: str, prompt: str) -> Iterator[re.Match]:
    """Where `word` stands in `prompt` as whole words, ignoring case."""
    return re.finditer(rf"(?<![\w]){re.escape(word.strip())}(?![\w])", prompt, flags=re.IGNORECASE)


def token_positions(tokenizer, prompt: str, word: str) -> list[int]:
    """Positions in the encoded prompt (0 = CLIP's start token) of every token of every
    occurrence of `word`. Tokenising the text before and through each occurrence
    counts its tokens, so words that split into several tokens map to all of them."""
    limit = tokenizer.model_max_length - 1  # the last position holds the end token
    start = 1 if tokenizer.bos_token is not None else 0  # CLIP's start token; T5 has none
    positions = []
    for match in _occurrences(word, prompt):
        before = len(tokenizer.tokenize(prompt[: match.start()].rstrip()))  # T5 would count the space
        through = len(tokenizer.tokenize(prompt[: match.end()]))
        positions += [start + p for p in range(before, through) if start + p < limit]
    return positions


def tag_heads(prompt: str, spans: list[str]) -> list[str]:
    """The words an edit is about: for each span, the last word of every comma-separated
    tag of `prompt` that the span touches ("red" or "red shirt" in "girl, red shirt" ->
    "shirt"). In a tag the last word is the head noun, and its map marks the object,
    where a modifier's spreads: a colour word attends over much of the image. A tag of
    more than HEAD_TAG_WORDS words is a phrase, not a tag; there the span stands for itself."""
    tags = [(tag.start(), tag.end(), re.findall(r"[\w'-]+", tag.group())) for tag in re.finditer(r"[^,]+", prompt)]
    heads = []
    for span in spans:
        for match in _occurrences(span, prompt):
            for start, end, words in tags:
                if words and start < match.end() and match.start() < end:
                    head = words[-1] if len(words) <= HEAD_TAG_WORDS else span.strip()
                    heads += [head] if head not in heads else []
    return heads


def mid_resolution_layers(layers: LayerMap) -> list[Layer]:
    """The cross-attention layers (MID excluded) at the middle of their resolution
    levels, rounding toward coarser: level 1 of SD1.x/2.x (32x32 at 512), level 2 of
    SDXL (32x32 at 1024)."""
    attention = [layer for layer in layers.cross_attention_layers() if layer.name != "MID"]
    levels = sorted({layer.level for layer in attention})
    middle = levels[len(levels) // 2]
    return [layer for layer in attention if layer.level == middle]


# ------------------------------------------------------------------- attention maps


class AttentionStore:
    """An observer of one pass (prompt-to-prompt's AttentionStore): per step, the summed
    attention map of chosen token positions, averaged over heads and layers, at the
    finest grid of the watched layers. `observing` fills it; it changes nothing."""

    def __init__(
        self, positions: dict[str, list[int]], grids: dict[str, tuple[int, int]], steps: set[int], joint: bool = False
    ):
        self.positions = positions  # key (a word group) -> token positions
        self.grids = grids  # attention module path (attn2, or a transformer's attn) -> (w, h) of its layer
        self.steps, self.joint = steps, joint
        self.size = max(grids.values(), key=lambda wh: wh[0] * wh[1])[::-1]  # (h, w)
        self.maps: dict[tuple[str, int], torch.Tensor] = {}  # (key, step) -> (h, w) sum over layers
        self._indices: dict = {}

    def add(self, module, path: str, step: int, hidden: torch.Tensor, context, rotary=None) -> None:
        if step not in self.steps or not any(self.positions.values()):
            return
        half = hidden.shape[0] // 2 if hidden.shape[0] > 1 else 0  # [uncond, cond] -> cond
        w, h = self.grids[path]
        if self.joint:  # a transformer's joint attention
            context = context[half:] if context is not None else None
            probs = joint_probabilities(module, hidden[half:], context, rotary, w * h)
        else:
            query = module.head_to_batch_dim(module.to_q(hidden[half:]))
            key = module.head_to_batch_dim(module.to_k(context[half:]))
            probs = module.get_attention_scores(query, key, None)  # (batch*heads, hw, tokens)
            probs = probs.reshape(-1, module.heads, *probs.shape[1:]).mean(dim=(0, 1)).float()  # (hw, tokens)
        for group, positions in self.positions.items():
            if not positions:
                continue
            grid = probs.index_select(1, self._index(group, probs.device)).sum(dim=1).reshape(1, 1, h, w)
            if (h, w) != self.size:
                grid = F.interpolate(grid, size=self.size, mode="bilinear", align_corners=False)
            # summed over layers: the normalisation in `region` makes it an average
            self.maps[(group, step)] = self.maps.get((group, step), 0) + grid[0, 0]  # stays on the device: no wait

    def _index(self, group: str, device: torch.device) -> torch.Tensor:
        """The group's token positions as an index on `device`, copied there once: a copy
        per layer and step would make the CPU wait for the GPU each time."""
        if (group, device) not in self._indices:
            self._indices[(group, device)] = torch.tensor(self.positions[group], device=device)
        return self._indices[(group, device)]

    def region(self, group: str, before_step: int) -> torch.Tensor | None:
        """The group's map over the steps before `before_step`, scaled to 0..1 between
        its minimum and maximum."""
        total = None
        for (key, step), grid in self.maps.items():
            if key == group and step < before_step:
                total = grid.clone() if total is None else total + grid
        if total is None:
            return None
        total = total.cpu()  # once per mask; the maps stay where the pass ran
        if total.max() <= total.min():
            return None
        return (total - total.min()) / (total.max() - total.min())


def attention_modules(pipe, layers: list[Layer], latent_size: tuple[int, int]) -> dict[str, tuple[int, int]]:
    """Module path of each attention that sees the text (a U-Net's attn2, a transformer
    block's attn) -> the (w, h) grid of the layer holding it."""
    if layers and layers[0].patch > 1:
        return {f"{layer.module}.attn": layer.grid(*latent_size) for layer in layers}
    found = {}
    for layer in layers:
        for name, _ in denoiser(pipe).get_submodule(layer.module).named_modules():
            if name.endswith("attn2"):
                found[f"{layer.module}.{name}"] = layer.grid(*latent_size)
    return found


@contextmanager
def observing(pipe, clock, stores: list[AttentionStore]) -> Iterator[None]:
    """Fill each of `stores` during one pipeline call; `clock` is the call's StepClock."""

    def hook_for(maps: AttentionStore, path: str):
        def hook(module, args, kwargs):
            hidden = args[0] if args else kwargs["hidden_states"]
            context = kwargs.get("encoder_hidden_states", args[1] if len(args) > 1 else None)
            with torch.no_grad():
                maps.add(module, path, clock.step, hidden, context, kwargs.get("image_rotary_emb"))

        return hook

    handles = []
    try:
        for maps in stores:
            for path in maps.grids:
                module = denoiser(pipe).get_submodule(path)
                handles.append(module.register_forward_pre_hook(hook_for(maps, path), with_kwargs=True))
        yield
    finally:
        for handle in handles:
            handle.remove()


def keep_mask(region: torch.Tensor | None, size: tuple[int, int], threshold: float, dilate: int) -> torch.Tensor:
    """The keep-the-anchor mask at `size` of a region map: the map is resized there
    bilinearly, free where it is above threshold, grown by `dilate` cells; all kept when
    there is no region (no word found)."""
    if region is None:
        return torch.ones(size, dtype=torch.bool)
    region = region.float()[None, None]
    if tuple(region.shape[-2:]) != tuple(size):
        region = F.interpolate(region, size=size, mode="bilinear", align_corners=False)
    free = (region > threshold).float()
    if dilate:
        free = F.max_pool2d(free, kernel_size=2 * dilate + 1, stride=1, padding=dilate)
    return free[0, 0] < 0.5


class AttentionMask(MaskSource):
    """A frame's attention mask, computed when its rule first needs it: the anchor's
    region of the replaced words (from `anchor_store`, filled by the anchor pass) joined
    with the frame's region of the new words (observed during the frame's own pass, see
    `begin`), both over the steps before the rule's first step (the anchor's over all its
    steps when the rule starts at step 1)."""

    kind = "attention"
    alone = True

    def __init__(
        self, anchor_store: AttentionStore, frame_positions: list[int], first_step: int, threshold: float, dilate: int,
        latent_size: tuple[int, int],
    ):  # fmt: skip
        super().__init__()
        self.anchor_store, self.frame_positions, self.first_step = anchor_store, frame_positions, first_step
        self.threshold, self.dilate, self.latent_size = threshold, dilate, latent_size
        self.frame_store: AttentionStore | None = None
        self.tensor: torch.Tensor | None = None

    def begin(self, pipe) -> list[AttentionStore]:
        """A frame pass starts: fresh maps to observe during it."""
        self.tensor, self._resized = None, {}
        self.frame_store = AttentionStore(
            {"frame": self.frame_positions}, self.anchor_store.grids, set(range(1, self.first_step)),
            joint=self.anchor_store.joint,
        )  # fmt: skip
        return [self.frame_store]

    def mask(self) -> torch.Tensor:
        if self.tensor is None:
            regions = [self.anchor_store.region("anchor", before_step=10**9)]  # its steps were chosen
            if self.frame_store is not None:
                regions.append(self.frame_store.region("frame", before_step=self.first_step))
            regions = [r for r in regions if r is not None]
            region = torch.stack(regions).amax(dim=0) if regions else None
            self.tensor = keep_mask(region, self.latent_size, self.threshold, self.dilate)
        return self.tensor
