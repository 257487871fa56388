"""What frames need from the anchor pass besides the activation cache, as one value:
the anchor's final latents (noise masks start from them) and the attention stores that
attention masks read. `to_tensors` / `load_tensors` let the disk cache keep it."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch


@dataclass
class AnchorState:
    latents: torch.Tensor | None = None
    stores: list = field(default_factory=list)  # automask.AttentionStore, filled by the anchor pass

    def clear(self) -> None:
        self.latents = None
        for store in self.stores:
            store.maps.clear()

    def to_tensors(self) -> dict[str, torch.Tensor]:
        tensors = {"latents": self.latents}
        for i, store in enumerate(self.stores):
            for (group, step), grid in store.maps.items():
                tensors[f"maps.{i}.{group}.{step}"] = grid
        return tensors

    def load_tensors(self, tensors: dict[str, torch.Tensor], device: torch.device, dtype: torch.dtype) -> None:
        """The state an anchor pass leaves behind, from `to_tensors`' output."""
        self.clear()
        self.latents = tensors["latents"].to(device, dtype)
        for name, grid in tensors.items():
            if name.startswith("maps."):
                _, i, group, step = name.split(".")
                self.stores[int(i)].maps[(group, int(step))] = grid
