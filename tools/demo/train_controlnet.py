"""Trains `demo-control`: a ControlNet for the demo model that places the person where a
silhouette says (CPU; the demo model itself stays frozen).

    python -m tools.demo.train_controlnet --out demo-control-train --minutes 20 --threads 2 \\
        --install framegen/models/demo/controlnet

(run from the checkout root; `--resume DIR/controlnet` continues a run). The scene
grammar knows where it draws the person, so each training scene comes with its condition:
the person's silhouette, white on black, at the image's size. The ControlNet starts as a
copy of the demo U-Net's encoder (diffusers' `ControlNetModel.from_unet`, zero convolutions
at zero) with a conditioning embedding that halves twice (64 pixels -> the 16x16 latent).
Trained with the demo model's own noise schedule and epsilon loss, 10% caption dropout,
AdamW with warmup then cosine, EMA.
Scenes use seeds 0..N-1 (the demo model's training range); evaluation pairs use seeds
>= 60,000,000. Writes DIR/train.log, DIR/samples.png (condition, then sample, per row)
and DIR/controlnet (a diffusers ControlNet folder); `--install DEST` copies it there.
"""

from __future__ import annotations

import argparse
import shutil
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from framegen.models.demo import load_pipeline

from .scenes import make_scene
from .train import TEXT_LENGTH, load_ema, lr_at, optimise, save_grid, start_run, to_tensor

CONDITION_CHANNELS = (16, 32, 64)  # two stride-2 convolutions: 64 px -> the 16x16 latent


def silhouette(person_mask: np.ndarray) -> np.ndarray:
    """A control image: the person white on black, (H, W, 3) uint8."""
    return np.repeat((person_mask * 255).astype(np.uint8)[..., None], 3, axis=2)


def condition_tensor(images: np.ndarray) -> torch.Tensor:
    """Control images (N, H, W, 3) uint8 as the pipeline feeds them: 0..1, channels first."""
    return torch.from_numpy(images).permute(0, 3, 1, 2).float() / 255.0


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--minutes", type=float, default=20.0)
    parser.add_argument("--scenes", type=int, default=8000, help="training scenes (seeds 0..N-1)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--lr", type=float, default=2e-4)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--install", type=Path, help="copy the trained ControlNet folder here")
    parser.add_argument("--resume", type=Path, help="continue from this ControlNet folder (a run's DIR/controlnet)")
    args = parser.parse_args(argv)

    from diffusers import ControlNetModel, DDPMScheduler

    rng, log = start_run(args, "demo-control")
    pipe = load_pipeline()
    vae, unet, text_encoder, tokenizer = pipe.vae, pipe.unet, pipe.text_encoder, pipe.tokenizer
    for module in (vae, unet, text_encoder):
        module.requires_grad_(False)

    t0 = time.time()
    scenes = [make_scene(i) for i in range(args.scenes)]
    images = np.stack([np.asarray(s.image) for s in scenes])
    conditions = condition_tensor(np.stack([silhouette(s.person_mask) for s in scenes]))
    ids = tokenizer(
        [s.caption for s in scenes], padding="max_length", max_length=TEXT_LENGTH, truncation=True, return_tensors="pt"
    ).input_ids
    empty = tokenizer([""], padding="max_length", max_length=TEXT_LENGTH, return_tensors="pt").input_ids
    del scenes
    with torch.no_grad():
        dists = [vae.encode(to_tensor(images[i : i + 128])).latent_dist for i in range(0, len(images), 128)]
        mean, std = torch.cat([d.mean for d in dists]), torch.cat([d.std for d in dists])
        texts = torch.cat([text_encoder(ids[i : i + 256])[0] for i in range(0, len(ids), 256)])
        empty_text = text_encoder(empty)[0]
    scaling = vae.config.scaling_factor
    log(f"data: {len(images)} scenes, latents {tuple(mean.shape)}, conditions {tuple(conditions.shape)}, "
        f"{time.time() - t0:.0f}s")  # fmt: skip

    if args.resume:
        controlnet = ControlNetModel.from_pretrained(args.resume, use_safetensors=True, local_files_only=True)
    else:
        controlnet = ControlNetModel.from_unet(unet, conditioning_embedding_out_channels=CONDITION_CHANNELS)
    controlnet.train()
    params = list(controlnet.parameters())
    ema = [p.detach().clone() for p in params]
    opt = torch.optim.AdamW(params, lr=args.lr, weight_decay=1e-2)
    noise_scheduler = DDPMScheduler.from_config(pipe.scheduler.config)
    seconds, start, step, losses = args.minutes * 60, time.time(), 0, []
    while time.time() - start < seconds:
        for group in opt.param_groups:
            group["lr"] = lr_at((time.time() - start) / seconds, step, 50, args.lr)
        idx = torch.from_numpy(rng.integers(0, len(mean), args.batch))
        latents = (mean[idx] + std[idx] * torch.randn_like(mean[idx])) * scaling
        text = texts[idx].clone()
        text[torch.rand(len(idx)) < 0.1] = empty_text[0]
        noise = torch.randn_like(latents)
        t = torch.randint(0, 1000, (len(idx),))
        noisy = noise_scheduler.add_noise(latents, noise, t)
        down, mid = controlnet(noisy, t, text, controlnet_cond=conditions[idx], return_dict=False)
        pred = unet(noisy, t, text, down_block_additional_residuals=down, mid_block_additional_residual=mid).sample
        loss = torch.nn.functional.mse_loss(pred, noise)
        losses.append(optimise(loss, opt, params, ema, min(0.995, (1 + step) / (10 + step))))
        if step % 25 == 0:
            log(f"step {step} loss {np.mean(losses[-25:]):.4f} lr {opt.param_groups[0]['lr']:.2e} "
                f"{(step + 1) * args.batch / (time.time() - start):.1f} samples/s")  # fmt: skip
        step += 1
    load_ema(ema, params)
    controlnet.eval().requires_grad_(False)
    log(f"done: {step} steps at batch {args.batch}, loss (last 100) {np.mean(losses[-100:]):.4f}, "
        f"{(time.time() - start) / 60:.1f} min")  # fmt: skip

    folder = args.out / "controlnet"
    shutil.rmtree(folder, ignore_errors=True)
    controlnet.save_pretrained(folder, safe_serialization=True)
    log(f"wrote {folder}")
    samples(pipe, controlnet, args.out / "samples.png")
    if args.install:
        if args.install.exists() and not (args.install / "config.json").is_file():
            raise SystemExit(f"{args.install} exists and is not a ControlNet folder: not replacing it")
        shutil.rmtree(args.install, ignore_errors=True)
        shutil.copytree(folder, args.install)
        log(f"installed {args.install}")


def samples(pipe, controlnet, path: Path) -> None:
    """Held-out silhouettes (seeds 60,000,000+) and what the model draws for them."""
    from diffusers import StableDiffusionControlNetPipeline

    controlled = StableDiffusionControlNetPipeline(**pipe.components, controlnet=controlnet)
    controlled.set_progress_bar_config(disable=True)
    scenes = [make_scene(60_000_000 + i) for i in range(6)]
    conditions = [Image.fromarray(silhouette(s.person_mask)) for s in scenes]
    out = controlled(
        [s.caption for s in scenes], image=conditions, num_inference_steps=25, guidance_scale=3.0,
        generator=torch.Generator().manual_seed(0), output_type="np",
    ).images  # fmt: skip
    pairs = [np.asarray(c) for c in conditions] + list((out * 255).round().astype(np.uint8))
    order = [pairs[i // 2 + (i % 2) * len(scenes)] for i in range(2 * len(scenes))]
    save_grid(np.stack(order), path, 2)


if __name__ == "__main__":
    main()
