"""The bundled `demo-flow` model: a FLUX.1-shaped pipeline the project trains by flow
matching on the demo's scenes; it loads offline, through diffusers' own FluxPipeline."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from framegen.models import demo_flow
from tools.demo.scenes import GRAMMAR_WORDS, make_scene

pytestmark = pytest.mark.skipif(
    not (demo_flow.WEIGHTS_DIR / "model_index.json").is_file(), reason="demo-flow weights not built"
)


def test_weights_are_small_safetensors():
    files = [f for f in demo_flow.WEIGHTS_DIR.rglob("*") if f.is_file()]
    assert sum(f.stat().st_size for f in files) <= 25 * 2**20
    assert not [f for f in files if f.suffix in {".bin", ".pt", ".pth", ".ckpt", ".pkl"}]
    parts = {f.parent.name for f in files}
    assert {"transformer", "vae", "text_encoder", "text_encoder_2", "tokenizer", "tokenizer_2", "scheduler"} <= parts


@pytest.fixture(scope="module")
def pipe():
    return demo_flow.load_pipeline()


def test_it_is_flux_shaped_with_a_16x16_token_grid(pipe):
    from diffusers import FluxPipeline, FluxTransformer2DModel

    from framegen.engine.families import family_of
    from framegen.engine.layers import LayerMap
    from framegen.models.facts import facts_of

    assert isinstance(pipe, FluxPipeline) and isinstance(pipe.transformer, FluxTransformer2DModel)
    assert len(pipe.transformer.transformer_blocks) >= 2 and len(pipe.transformer.single_transformer_blocks) >= 2
    assert family_of(pipe.transformer.config).name == "flux"
    config = facts_of(pipe).config
    assert config.native == demo_flow.NATIVE_SIZE[0]
    w, h = (side // config.vae_scale for side in demo_flow.NATIVE_SIZE)
    assert LayerMap.of(pipe.transformer).layers[0].grid(w, h) == (16, 16)


def test_grammar_words_are_single_tokens_in_both_tokenizers(pipe):
    for tokenizer in (pipe.tokenizer, pipe.tokenizer_2):
        for word in GRAMMAR_WORDS:
            assert len(tokenizer(word, add_special_tokens=False).input_ids) == 1, (tokenizer, word)
    for seed in range(200):  # every caption fits the T5 length it was trained at
        assert len(pipe.tokenizer_2(make_scene(seed).caption).input_ids) <= demo_flow.T5_LENGTH


def test_the_render_pads_t5_to_the_length_it_was_trained_at(pipe):
    from framegen.engine.encoding import encoded

    embeds = encoded(pipe, "girl, red shirt")["prompt_embeds"]
    assert embeds.shape[1] == demo_flow.T5_LENGTH == pipe.tokenizer_2.model_max_length


def test_pipeline_renders_offline(pipe):
    image = pipe(
        "girl, blonde hair, red shirt, blue skirt, grass, day, house", width=128, height=128, num_inference_steps=8,
        generator=torch.Generator().manual_seed(0), max_sequence_length=demo_flow.T5_LENGTH,
    ).images[0]  # fmt: skip
    assert image.size == demo_flow.NATIVE_SIZE
    assert np.asarray(image).std() > 5  # not a blank image
