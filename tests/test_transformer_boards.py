"""FLUX and SD3 storyboards through the CLI, on the tiny random pipelines: every rule kind
renders, reports and passes the gate; what a family cannot do is one line before loading;
LoRAs scale per frame; SD3 single files (Stability's layout with their parts as files, or
all in one) render as their folder does, bit for bit, with the network cut."""

import json

import numpy as np
import pytest
import torch
import yaml
from PIL import Image

from framegen.cli import main
from tools.dit_checkpoint import save_files

from .test_single_file import no_network  # noqa: F401 (a fixture)

RULES = {
    "flux": {"blocks": ["D0", "D1", "S0", "S1"], "late": ["S0", "S1"]},
    "sd3": {"blocks": ["D0", "D1"], "late": ["D1"]},
}


def board(family: str, **model) -> dict:
    blocks, late = RULES[family]["blocks"], RULES[family]["late"]
    return {
        "version": 1,
        "model": {"id": f"tiny-random-{family}", **model},
        "render": {"width": 64, "height": 64, "steps": 4, "guidance": 3.5, "seed": 7},
        "anchor": {"prompt": "girl, white hair, school uniform, blue skirt, outdoor"},
        "swap": [{"mode": "kv", "layers": blocks, "steps": "1-2"},
                 {"mode": "mask", "layers": late + ["LATENTS"], "steps": "3-4", "mask": {"grid": ["10", "10"]}}],
        "frames": [
            {"name": "pants", "replace": {"blue skirt": "red pants"}},
            {"name": "threshold", "add": "smile", "swap": [
                {"mode": "threshold", "layers": late, "threshold": 0.5, "relative": True, "reduce": "position"}]},
            {"name": "kvbox", "add": "hat",
             "swap": [{"mode": "kv", "layers": blocks, "mask": {"boxes": [[0, 0, 32, 64]]}}]},
            {"name": "attention", "replace": {"white hair": "black hair"},
             "swap": [{"mode": "mask", "layers": late, "steps": "2-4", "mask": {"auto": "attention"}}]},
            {"name": "noise", "replace": {"outdoor": "night"},
             "swap": [{"mode": "mask", "layers": ["LATENTS"], "steps": "2-4", "mask": {"auto": "noise"}}]},
            {"name": "final", "add": "rain", "swap": [{"mode": "full", "layers": ["FINAL"], "steps": "all"}]},
        ],
        "video": {"fps": 4},
        "report": {"background": {"segmenter": "none"}},
    }  # fmt: skip


def write(tmp_path, name: str, spec: dict):
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    return path


def images(folder, report):
    return {f["name"]: np.asarray(Image.open(folder / f["image"])) for f in report["frames"]}


@pytest.mark.parametrize("family", ["flux", "sd3"])
def test_every_rule_kind_renders_reports_and_passes_the_gate(tmp_path, capsys, family):
    path = write(tmp_path, family, board(family))
    assert main(["validate", str(path)]) == 0
    assert main(["render", "-q", str(path), "-o", str(tmp_path / "out")]) == 0, capsys.readouterr().err
    report = json.loads((tmp_path / "out" / "report.json").read_text())
    frames = images(tmp_path / "out", report)
    anchor = np.asarray(Image.open(tmp_path / "out" / "anchor.png"))
    assert list(frames) == ["pants", "threshold", "kvbox", "attention", "noise", "final"]
    assert np.array_equal(frames["final"], anchor)  # FINAL at every step: the family's exact bound
    kinds = {f["name"]: [m["kind"] for m in f["masks"]] for f in report["frames"]}
    assert kinds["attention"] == ["attention"] and kinds["noise"] == ["noise"] and kinds["pants"] == ["grid"]
    for frame in report["frames"]:
        for mask in frame["masks"]:
            assert Image.open(tmp_path / "out" / mask["image"]).size == (64, 64)
    assert report["cache_bytes"] > 0 and (tmp_path / "out" / "clip.mp4").is_file()
    worst = max(f["background_mse"] for f in report["frames"])
    assert main(["check", str(tmp_path / "out" / "report.json"), "--max-background-mse", str(worst + 1)]) == 0
    assert main(["check", str(tmp_path / "out" / "report.json"), "--max-background-mse", str(worst / 2)]) == 1
    capsys.readouterr()
    # a second render finds every shot in place and needs no anchor pass
    assert main(["render", str(path), "-o", str(tmp_path / "out")]) == 0
    assert "anchor cache not needed" in capsys.readouterr().out
    assert all(f["reused"] for f in json.loads((tmp_path / "out" / "report.json").read_text())["frames"])


CANNOT = [
    ("flux", {"render.width": 72}, "render.width: 72 is not a multiple of 16 (FLUX.1 renders in 16-pixel blocks)"),
    (
        "sd3",
        {"swap.0.layers": ["D0", "FINAL"]},
        "swap[0].layers: 'FINAL' has no attention for a kv rule (known: D0, D1)",
    ),
    ("flux", {"swap.1.layers": ["S7"]}, "swap[1].layers: unknown layer 'S7' (known: D0, D1, S0, S1, FINAL, LATENTS, "),
    (
        "flux",
        {"anchor.image": "anchor.png", "anchor.inversion": {"method": "ddim", "guidance": 2.0}},
        "anchor.inversion.guidance: FLUX.1 inverts with the render's embedded guidance",
    ),
    (
        "flux",
        {"model.controlnet": [{"id": "demo-control"}], "anchor.control": ["anchor.png"]},
        "model.controlnet: a ControlNet supports SD1.x/2.x/XL pipelines",
    ),
    ("flux", {"model.t5": False}, "model.t5: FLUX.1 encodes prompts with T5: it cannot be left out"),
    ("sd3", {"model.clip_l": "clip_l.safetensors"}, "model.clip_l: text encoder and VAE files go with a FLUX.1"),
]


@pytest.mark.parametrize("family, change, message", CANNOT)
def test_what_a_family_cannot_do_is_one_line_before_loading(tmp_path, capsys, family, change, message):
    spec = board(family)
    Image.new("RGB", (64, 64)).save(tmp_path / "anchor.png")
    from safetensors.torch import save_file

    save_file({"text_model.final_layer_norm.weight": torch.zeros(1)}, tmp_path / "clip_l.safetensors")
    for key, value in change.items():
        *parents, last = key.split(".")
        target = spec
        for part in parents:
            target = target[int(part)] if part.isdigit() else target[part]
        target[last] = value
    path = write(tmp_path, "bad", spec)
    assert main(["render", str(path), "-o", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and message in err, err
    assert not list(tmp_path.glob("out/**/*.png"))  # nothing rendered


@pytest.mark.parametrize("family", ["flux", "sd3"])
def test_a_lora_scales_per_frame_and_off_is_no_lora(tmp_path, capsys, family):
    from peft import LoraConfig, get_peft_model_state_dict

    from framegen.models import tiny_dit

    source = getattr(tiny_dit, f"tiny_{family}_pipeline")()
    torch.manual_seed(5)
    config = LoraConfig(r=4, lora_alpha=4, target_modules=["to_q", "to_k", "to_v", "to_out.0"], init_lora_weights=False)
    source.transformer.add_adapter(config)
    type(source).save_lora_weights(  # diffusers' own format for the family (FluxPipeline's, SD3's)
        tmp_path / "lora",
        transformer_lora_layers=get_peft_model_state_dict(source.transformer),
        safe_serialization=True,
    )
    spec = board(family)
    spec["swap"], spec["frames"] = [], spec["frames"][:1]
    plain = write(tmp_path, "plain", spec)
    lora = str(tmp_path / "lora" / "pytorch_lora_weights.safetensors")
    spec["model"]["lora"] = [{"path": lora, "name": "style", "scale": 0}]
    spec["frames"].append({"name": "on", "replace": {"blue skirt": "red pants"}, "lora": {"style": 1}})
    styled = write(tmp_path, "styled", spec)
    for path in (plain, styled):
        assert main(["render", "-q", str(path), "-o", str(tmp_path / path.stem)]) == 0, capsys.readouterr().err
    reports = {n: json.loads((tmp_path / n / "report.json").read_text()) for n in ("plain", "styled")}
    ours, theirs = images(tmp_path / "plain", reports["plain"]), images(tmp_path / "styled", reports["styled"])
    anchors = [np.asarray(Image.open(tmp_path / n / "anchor.png")) for n in ("plain", "styled")]
    assert np.array_equal(anchors[0], anchors[1]) and np.array_equal(theirs["pants"], ours["pants"])  # scale 0: off
    assert not np.array_equal(theirs["on"], ours["pants"])  # the same frame with the LoRA on


@pytest.fixture(scope="module")
def sd3_files(tmp_path_factory):
    from framegen.models.tiny_dit import tiny_sd3_pipeline

    root = tmp_path_factory.mktemp("sd3-files")
    pipe = tiny_sd3_pipeline()
    pipe.save_pretrained(root / "folder", safe_serialization=True)
    return root, save_files(pipe, root / "parts"), save_files(pipe, root / "aio", all_in_one=True)


def test_sd3_single_files_render_as_their_folder_bit_for_bit(tmp_path, capsys, sd3_files, no_network):  # noqa: F811
    root, parts, aio = sd3_files
    rendered = {}
    for name, model in (
        ("folder", {"id": str(root / "folder")}),
        ("parts", {"config": str(root / "folder"), **{k: str(v) for k, v in parts.items()}}),
        ("aio", {"config": str(root / "folder"), "id": str(aio["id"])}),
    ):
        spec = board("sd3")
        spec["model"] = model
        spec["frames"] = spec["frames"][:3]
        path = write(tmp_path, name, spec)
        assert main(["render", "-q", str(path), "-o", str(tmp_path / name)]) == 0, capsys.readouterr().err
        report = json.loads((tmp_path / name / "report.json").read_text())
        rendered[name] = {
            "anchor": np.asarray(Image.open(tmp_path / name / "anchor.png")),
            **images(tmp_path / name, report),
        }
    for name in ("parts", "aio"):
        for frame, image in rendered["folder"].items():
            assert np.array_equal(rendered[name][frame], image), (name, frame)


def test_a_transformer_file_without_its_parts_is_one_line_naming_the_keys(tmp_path, capsys, sd3_files):
    root, parts, _ = sd3_files
    spec = board("sd3")
    spec["model"] = {"id": str(parts["id"]), "config": str(root / "folder"), "clip_l": str(parts["clip_l"])}
    path = write(tmp_path, "missing", spec)
    assert main(["validate", str(path)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "is an SD3 transformer without its clip_g and t5xxl and vae: give " in err
    assert "model.clip_g (clip_g.safetensors), model.t5xxl (t5xxl_fp16.safetensors), model.vae (ae.safetensors)" in err
    assert "or `t5: false` to render without T5" in err


FLUX_KEY, SD3_KEY = "double_blocks.0.img_attn.qkv.weight", "joint_blocks.0.x_block.attn.qkv.weight"


@pytest.mark.parametrize(
    "keys, family",
    [
        ([FLUX_KEY, "guidance_in.in_layer.weight"], "flux-dev"),
        ([f"model.diffusion_model.{FLUX_KEY}"], "flux-schnell"),  # ComfyUI's prefix; no guidance embedder
        ([f"model.diffusion_model.{SD3_KEY}"], "sd3-medium"),
        ([SD3_KEY, "joint_blocks.0.x_block.attn2.qkv.weight"], "sd35-medium"),
        ([f"joint_blocks.{i}.x_block.attn.qkv.weight" for i in range(38)], "sd35-large"),
    ],
)
def test_a_transformer_files_family_is_read_from_its_keys(tmp_path, keys, family):
    from safetensors.torch import save_file

    from framegen.models.checkpoints import Checkpoint

    save_file({key: torch.zeros(1) for key in keys}, tmp_path / "t.safetensors")
    checkpoint = Checkpoint.read(tmp_path / "t.safetensors")
    assert checkpoint.family == family and checkpoint.transformer


def test_framegen_layers_reads_a_flux_files_blocks_from_the_shipped_config(tmp_path, capsys):
    from safetensors.torch import save_file

    save_file({FLUX_KEY: torch.zeros(1), "guidance_in.in_layer.weight": torch.zeros(1)}, tmp_path / "f.safetensors")
    assert main(["layers", str(tmp_path / "f.safetensors")]) == 0
    lines = capsys.readouterr().out.splitlines()
    rows = {line.split()[0]: line.split()[1:4] for line in lines[1:]}
    assert "tokens at 1024x1024" in lines[0]  # FLUX.1's native size
    assert [name for name in rows if name.startswith("D")][-1] == "D18" and list(rows)[-3] == "S37"
    assert rows["S37"] == ["single_transformer_blocks.37", "3072", "64x64"]


def test_the_sweep_probes_a_flux_models_blocks(tmp_path, capsys):
    path = write(tmp_path, "sweep", board("flux"))
    assert main(["sweep", str(path), "--probe", "-q", "-o", str(tmp_path / "sweep")]) == 0, capsys.readouterr().err
    table = (tmp_path / "sweep" / "sweep.md").read_text()
    assert all(f"| {name} |" in table for name in ("D0", "D1", "S0", "S1"))  # the probe: every block that sees text
