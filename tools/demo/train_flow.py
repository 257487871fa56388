"""Train `demo-flow`: a FLUX.1-shaped transformer by flow matching on the demo's scenes.

    python -m tools.demo.train_flow --out demo-flow-train --minutes 60 --threads 1
    python -m tools.demo.train_flow --out DIR --install framegen/models/demo_flow/weights

(run from the checkout root). The pipeline is diffusers' own FluxPipeline: a
FluxTransformer2DModel with double- and single-stream blocks, the `demo` VAE (kept, with a
shift and scale measured on 128 px scenes: 32x32 latents, a 16x16 grid of packed image
tokens), demo's CLIP text encoder for the pooled embedding (fine-tuned) and a small T5
encoder with a word-level T5 tokenizer of its own (trained from scratch). No guidance
embedding: FLUX.1-schnell's shape, one transformer call per step.

Flow matching as in SD3/FLUX: x_t = (1 - s) x_0 + s e with s from a logit-normal shifted
like the inference schedule, target velocity e - x_0. AdamW, warmup then cosine, EMA.
Runs unchanged on a GPU (`--device cuda`). `--resume DIR` continues from a weights folder.
Writes DIR/weights (a diffusers folder), DIR/train.log, DIR/samples.png, DIR/metrics.json.
"""

from __future__ import annotations

import argparse
import json
import math
import shutil
import sys
import time
from pathlib import Path

import numpy as np
import torch

from .scenes import GRAMMAR_WORDS, make_scene
from .train import SAMPLE_PROMPTS, install_problem, load_ema, lr_at, optimise, save_grid, start_run, to_tensor

SIZE = 128  # px; the demo VAE's scale 4 and FLUX's 2x2 packing: a 16x16 token grid
T5_LENGTH = 32
SHIFT = 3.0  # the schedule's shift at 256 image tokens (SD3's 3; FLUX.1-dev's base_shift would be 1.65)
TRANSFORMER = dict(
    patch_size=1, in_channels=16, num_layers=4, num_single_layers=8, attention_head_dim=32, num_attention_heads=4,
    joint_attention_dim=64, pooled_projection_dim=32, guidance_embeds=False, axes_dims_rope=(8, 12, 12),
)  # fmt: skip
T5 = dict(d_model=64, d_ff=128, d_kv=16, num_layers=2, num_heads=4, dropout_rate=0.0)


def t5_tokenizer():
    """A T5 tokenizer in which every grammar word is one piece; other text falls back to characters."""
    from framegen.models.tiny_dit import tiny_t5_tokenizer

    return tiny_t5_tokenizer(GRAMMAR_WORDS, T5_LENGTH)


def scheduler():
    """FLUX.1-dev's scheduler shape (a shift that grows with the image), placed so that the
    16x16 grid gets SHIFT."""
    from diffusers import FlowMatchEulerDiscreteScheduler

    mu = math.log(SHIFT)
    return FlowMatchEulerDiscreteScheduler(
        shift=SHIFT, use_dynamic_shifting=True, base_shift=mu, max_shift=mu + 0.65, base_image_seq_len=256,
        max_image_seq_len=4096,
    )  # fmt: skip


def new_pipeline():
    """demo-flow's FluxPipeline before training: the demo VAE and CLIP, a new T5 and transformer."""
    from diffusers import FluxPipeline, FluxTransformer2DModel
    from transformers import T5Config, T5EncoderModel

    from framegen.models import demo

    base = demo.load_pipeline()
    tokenizer_2 = t5_tokenizer()
    text_encoder_2 = T5EncoderModel(T5Config(vocab_size=len(tokenizer_2), **T5))
    return FluxPipeline(
        scheduler=scheduler(), vae=base.vae, text_encoder=base.text_encoder, tokenizer=base.tokenizer,
        text_encoder_2=text_encoder_2, tokenizer_2=tokenizer_2, transformer=FluxTransformer2DModel(**TRANSFORMER),
    )  # fmt: skip


def load(folder: Path):
    from diffusers import FluxPipeline

    return FluxPipeline.from_pretrained(folder, use_safetensors=True, local_files_only=True)


def latents_of(vae, images: np.ndarray, device) -> tuple[torch.Tensor, torch.Tensor]:
    """The VAE posterior's (mean, std) of uint8 NHWC images, unscaled."""
    means, stds = [], []
    with torch.no_grad():
        for i in range(0, len(images), 128):
            dist = vae.encode(to_tensor(images[i : i + 128]).to(device)).latent_dist
            means.append(dist.mean)
            stds.append(dist.std)
    return torch.cat(means), torch.cat(stds)


def text_inputs(pipe, captions: list[str], device):
    clip = pipe.tokenizer(captions, padding="max_length", max_length=pipe.tokenizer.model_max_length,
                          truncation=True, return_tensors="pt").input_ids  # fmt: skip
    t5 = pipe.tokenizer_2(captions, padding="max_length", max_length=T5_LENGTH, truncation=True,
                          return_tensors="pt").input_ids  # fmt: skip
    return clip.to(device), t5.to(device)


def flow_step(pipe, x0, clip_ids, t5_ids, image_ids, text_ids) -> torch.Tensor:
    """The flow-matching loss of one batch of packed, scaled latents `x0` (B, 256, 16)."""
    u = torch.sigmoid(torch.randn(len(x0), device=x0.device))  # logit-normal(0, 1)
    s = SHIFT * u / (1 + (SHIFT - 1) * u)
    noise = torch.randn_like(x0)
    xt = (1 - s[:, None, None]) * x0 + s[:, None, None] * noise
    pooled = pipe.text_encoder(clip_ids, output_hidden_states=False).pooler_output
    context = pipe.text_encoder_2(t5_ids)[0]
    velocity = pipe.transformer(
        hidden_states=xt, timestep=s, pooled_projections=pooled, encoder_hidden_states=context,
        txt_ids=text_ids, img_ids=image_ids, return_dict=False,
    )[0]  # fmt: skip
    return ((velocity - (noise - x0)) ** 2).mean()


def train(pipe, data, *, seconds, batch, lr, rng, log, device) -> tuple[int, list[float]]:
    """Transformer, T5 and CLIP jointly for `seconds`; then their EMA weights are loaded."""
    from diffusers import FluxPipeline

    mean, std, clip_ids, t5_ids = data
    shift, scale = pipe.vae.config.shift_factor, pipe.vae.config.scaling_factor
    modules = (pipe.transformer, pipe.text_encoder_2, pipe.text_encoder)
    params = [p for m in modules for p in m.parameters()]
    for m in modules:
        m.train().requires_grad_(True)
    ema = [p.detach().clone() for p in params]
    opt = torch.optim.AdamW(params, lr=lr, weight_decay=1e-2)
    grid = mean.shape[-1] // 2
    image_ids = FluxPipeline._prepare_latent_image_ids(batch, grid, grid, device, mean.dtype)
    text_ids = torch.zeros(T5_LENGTH, 3, device=device)
    t0, step, losses = time.time(), 0, []
    while time.time() - t0 < seconds:
        for g in opt.param_groups:
            g["lr"] = lr_at((time.time() - t0) / seconds, step, 100, lr)
        idx = torch.from_numpy(rng.integers(0, len(mean), batch)).to(device)
        z = (mean[idx] + std[idx] * torch.randn_like(mean[idx]) - shift) * scale
        x0 = FluxPipeline._pack_latents(z, batch, z.shape[1], z.shape[2], z.shape[3])
        loss = flow_step(pipe, x0, clip_ids[idx], t5_ids[idx], image_ids, text_ids)
        losses.append(optimise(loss, opt, params, ema, min(0.998, (1 + step) / (10 + step))))
        if step % 25 == 0:
            rate = (step + 1) * batch / (time.time() - t0)
            log(f"step {step} loss {np.mean(losses[-25:]):.4f} lr {opt.param_groups[0]['lr']:.2e} {rate:.1f} samples/s")
        step += 1
    load_ema(ema, params)
    for m in modules:
        m.eval().requires_grad_(False)
    return step, losses


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--minutes", type=float, default=60.0)
    parser.add_argument("--scenes", type=int, default=8000, help="training scenes (seeds 0..N-1)")
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--lr", type=float, default=5e-4)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (default: 1, as documented)")
    parser.add_argument("--device", default="cpu", help="cpu or cuda: the script is the same on both")
    parser.add_argument("--resume", type=Path, help="continue from this demo-flow weights folder")
    parser.add_argument("--install", type=Path, metavar="DEST", help="also copy DIR/weights to DEST")
    args = parser.parse_args(argv)
    if args.install is not None and (problem := install_problem(args.install, args.out / "weights")):
        parser.exit(2, problem + "\n")
    rng, log = start_run(args, "framegen demo-flow training")
    device = torch.device(args.device)
    metrics: dict = {"command": "python -m tools.demo.train_flow " + " ".join(argv or sys.argv[1:])}

    t0 = time.time()
    pipe = (load(args.resume) if args.resume else new_pipeline()).to(device)
    scenes = [make_scene(i, (SIZE, SIZE)) for i in range(args.scenes)]
    captions = [s.caption for s in scenes]
    mean, std = latents_of(pipe.vae, np.stack([np.asarray(s.image) for s in scenes]), device)
    del scenes
    if not args.resume:  # FLUX's latents are (z - shift) * scale: centred, unit variance
        pipe.vae.register_to_config(
            shift_factor=mean.mean().item(), scaling_factor=1 / mean.std().item(), sample_size=SIZE
        )  # sample_size: the native size framegen reads (FLUX transformer configs name none)
    data = (mean, std, *text_inputs(pipe, captions, device))
    log(f"data: {len(captions)} scenes at {SIZE} px, latents {tuple(mean.shape)} in {time.time() - t0:.0f}s")
    metrics["params"] = {name: sum(p.numel() for p in getattr(pipe, name).parameters())
                         for name in ("transformer", "text_encoder", "text_encoder_2", "vae")}  # fmt: skip
    log(f"params {metrics['params']}")

    t0 = time.time()
    steps, losses = train(pipe, data, seconds=args.minutes * 60, batch=args.batch, lr=args.lr, rng=rng, log=log,
                          device=device)  # fmt: skip
    metrics.update(steps=steps, batch=args.batch, loss_last_100=float(np.mean(losses[-100:])),
                   minutes=(time.time() - t0) / 60, threads=args.threads, device=args.device)  # fmt: skip
    loss, minutes = metrics["loss_last_100"], metrics["minutes"]
    log(f"done: {steps} steps x {args.batch}, loss (last 100) {loss:.4f}, {minutes:.1f} min")

    weights = args.out / "weights"
    shutil.rmtree(weights, ignore_errors=True)
    pipe.to("cpu").save_pretrained(weights, safe_serialization=True)
    (args.out / "metrics.json").write_text(json.dumps(metrics, indent=1))
    pipe.set_progress_bar_config(disable=True)
    options = dict(width=SIZE, height=SIZE, num_inference_steps=24, output_type="np", max_sequence_length=T5_LENGTH)
    images = [pipe(SAMPLE_PROMPTS, generator=torch.Generator().manual_seed(s), **options).images for s in range(2)]
    save_grid((np.concatenate(images) * 255).round().astype(np.uint8), args.out / "samples.png", len(SAMPLE_PROMPTS))
    log(f"wrote {weights}")
    if args.install is not None:
        shutil.rmtree(args.install, ignore_errors=True)
        shutil.copytree(weights, args.install)
        log(f"installed {args.install}")


if __name__ == "__main__":
    main()
