"""The capability table: each family is detected from its config, and the exact bound it
names holds bit for bit on a tiny random pipeline of that family."""

import numpy as np
import pytest
import torch

from framegen.engine import AnchorCache, LayerMap, SwapRule, needed_pairs, record, swapping
from framegen.engine.families import FAMILIES, bound_layers, denoiser, family_of, supported, unsupported
from framegen.models.published import configs

STEPS = 4


def test_each_published_config_is_its_family():
    assert [family_of(configs(name)["unet"]).name for name in ("sd15", "sd21-v", "sdxl")] == ["sd1", "sd2", "sdxl"]


def test_what_a_family_cannot_do_is_one_line_naming_who_can():
    assert supported("noise_masks") == "SD1.x/2.x, FLUX.1 and SD3.x" and supported("controlnet") == "SD1.x/2.x/XL"
    assert supported("transformer") == "FLUX.1 and SD3.x"
    sdxl = FAMILIES["sdxl"]
    assert unsupported(sdxl, "image_anchor", "a real-image anchor supports") == (
        "a real-image anchor supports SD1.x/2.x, FLUX.1 and SD3.x pipelines"
    )
    assert unsupported(FAMILIES["sd1"], "noise_masks", "noise masks support") is None


@pytest.mark.parametrize(
    "build", ["tiny_pipeline", "tiny_sd2_pipeline", "tiny_sdxl_pipeline", "tiny_flux_pipeline", "tiny_sd3_pipeline"]
)
def test_the_exact_bound_the_table_names_gives_the_anchor_bit_for_bit(build):
    from framegen.models import tiny, tiny_dit

    pipe = getattr(tiny_dit if "flux" in build or "sd3" in build else tiny, build)()
    pipe.set_progress_bar_config(disable=True)
    family = family_of(denoiser(pipe).config)
    rules = [SwapRule("full", bound_layers(family, LayerMap.of(denoiser(pipe))), range(1, STEPS + 1))]
    cache = AnchorCache(needed_pairs(rules))

    def generate(prompt):
        options = dict(width=64, height=64, num_inference_steps=STEPS, output_type="np")
        if family.transformer:
            options["max_sequence_length"] = 64
        return pipe(prompt, generator=torch.Generator("cpu").manual_seed(3), **options).images[0]

    with record(pipe, STEPS, cache):
        anchor = generate("girl, white hair, blue skirt")
    with swapping(pipe, STEPS, cache, rules):
        frame = generate("boy, black hair, red shirt, night")
    assert np.array_equal(frame, anchor), family.name
