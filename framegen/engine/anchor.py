"""What frames need from the anchor pass besides the activation cache, as one value:
the anchor's final latents (noise masks start from them), the attention stores that
attention masks read, and a real image's inverted noise (every pass starts from it).
`to_tensors` / `load_tensors` let the disk cache keep it."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch


@dataclass
class AnchorState:
    latents: torch.Tensor | None = None
    noise: torch.Tensor | None = None  # a real image's inversion: where every pass starts (else the seed's)
    stores: list = field(default_factory=list)  # automask.AttentionStore, filled by the anchor pass

    def clear(self) -> None:
        self.latents = self.noise = None
        for store in self.stores:
            store.maps.clear()

    def to_tensors(self) -> dict[str, torch.Tensor]:
        tensors = {"latents": self.latents, **({"noise": self.noise} if self.noise is not None else {})}
        for i, store in enumerate(self.stores):
            for (group, step), grid in store.maps.items():
                tensors[f"maps.{i}.{group}.{step}"] = grid
        return tensors

    def load_tensors(self, tensors: dict[str, torch.Tensor], device: torch.device, dtype: torch.dtype) -> None:
        """The state an anchor pass leaves behind, from `to_tensors`' output."""
        self.clear()
        self.latents = tensors["latents"].to(device, dtype)
        self.noise = tensors["noise"].to(device, dtype) if "noise" in tensors else None
        for name, grid in tensors.items():
            if name.startswith("maps."):
                _, i, group, step = name.split(".")
                self.stores[int(i)].maps[(group, int(step))] = grid
