"""The model families framegen knows (SD1.5, SD2.1-v, SDXL base; FLUX.1-dev and -schnell,
SD3-medium, SD3.5-medium and -large): their published component configs, shipped in
`configs/<family>/` in diffusers' folder layout (facts about architectures, no weights;
tools/dit_configs.py writes the transformers'), the CLIP tokenizer they share
(`configs/clip-tokenizer/`, built by tools/clip_vocab.py from the merges OpenAI published)
and T5's (`configs/t5-tokenizer/`, tools/t5_tokenizer.py). A single-file checkpoint loads
offline with these; real-size pipelines are built from them (benchmarks/real_size.py)."""

from __future__ import annotations

import json
from pathlib import Path

FOLDER = Path(__file__).resolve().parent / "configs"
FAMILIES = ("sd15", "sd21-v", "sdxl", "flux-dev", "flux-schnell", "sd3-medium", "sd35-medium", "sd35-large")
# OpenCLIP's text encoders (SD2's, SDXL's and SD3's second) pad with "!" (token 0), OpenAI's CLIP with its end token
PAD_TOKENS = {("sd21-v", "tokenizer"): "!", ("sdxl", "tokenizer_2"): "!"}
PAD_TOKENS |= {(family, "tokenizer_2"): "!" for family in FAMILIES if family.startswith("sd3")}


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
    """The family's tokenizers (`tokenizer`, and `tokenizer_2` / `tokenizer_3`: CLIP or
    T5, as its model_index.json names them), offline."""
    from transformers import CLIPTokenizer, T5TokenizerFast

    index = json.loads((folder(family) / "model_index.json").read_text())
    vocab, merges = FOLDER / "clip-tokenizer" / "vocab.json", FOLDER / "clip-tokenizer" / "merges.txt"
    found = {}
    for name, (_, kind) in ((n, e) for n, e in index.items() if n.startswith("tokenizer")):
        if kind.startswith("T5"):
            found[name] = T5TokenizerFast.from_pretrained(str(FOLDER / "t5-tokenizer"))
        else:
            pad = PAD_TOKENS.get((family, name), "<|endoftext|>")
            found[name] = CLIPTokenizer(str(vocab), str(merges), pad_token=pad, model_max_length=77)
    return found


def random_pipeline(family: str, dtype=None, device="cpu", seed: int = 0, changes: dict | None = None):
    """The family's pipeline from framegen's shipped configs and tokenizers, with random
    weights (bfloat16 unless `dtype`) and its own scheduler: the real architecture, for
    proving code paths offline (benchmarks/real_size.py, the `slow` tests). `changes`
    overrides config fields per component (fewer blocks: {"transformer": {"num_layers": 2}})
    or leaves a component out (`{"text_encoder_3": None}`: SD3 without T5)."""
    import diffusers
    import torch
    import transformers

    dtype, changes = dtype or torch.bfloat16, changes or {}
    parts = configs(family)
    torch.manual_seed(seed)
    components = tokenizers(family)
    for name in ("unet", "transformer", "vae", "text_encoder", "text_encoder_2", "text_encoder_3"):
        if name not in parts:
            continue
        if name in changes and changes[name] is None:
            components[name] = components[name.replace("text_encoder", "tokenizer")] = None
            continue
        config = {**parts[name], **changes.get(name, {})}
        with torch.device(device):
            if name.startswith("text_encoder"):
                cls = getattr(transformers, config.pop("architectures")[0])
                settings = transformers.T5Config if cls is transformers.T5EncoderModel else transformers.CLIPTextConfig
                model = cls(settings(**config))
            else:
                model = getattr(diffusers, config.pop("_class_name")).from_config(config)
        components[name] = model.to(dtype).eval()
    scheduler = dict(parts["scheduler"])
    components["scheduler"] = getattr(diffusers, scheduler.pop("_class_name")).from_config(scheduler)
    pipeline = getattr(diffusers, parts["pipeline"]["class"])
    if pipeline is diffusers.StableDiffusionPipeline:
        components.update(safety_checker=None, feature_extractor=None, requires_safety_checker=False)
    return pipeline(**components)
