"""Fine-tune the demo model's U-Net and text encoder at a larger size.

    python -m tools.demo.finetune --out DIR --size 128 --minutes 35 --seed 0

(run from the checkout root; `--threads N` sets torch's CPU threads, default 1).

At 64x64 the VAE's 16x16 latent puts OUT3/OUT4 on a 4x4 grid, too coarse for the
paper's whole-tensor swap to hold a layout (docs/demo-model.md). This continues
training from the bundled weights on scenes drawn at `--size` (the VAE is convolutional
and is kept), so OUT3/OUT4 see size/16 cells. Writes DIR/weights (diffusers folder plus
the unchanged segmenter), DIR/train.log and a sample grid.
"""

from __future__ import annotations

import argparse
import shutil
import time
from pathlib import Path

import numpy as np
import torch

from framegen.models.demo import WEIGHTS_DIR, load_pipeline

from .scenes import make_scene
from .train import SAMPLE_PROMPTS, TEXT_LENGTH, save_grid, scheduler_config, start_run, to_tensor, train_denoiser


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--minutes", type=float, default=35.0)
    parser.add_argument("--scenes", type=int, default=8000, help="training scenes (seeds 0..N-1)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--lr", type=float, default=3e-4)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument(
        "--weights", type=Path, help="a demo-shaped diffusers folder to start from (default: the bundled model)"
    )
    parser.add_argument("--shift", type=float, help="retrain for a cosine noise schedule shifted by this SNR factor")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (default: 1, as documented)")
    args = parser.parse_args(argv)

    from diffusers import DDIMScheduler, DDPMScheduler

    rng, log = start_run(args, "framegen demo fine-tune")
    if args.weights:
        from diffusers import StableDiffusionPipeline

        pipe = StableDiffusionPipeline.from_pretrained(args.weights, use_safetensors=True, local_files_only=True)
    else:
        pipe = load_pipeline()
    vae, unet, text_encoder, tokenizer = pipe.vae, pipe.unet, pipe.text_encoder, pipe.tokenizer

    t0 = time.time()
    size = (args.size, args.size)
    scenes = [make_scene(i, size) for i in range(args.scenes)]
    captions = [s.caption for s in scenes]
    images = np.stack([np.asarray(s.image) for s in scenes])
    del scenes
    with torch.no_grad():
        dists = [vae.encode(to_tensor(images[i : i + 128])).latent_dist for i in range(0, len(images), 128)]
    lat_mean, lat_std = torch.cat([d.mean for d in dists]), torch.cat([d.std for d in dists])
    scaling = vae.config.scaling_factor
    log(f"data: {len(images)} scenes at {size}, latents {tuple(lat_mean.shape)} in {time.time() - t0:.0f}s")

    ids = tokenizer(
        captions, padding="max_length", max_length=TEXT_LENGTH, truncation=True, return_tensors="pt"
    ).input_ids
    empty = tokenizer([""], padding="max_length", max_length=TEXT_LENGTH, return_tensors="pt").input_ids
    if args.shift is not None:
        pipe.scheduler = DDIMScheduler(**scheduler_config(args.shift))
    noise_scheduler = DDPMScheduler.from_config(pipe.scheduler.config)
    t0 = time.time()
    step, losses = train_denoiser(
        unet, text_encoder, noise_scheduler, (lat_mean, lat_std, scaling), ids, empty, seconds=args.minutes * 60,
        batch=args.batch, lr=args.lr, warmup=50, decay=0.995, rng=rng, log=log, log_every=25,
    )  # fmt: skip
    unet.register_to_config(sample_size=args.size // pipe.vae_scale_factor)
    vae.register_to_config(sample_size=args.size)
    log(
        f"done: {step} steps at batch {args.batch}, loss (last 100) {np.mean(losses[-100:]):.4f}, "
        f"{(time.time() - t0) / 60:.1f} min"
    )

    weights = args.out / "weights"
    shutil.rmtree(weights, ignore_errors=True)
    pipe.save_pretrained(weights, safe_serialization=True)
    shutil.copy(WEIGHTS_DIR / "segmenter.onnx", weights / "segmenter.onnx")
    g = torch.Generator().manual_seed(0)
    out = pipe(
        SAMPLE_PROMPTS,
        width=args.size,
        height=args.size,
        num_inference_steps=25,
        guidance_scale=3.0,
        generator=g,
        output_type="np",
    ).images
    save_grid((out * 255).round().astype(np.uint8), args.out / "samples.png", len(SAMPLE_PROMPTS))
    log(f"wrote {weights}")


if __name__ == "__main__":
    main()
