"""Layer aliases from the U-Net config, checked against real tensor shapes."""

import pytest
import torch

from framegen.engine.layers import LayerMap, canonical, layer_table
from framegen.models.tiny import SD1_UNET, SDXL_UNET, tiny_unet

PAPER_SD1 = {  # the paper's table: alias -> diffusers module
    "IN1": "down_blocks.0.attentions.0", "IN2": "down_blocks.0.attentions.1",
    "IN4": "down_blocks.1.attentions.0", "IN5": "down_blocks.1.attentions.1",
    "IN7": "down_blocks.2.attentions.0", "IN8": "down_blocks.2.attentions.1",
    "MID": "mid_block",
    "OUT3": "up_blocks.1.attentions.0", "OUT4": "up_blocks.1.attentions.1", "OUT5": "up_blocks.1.attentions.2",
    "OUT6": "up_blocks.2.attentions.0", "OUT7": "up_blocks.2.attentions.1", "OUT8": "up_blocks.2.attentions.2",
    "OUT9": "up_blocks.3.attentions.0", "OUT10": "up_blocks.3.attentions.1", "OUT11": "up_blocks.3.attentions.2",
}  # fmt: skip


def shapes_of(unet, layers, latent_w, latent_h):
    shapes, handles = {}, []
    for layer in layers.layers:

        def hook(module, args, output, name=layer.name):
            shapes[name] = tuple((output[0] if isinstance(output, tuple) else output).shape)

        if layer.name != "LATENTS":  # no module: the U-Net's input stands in for it
            handles.append(unet.get_submodule(layer.module).register_forward_hook(hook))
    latents = torch.randn(2, 4, latent_h, latent_w)
    shapes["LATENTS"] = tuple(latents.shape)
    with torch.no_grad():
        unet(latents, torch.tensor(10), encoder_hidden_states=torch.randn(2, 5, 32))
    for handle in handles:
        handle.remove()
    return shapes


def test_sd1_aliases_are_the_papers_modules_and_text_layers():
    layers = LayerMap.of(tiny_unet())
    for alias, module in PAPER_SD1.items():
        assert layers.module_path(alias) == module
    assert [layer.name for layer in layers.cross_attention_layers()] == list(PAPER_SD1)
    assert [layer.name for layer in layers.layers][:1] + [layer.name for layer in layers.layers][-2:] == [
        "IN0",
        "OUT11",
        "LATENTS",
    ]
    assert len(layers.layers) == 26 and layers.module_path("latents") == layers.module_path("LATENTS") == "latents"


@pytest.mark.parametrize("sdxl", [False, True], ids=["sd1", "sdxl"])
def test_channels_and_grid_match_the_real_outputs(sdxl):
    unet = tiny_unet(sdxl)
    layers = LayerMap.of(unet)
    shapes = shapes_of(unet, layers, 36, 52)  # odd sizes down the path: stride-2 convs round up
    for layer in layers.layers:
        width, height = layer.grid(36, 52)
        assert shapes[layer.name] == (2, layer.channels, height, width), layer.name
    if not sdxl:
        assert layers.by_alias["MID"].grid(80, 112) == (10, 14)  # the paper's mask grid
        assert layers.by_alias["OUT3"].grid(80, 112) == (20, 28)


def test_sdxl_has_its_own_structure():
    layers = LayerMap.of(tiny_unet(sdxl=True))
    names = [layer.name for layer in layers.layers]
    assert names == [f"IN{i}" for i in range(9)] + ["MID"] + [f"OUT{i}" for i in range(9)] + ["LATENTS"]
    assert layers.module_path("IN1") == "down_blocks.0.resnets.0"  # no attention at full resolution
    assert layers.module_path("IN4") == "down_blocks.1.attentions.0"
    assert layers.module_path("OUT0") == "up_blocks.0.attentions.0"
    assert "OUT11" not in layers and "IN9" not in layers


def test_spellings_and_raw_paths():
    layers = LayerMap.of(tiny_unet())
    assert canonical("IN01") == "IN1" and canonical("out03") == "OUT3" and canonical("M00") == "MID"
    assert layers.module_path("IN08") == layers.module_path("IN8")
    assert layers.module_path("M00") == "mid_block"
    raw = "up_blocks.1.attentions.0.transformer_blocks.0"
    assert raw in layers and layers.module_path(raw) == raw
    assert "OUT13" not in layers and "up_blocks.9" not in layers
    with pytest.raises(KeyError):
        layers.module_path("OUT13")
    assert {"IN01", "M00", "OUT11"} <= layers.known_names()


def test_table_is_derived_from_config_without_weights():
    # sd2-style per-block list for layers_per_block, and a model without a mid block
    config = dict(SD1_UNET, layers_per_block=[1, 1, 1, 1], mid_block_type=None)
    names = [layer.name for layer in layer_table(config)]
    assert "MID" not in names
    assert names[:4] == ["IN0", "IN1", "IN2", "IN3"]  # one layer, then the downsampler
    assert names[-2:] == ["OUT7", "LATENTS"]  # 4 up blocks x (1 + 1)
    assert len(layer_table(dict(SDXL_UNET, mid_block_type="UNetMidBlock2DCrossAttn"))) == 20  # with LATENTS
