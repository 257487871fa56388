"""The model families framegen knows (SD1.5, SD2.1-v, SDXL base): their published
component configs, shipped in `configs/<family>/` in diffusers' folder layout (facts
about architectures, no weights), and the CLIP tokenizer they share (`configs/clip-tokenizer/`,
built by tools/clip_vocab.py from the merges OpenAI published). A single-file checkpoint
loads offline with these; real-size pipelines are built from them (benchmarks/real_size.py)."""

from __future__ import annotations

import json
from pathlib import Path

FOLDER = Path(__file__).resolve().parent / "configs"
FAMILIES = ("sd15", "sd21-v", "sdxl")
# SD2's OpenCLIP text encoders pad with "!" (token 0), OpenAI's CLIP with its end token
PAD_TOKENS = {("sd21-v", "tokenizer"): "!", ("sdxl", "tokenizer_2"): "!"}


def folder(family: str) -> Path:
    """The family's config folder: model_index.json and one subfolder per component."""
    if family not in FAMILIES:
        raise KeyError(f"unknown model family '{family}' (known: {', '.join(FAMILIES)})")
    return FOLDER / family


def configs(family: str) -> dict[str, dict]:
    """Component name (unet, vae, text_encoder, text_encoder_2, scheduler) -> its config;
    `pipeline` -> {"class": the diffusers pipeline class name}."""
    root = folder(family)
    index = json.loads((root / "model_index.json").read_text())
    parts = {"pipeline": {"class": index["_class_name"]}}
    for name, entry in index.items():
        if isinstance(entry, list) and entry[0] is not None and not name.startswith("tokenizer"):
            config = json.loads(next((root / name).glob("*config.json")).read_text())
            config.pop("model_type", None)
            parts[name] = config
    return parts


def tokenizers(family: str) -> dict:
    """The family's tokenizers (`tokenizer`, and `tokenizer_2` for SDXL), offline."""
    from transformers import CLIPTokenizer

    index = json.loads((folder(family) / "model_index.json").read_text())
    vocab, merges = FOLDER / "clip-tokenizer" / "vocab.json", FOLDER / "clip-tokenizer" / "merges.txt"
    return {
        name: CLIPTokenizer(
            str(vocab), str(merges), pad_token=PAD_TOKENS.get((family, name), "<|endoftext|>"), model_max_length=77
        )
        for name in index
        if name.startswith("tokenizer")
    }


def random_pipeline(family: str, dtype=None, device="cpu", seed: int = 0):
    """The family's pipeline from framegen's shipped configs and CLIP tokenizer, with
    random weights (bfloat16 unless `dtype`) and its own scheduler: the real architecture,
    for proving code paths offline (benchmarks/real_size.py, the `slow` tests)."""
    import diffusers
    import torch
    import transformers

    dtype = dtype or torch.bfloat16
    parts = configs(family)
    torch.manual_seed(seed)
    components = tokenizers(family)
    for name in ("unet", "vae", "text_encoder", "text_encoder_2"):
        if name not in parts:
            continue
        config = dict(parts[name])
        with torch.device(device):
            if name.startswith("text_encoder"):
                cls = getattr(transformers, config.pop("architectures")[0])
                model = cls(transformers.CLIPTextConfig(**config))
            else:
                model = getattr(diffusers, config.pop("_class_name")).from_config(config)
        components[name] = model.to(dtype)
    scheduler = dict(parts["scheduler"])
    components["scheduler"] = getattr(diffusers, scheduler.pop("_class_name")).from_config(scheduler)
    pipeline = getattr(diffusers, parts["pipeline"]["class"])
    if pipeline is diffusers.StableDiffusionPipeline:
        components.update(safety_checker=None, feature_extractor=None, requires_safety_checker=False)
    return pipeline(**components)
