"""Trains the bundled `demo` model from scratch on procedural scenes (CPU, one thread).

    python -m tools.demo.train --out demo-train --minutes 85 --seed 0 --shift 8 --install framegen/models/demo/weights

(run from the checkout root; `--threads N` sets torch's CPU threads, default 1).

The minutes are split across three phases: VAE (20%), U-Net + text encoder (70%) and the
person segmenter (10%); scene generation, latent encoding and sample grids come on top.
Writes DIR/train.log, DIR/samples_*.png, DIR/metrics.json and the finished model in
DIR/weights (a diffusers StableDiffusionPipeline folder plus segmenter.onnx). `--install DEST`
also copies DIR/weights to the folder DEST (framegen/models/demo/weights installs them into the
package); DEST must be absent, empty, or a weights folder (with model_index.json), which
is replaced.

Training scenes use seeds 0..N-1 (< 1_000_000); held-out evaluation uses seeds >= 10_000_000.
Everything random (init, batches, noise) follows --seed; the number of steps follows the
time budget and is logged.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from PIL import Image

from .scenes import make_scene
from .tokenizer import build_tokenizer

NATIVE_SIZE = (64, 64)
TEXT_LENGTH = 32
HELD_OUT_SEED = 10_000_000
MEAN = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
STD = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)

UNET_CONFIG = dict(
    sample_size=16,
    in_channels=4,
    out_channels=4,
    layers_per_block=2,
    block_out_channels=(32, 64, 64, 64),
    down_block_types=("CrossAttnDownBlock2D",) * 3 + ("DownBlock2D",),
    up_block_types=("UpBlock2D",) + ("CrossAttnUpBlock2D",) * 3,
    cross_attention_dim=32,
    attention_head_dim=2,  # SD1.x-legacy meaning: 2 heads (2x faster on CPU than 8)
    norm_num_groups=32,
)
VAE_CONFIG = dict(
    in_channels=3,
    out_channels=3,
    down_block_types=("DownEncoderBlock2D",) * 3,
    up_block_types=("UpDecoderBlock2D",) * 3,
    block_out_channels=(16, 32, 64),
    layers_per_block=1,
    latent_channels=4,
    norm_num_groups=16,
    sample_size=64,
)
SCHEDULER_CONFIG = dict(
    num_train_timesteps=1000,
    beta_start=0.00085,
    beta_end=0.012,
    beta_schedule="scaled_linear",
    clip_sample=False,
    set_alpha_to_one=False,
    steps_offset=1,
    prediction_type="epsilon",
)


def scheduler_config(shift: float | None) -> dict:
    """SD's scaled-linear betas (shift None), or a cosine schedule whose log-SNR is moved
    up by log(shift). A 16x16 latent holds far fewer cells per object than SD's 64x64, so
    under SD's schedule its layout only forms late in sampling; a higher SNR per step
    moves that decision earlier, to where the paper's whole-tensor phase acts (the
    resolution shift of Hoogeboom et al., "simple diffusion", 2023)."""
    if shift is None:
        return dict(SCHEDULER_CONFIG)
    t = np.arange(1, 1001) / 1000
    cosine = np.clip(np.cos((t + 0.008) / 1.008 * np.pi / 2) ** 2, 1e-9, 1.0)
    alpha_bar = 1 / (1 + (1 - cosine) / (cosine * shift))
    betas = 1 - alpha_bar / np.concatenate([[1.0], alpha_bar[:-1]])
    return {**SCHEDULER_CONFIG, "beta_schedule": "linear", "trained_betas": np.clip(betas, 0, 0.999).round(8).tolist()}


SAMPLE_PROMPTS = [
    "girl, blonde hair, red shirt, blue skirt, grass, day, house, tree",
    "girl, black hair, yellow shirt, purple pants, snow, night, moon",
    "boy, brown hair, green shirt, black shorts, sand, sunset, sun",
    "boy, red hair, blue shirt, white pants, grass, day, clouds, rocks",
    "girl, white hair, pink shirt, green skirt, sand, day, tree",
    "boy, black hair, orange shirt, gray pants, snow, sunset, house",
    "girl, red hair, white shirt, red shorts, grass, night",
    "boy, blonde hair, purple shirt, yellow pants, sand, day, sun, clouds",
]


class Log:
    def __init__(self, path: Path):
        self.file = open(path, "a", buffering=1)

    def __call__(self, *parts):
        line = " ".join(str(p) for p in parts)
        print(line, flush=True)
        self.file.write(line + "\n")


def start_run(args, title: str) -> tuple[np.random.Generator, Log]:
    """A training run's common start: torch threads and seeds from `args`, the output
    folder, and its log (DIR/train.log) opened with a line naming the run's settings."""
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    args.out.mkdir(parents=True, exist_ok=True)
    log = Log(args.out / "train.log")
    log(f"== {title}: {vars(args)} threads={torch.get_num_threads()}")
    return np.random.default_rng(args.seed), log


def lr_at(progress: float, step: int, warmup: int, base: float) -> float:
    """Linear warmup, then cosine to 10% over the time budget."""
    if step < warmup:
        return base * (step + 1) / warmup
    return base * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * min(progress, 1.0))))


def to_tensor(images: np.ndarray) -> torch.Tensor:
    """uint8 NHWC -> float NCHW in [-1, 1]."""
    return torch.from_numpy(images).permute(0, 3, 1, 2).float() / 127.5 - 1


def to_uint8(x: torch.Tensor) -> np.ndarray:
    return ((x.clamp(-1, 1) + 1) * 127.5).round().byte().permute(0, 2, 3, 1).numpy()


def save_grid(images: np.ndarray, path: Path, cols: int):
    n, h, w, _ = images.shape
    rows = math.ceil(n / cols)
    grid = Image.new("RGB", (cols * w, rows * h))
    for i, im in enumerate(images):
        grid.paste(Image.fromarray(im), ((i % cols) * w, (i // cols) * h))
    grid.resize((cols * w * 3, rows * h * 3), Image.Resampling.NEAREST).save(path)


# ----------------------------------------------------------------------------- segmenter


class TinySegmenter(nn.Module):
    """A 3-level U-Net at 64x64; ~60 k parameters. Input: rembg-normalised RGB."""

    def __init__(self, c=(12, 24, 32, 48)):
        super().__init__()

        def block(i, o):
            return nn.Sequential(
                nn.Conv2d(i, o, 3, padding=1),
                nn.BatchNorm2d(o),
                nn.ReLU(),
                nn.Conv2d(o, o, 3, padding=1),
                nn.BatchNorm2d(o),
                nn.ReLU(),
            )

        self.enc = nn.ModuleList([block(3, c[0]), block(c[0], c[1]), block(c[1], c[2]), block(c[2], c[3])])
        self.dec = nn.ModuleList([block(c[3] + c[2], c[2]), block(c[2] + c[1], c[1]), block(c[1] + c[0], c[0])])
        self.head = nn.Conv2d(c[0], 1, 1)

    def forward(self, x):
        skips = []
        for i, enc in enumerate(self.enc):
            x = enc(x if i == 0 else F.max_pool2d(x, 2))
            skips.append(x)
        for dec, skip in zip(self.dec, reversed(skips[:-1])):
            x = dec(torch.cat([F.interpolate(x, scale_factor=2.0, mode="nearest"), skip], 1))
        return self.head(x)  # logits


class RembgSegmenter(nn.Module):
    """rembg's u2net contract: [1,3,320,320] normalised input -> [1,1,320,320] probability."""

    def __init__(self, net: TinySegmenter):
        super().__init__()
        self.net = net

    def forward(self, x):
        x = F.avg_pool2d(x, 5)  # 320 -> 64
        p = torch.sigmoid(self.net(x))
        return F.interpolate(p, size=(320, 320), mode="bilinear", align_corners=False)


def rembg_normalise(x: torch.Tensor) -> torch.Tensor:
    """[-1,1] images -> rembg's BaseSession.normalize (divide by max, ImageNet mean/std)."""
    x = (x + 1) / 2
    x = x / x.amax(dim=(1, 2, 3), keepdim=True).clamp_min(1e-6)
    return (x - MEAN) / STD


def segmenter_iou(onnx_path: Path, seeds) -> float:
    """Mean IoU of the rembg `u2net_custom` path against the generator's person masks."""
    from rembg import new_session

    old = os.environ.get("U2NET_HOME")
    os.environ["U2NET_HOME"] = str(Path(onnx_path).parent.resolve())
    try:
        session = new_session("u2net_custom", model_path=str(Path(onnx_path).resolve()))
    finally:
        if old is None:
            os.environ.pop("U2NET_HOME")
        else:
            os.environ["U2NET_HOME"] = old
    ious = []
    for seed in seeds:
        scene = make_scene(seed, NATIVE_SIZE)
        mask = np.asarray(session.predict(scene.image)[0]) > 127
        inter = (mask & scene.person_mask).sum()
        union = (mask | scene.person_mask).sum()
        ious.append(inter / max(union, 1))
    return float(np.mean(ious))


# ----------------------------------------------------------------------------- main


def install_problem(dest: Path, weights: Path) -> str | None:
    """Why the folder `dest` may not receive a copy of `weights`, or None: it must be
    absent, empty, or a weights folder (holding model_index.json), and apart from `weights`."""
    dest, weights = Path(dest).resolve(), Path(weights).resolve()
    if dest == weights or weights in dest.parents or dest in weights.parents:
        return f"--install {dest}: overlaps the training output {weights}; refusing"
    if not dest.exists():
        return None
    if not dest.is_dir():
        return f"--install {dest}: exists and is not a folder; refusing"
    if any(dest.iterdir()) and not (dest / "model_index.json").is_file():
        return f"--install {dest}: not empty and not a weights folder (no model_index.json); refusing"
    return None


def denoiser_step(unet, text_encoder, noise_scheduler, opt, params, ema, latents, tokens, empty, decay) -> float:
    """One U-Net + text-encoder step: 10% caption dropout (for classifier-free guidance),
    epsilon loss with min-SNR-5 weighting, gradient clipping, then EMA of `params`."""
    tokens = tokens.clone()
    tokens[torch.rand(len(tokens)) < 0.1] = empty[0]
    noise = torch.randn_like(latents)
    t = torch.randint(0, 1000, (len(latents),))
    pred = unet(noise_scheduler.add_noise(latents, noise, t), t, text_encoder(tokens)[0]).sample
    snr = noise_scheduler.alphas_cumprod[t] / (1 - noise_scheduler.alphas_cumprod[t])
    loss = ((snr.clamp(max=5.0) / snr).view(-1, 1, 1, 1) * (pred - noise) ** 2).mean()
    return optimise(loss, opt, params, ema, decay)


def optimise(loss, opt, params, ema, decay: float) -> float:
    """The step every demo training takes: backward, the gradient norm clipped at 1, the
    optimiser's step, then the EMA of `params` moved 1 - decay of the way; the loss."""
    opt.zero_grad(set_to_none=True)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(params, 1.0)
    opt.step()
    with torch.no_grad():
        for e, p in zip(ema, params):
            e.lerp_(p, 1 - decay)
    return loss.item()


def load_ema(ema, params) -> None:
    """The EMA weights into `params` (what the trainings save)."""
    with torch.no_grad():
        for e, p in zip(ema, params):
            p.copy_(e)


def train_denoiser(
    unet, text_encoder, noise_scheduler, latents, ids, empty, *, seconds, batch, lr, warmup, decay, rng, log, log_every
):
    """Train U-Net and text encoder jointly for `seconds` (AdamW, warmup then cosine lr,
    `denoiser_step` each step), then load the EMA weights into them. `latents` is
    (posterior mean, posterior std, scaling factor). Returns (steps, losses)."""
    mean, std, scaling = latents
    params = list(unet.parameters()) + list(text_encoder.parameters())
    for p in params:
        p.requires_grad_(True)
    ema = [p.detach().clone() for p in params]
    opt = torch.optim.AdamW(params, lr=lr, weight_decay=1e-2)
    unet.train()
    text_encoder.train()
    t0, step, losses = time.time(), 0, []
    while time.time() - t0 < seconds:
        for g in opt.param_groups:
            g["lr"] = lr_at((time.time() - t0) / seconds, step, warmup, lr)
        idx = torch.from_numpy(rng.integers(0, len(mean), batch))
        sample = (mean[idx] + std[idx] * torch.randn_like(mean[idx])) * scaling
        losses.append(
            denoiser_step(
                unet,
                text_encoder,
                noise_scheduler,
                opt,
                params,
                ema,
                sample,
                ids[idx],
                empty,
                min(decay, (1 + step) / (10 + step)),
            )
        )
        if step % log_every == 0:
            log(
                f"unet step {step} loss {np.mean(losses[-log_every:]):.4f} lr {opt.param_groups[0]['lr']:.2e} "
                f"{(step + 1) * batch / (time.time() - t0):.1f} samples/s"
            )
        step += 1
    load_ema(ema, params)
    unet.eval().requires_grad_(False)
    text_encoder.eval().requires_grad_(False)
    return step, losses


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--minutes", type=float, default=71.0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--scenes", type=int, default=20000, help="training scenes (seeds 0..N-1)")
    parser.add_argument("--shift", type=float, help="cosine noise schedule shifted by this SNR factor (default: SD's)")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (default: 1, as documented)")
    parser.add_argument(
        "--install", type=Path, metavar="DEST",
        help="also copy DIR/weights to the folder DEST (absent, empty or a weights folder), "
        "e.g. framegen/models/demo/weights",
    )  # fmt: skip
    args = parser.parse_args(argv)
    if args.install is not None and (problem := install_problem(args.install, args.out / "weights")):
        parser.exit(2, problem + "\n")

    from diffusers import AutoencoderKL, DDIMScheduler, DDPMScheduler, StableDiffusionPipeline, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel

    rng, log = start_run(args, "framegen demo training")
    budget = {"vae": 0.2 * args.minutes * 60, "unet": 0.7 * args.minutes * 60, "segmenter": 0.1 * args.minutes * 60}
    metrics: dict = {
        "command": "python -m tools.demo.train " + " ".join(argv or os.sys.argv[1:]),
        "threads": args.threads,
    }
    wall: dict = {}

    # -- data
    t0 = time.time()
    assert args.scenes < 1_000_000
    scenes = [make_scene(i, NATIVE_SIZE) for i in range(args.scenes)]
    images = np.stack([np.asarray(s.image) for s in scenes])
    person = np.stack([s.person_mask for s in scenes])
    captions = [s.caption for s in scenes]
    del scenes
    wall["data"] = time.time() - t0
    log(f"data: {len(images)} scenes in {wall['data']:.0f}s")

    # -- phase 1: VAE
    t0 = time.time()
    vae = AutoencoderKL(**VAE_CONFIG)
    metrics["params_vae"] = sum(p.numel() for p in vae.parameters())
    log(f"vae params {metrics['params_vae']:,}")
    opt = torch.optim.AdamW(vae.parameters(), lr=1e-3, weight_decay=0.0)
    step, batch = 0, 16
    while time.time() - t0 < budget["vae"]:
        progress = (time.time() - t0) / budget["vae"]
        for g in opt.param_groups:
            g["lr"] = lr_at(progress, step, 100, 1e-3)
        idx = rng.integers(0, len(images), batch)
        x = to_tensor(images[idx])
        weight = 1 + 4 * torch.from_numpy(person[idx]).float()[:, None]  # the figure matters most
        posterior = vae.encode(x).latent_dist
        recon = vae.decode(posterior.sample()).sample
        rec = (weight * (recon - x).abs()).mean() + (weight * (recon - x) ** 2).mean()
        kl = posterior.kl().mean()
        loss = rec + 1e-6 * kl
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(vae.parameters(), 1.0)
        opt.step()
        if step % 50 == 0:
            mse = F.mse_loss(recon, x).item()
            log(
                f"vae step {step} loss {loss.item():.4f} psnr {10 * math.log10(4 / max(mse, 1e-10)):.2f} "
                f"kl {kl.item():.1f} lr {opt.param_groups[0]['lr']:.2e}"
            )
        step += 1
    vae.eval().requires_grad_(False)
    with torch.no_grad():
        x = to_tensor(images[-512:])
        recon = torch.cat([vae.decode(vae.encode(c).latent_dist.mode()).sample for c in x.split(128)])
        metrics["vae_psnr"] = 10 * math.log10(4 / F.mse_loss(recon, x).item())
        save_grid(np.concatenate([to_uint8(x[:16]), to_uint8(recon[:16])]), args.out / "samples_vae.png", 16)
    wall["vae"] = time.time() - t0
    metrics["vae_steps"] = step
    log(f"vae done: {step} steps, psnr {metrics['vae_psnr']:.2f} dB, {wall['vae'] / 60:.1f} min")

    # -- latents
    t0 = time.time()
    means, stds = [], []
    with torch.no_grad():
        for i in range(0, len(images), 256):
            dist = vae.encode(to_tensor(images[i : i + 256])).latent_dist
            means.append(dist.mean)
            stds.append(dist.std)
    lat_mean, lat_std = torch.cat(means), torch.cat(stds)
    scaling = 1.0 / lat_mean.std().item()
    vae.register_to_config(scaling_factor=scaling)
    metrics["vae_scaling_factor"] = scaling
    wall["latents"] = time.time() - t0
    log(f"latents {tuple(lat_mean.shape)} scaling_factor {scaling:.4f} in {wall['latents']:.0f}s")

    # -- phase 2: U-Net + text encoder
    t0 = time.time()
    tokenizer = build_tokenizer(args.out / "tokenizer_src", TEXT_LENGTH)
    text_config = CLIPTextConfig(
        vocab_size=len(tokenizer),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=2,
        max_position_embeddings=TEXT_LENGTH,
        projection_dim=32,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    text_encoder = CLIPTextModel(text_config)
    unet = UNet2DConditionModel(**UNET_CONFIG)
    metrics["params_unet"] = sum(p.numel() for p in unet.parameters())
    metrics["params_text_encoder"] = sum(p.numel() for p in text_encoder.parameters())
    log(f"unet params {metrics['params_unet']:,} text params {metrics['params_text_encoder']:,} vocab {len(tokenizer)}")
    ids = tokenizer(
        captions, padding="max_length", max_length=TEXT_LENGTH, truncation=True, return_tensors="pt"
    ).input_ids
    empty = tokenizer([""], padding="max_length", max_length=TEXT_LENGTH, return_tensors="pt").input_ids
    noise_scheduler = DDPMScheduler.from_config(DDIMScheduler(**scheduler_config(args.shift)).config)
    step, losses = train_denoiser(
        unet, text_encoder, noise_scheduler, (lat_mean, lat_std, scaling), ids, empty, seconds=budget["unet"],
        batch=32, lr=6e-4, warmup=200, decay=0.998, rng=rng, log=log, log_every=50,
    )  # fmt: skip
    wall["unet"] = time.time() - t0
    metrics["unet_steps"] = step
    metrics["unet_final_loss"] = float(np.mean(losses[-200:]))
    log(f"unet done: {step} steps, loss (last 200) {metrics['unet_final_loss']:.4f}, {wall['unet'] / 60:.1f} min")

    # -- pipeline + samples
    t0 = time.time()
    pipe = StableDiffusionPipeline(
        vae=vae,
        text_encoder=text_encoder,
        tokenizer=tokenizer,
        unet=unet,
        scheduler=DDIMScheduler(**scheduler_config(args.shift)),
        safety_checker=None,
        feature_extractor=None,
        requires_safety_checker=False,
    )
    pipe.set_progress_bar_config(disable=True)
    weights = args.out / "weights"
    if weights.exists():
        shutil.rmtree(weights)
    pipe.save_pretrained(weights, safe_serialization=True)
    (args.out / "prompts.txt").write_text("\n".join(SAMPLE_PROMPTS) + "\n")
    for guidance in (3.0, 7.5):
        rows = []
        for seed in range(3):
            g = torch.Generator().manual_seed(seed)
            out = pipe(
                SAMPLE_PROMPTS,
                height=64,
                width=64,
                num_inference_steps=25,
                guidance_scale=guidance,
                generator=g,
                output_type="np",
            ).images
            rows.append((out * 255).round().astype(np.uint8))
        save_grid(np.concatenate(rows), args.out / f"samples_unet_cfg{guidance:g}.png", len(SAMPLE_PROMPTS))
    wall["samples"] = time.time() - t0
    log(f"samples written in {wall['samples']:.0f}s (columns = prompts.txt, rows = seeds 0..2)")

    # -- phase 3: segmenter, on clean scenes and on VAE reconstructions (blurry like generated images)
    t0 = time.time()
    n_recon = 1024
    with torch.no_grad():
        recon = torch.cat(
            [vae.decode(vae.encode(c).latent_dist.mode()).sample for c in to_tensor(images[:n_recon]).split(128)]
        )
    recon_images = to_uint8(recon)
    log(f"segmenter: {n_recon} VAE reconstructions in {time.time() - t0:.0f}s")
    seg = TinySegmenter()
    metrics["params_segmenter"] = sum(p.numel() for p in seg.parameters())
    log(f"segmenter params {metrics['params_segmenter']:,}")
    opt = torch.optim.AdamW(seg.parameters(), lr=3e-3, weight_decay=1e-4)
    step, batch = 0, 32
    seg_losses = []
    seg.train()
    while time.time() - t0 < budget["segmenter"]:
        progress = (time.time() - t0) / budget["segmenter"]
        for g in opt.param_groups:
            g["lr"] = lr_at(progress, step, 50, 3e-3)
        idx = rng.integers(0, len(images), batch)
        use_recon = (idx < n_recon) & (rng.random(batch) < 0.5)
        x = np.where(use_recon[:, None, None, None], recon_images[np.minimum(idx, n_recon - 1)], images[idx])
        x = to_tensor(x)
        y = torch.from_numpy(person[idx]).float()[:, None]
        if rng.random() < 0.5:
            x, y = x.flip(3), y.flip(3)
        logits = seg(rembg_normalise(x))
        p = torch.sigmoid(logits)
        dice = 1 - (2 * (p * y).sum((1, 2, 3)) + 1) / (p.sum((1, 2, 3)) + y.sum((1, 2, 3)) + 1)
        loss = F.binary_cross_entropy_with_logits(logits, y) + dice.mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        seg_losses.append(loss.item())
        if step % 50 == 0:
            log(f"segmenter step {step} loss {np.mean(seg_losses[-50:]):.4f}")
        step += 1
    seg.eval()
    metrics["segmenter_steps"] = step
    metrics["segmenter_final_loss"] = float(np.mean(seg_losses[-100:]))
    onnx_path = weights / "segmenter.onnx"
    torch.onnx.export(
        RembgSegmenter(seg),
        torch.zeros(1, 3, 320, 320),
        str(onnx_path),
        dynamo=False,
        opset_version=17,
        input_names=["input"],
        output_names=["mask"],
    )
    wall["segmenter"] = time.time() - t0
    metrics["segmenter_iou_heldout"] = segmenter_iou(onnx_path, range(HELD_OUT_SEED, HELD_OUT_SEED + 64))
    log(
        f"segmenter done: {step} steps, loss {metrics['segmenter_final_loss']:.4f}, "
        f"held-out IoU (64 scenes, rembg path) {metrics['segmenter_iou_heldout']:.3f}"
    )

    # -- wrap up
    shutil.rmtree(args.out / "tokenizer_src", ignore_errors=True)
    metrics["wall_minutes"] = {k: round(v / 60, 2) for k, v in wall.items()}
    metrics["weights_mb"] = round(sum(f.stat().st_size for f in weights.rglob("*") if f.is_file()) / 2**20, 2)
    (args.out / "metrics.json").write_text(json.dumps(metrics, indent=2))
    log(json.dumps(metrics, indent=2))
    if args.install is not None:
        if problem := install_problem(args.install, weights):
            log(problem)
            raise SystemExit(2)
        if args.install.exists():
            shutil.rmtree(args.install)
        shutil.copytree(weights, args.install)
        log(f"installed into {args.install}")


if __name__ == "__main__":
    main()
