"""Seconds per denoising step of Stable Diffusion 1.5's UNet on this machine, fp32 vs bf16.

The UNet is diffusers' UNet2DConditionModel built from SD 1.5's published unet/config.json
(859.5 M parameters) with random weights: the speed of a step does not depend on the weights.
One denoising step with classifier-free guidance is one UNet call on a batch of 2 (the prompt
and the empty prompt), as `genlab sd` runs it. Sizes are pictures: 512x512 is a 64x64 latent.

Settings: fp32; bf16 autocast on the fp32 weights; bf16 weights (what `genlab sd --precision
bf16` loads). Each setting gets `--warmup` untimed steps and `--repeats` timed steps; a setting
whose warm-up step alone takes longer than `--max-step-s` is reported from that one step and not
repeated (bf16 is 10-30x slower than fp32 on CPUs without native bf16). With `--vae`, the SD 1.5
VAE decoder is timed once per size as well (it runs once per picture). The working memory of a
step (peak resident memory above the weights, sampled every 10 ms) calibrates
`genlab.sd.checks.ACTIVATION_BYTES_PER_PIXEL`.

    .venv/bin/python bench/sd_unet_speed.py                      # 256 and 512, all settings
    .venv/bin/python bench/sd_unet_speed.py --sizes 256 --settings fp32 --vae
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import threading
import time
from contextlib import nullcontext
from pathlib import Path

import psutil
import torch

# SD 1.5 (stable-diffusion-v1-5) unet/config.json, as published with the model.
SD15_UNET = dict(
    sample_size=64,
    in_channels=4,
    out_channels=4,
    down_block_types=(
        "CrossAttnDownBlock2D",
        "CrossAttnDownBlock2D",
        "CrossAttnDownBlock2D",
        "DownBlock2D",
    ),
    up_block_types=("UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"),
    block_out_channels=(320, 640, 1280, 1280),
    layers_per_block=2,
    downsample_padding=1,
    mid_block_scale_factor=1,
    act_fn="silu",
    norm_num_groups=32,
    norm_eps=1e-5,
    cross_attention_dim=768,
    attention_head_dim=8,
    flip_sin_to_cos=True,
    freq_shift=0,
    center_input_sample=False,
)
# SD 1.5 vae/config.json.
SD15_VAE = dict(
    in_channels=3,
    out_channels=3,
    down_block_types=("DownEncoderBlock2D",) * 4,
    up_block_types=("UpDecoderBlock2D",) * 4,
    block_out_channels=(128, 256, 512, 512),
    layers_per_block=2,
    act_fn="silu",
    latent_channels=4,
    norm_num_groups=32,
    sample_size=512,
)
TEXT_TOKENS, TEXT_DIM = 77, 768  # CLIP ViT-L/14 text encoder output: (B, 77, 768)


class PeakMemory:
    """Peak resident memory of this process while the block runs (sampled every 10 ms)."""

    def __enter__(self):
        self.process = psutil.Process()
        self.base = self.peak = self.process.memory_info().rss
        self.running = True
        self.thread = threading.Thread(target=self._sample, daemon=True)
        self.thread.start()
        return self

    def _sample(self):
        while self.running:
            self.peak = max(self.peak, self.process.memory_info().rss)
            time.sleep(0.01)

    def __exit__(self, *exc):
        self.running = False
        self.thread.join()
        self.peak = max(self.peak, self.process.memory_info().rss)

    @property
    def extra(self) -> int:
        return self.peak - self.base


def time_unet(unet, size: int, autocast: bool, args) -> dict:
    """Seconds per guided step (UNet on batch 2) at a picture size, and its working memory."""
    g = torch.Generator().manual_seed(0)
    dtype = next(unet.parameters()).dtype
    x = torch.randn(2, 4, size // 8, size // 8, generator=g).to(dtype)  # (2, 4, h, w) latents
    context = torch.randn(2, TEXT_TOKENS, TEXT_DIM, generator=g).to(dtype)
    t = torch.tensor(500)
    ctx = torch.autocast("cpu", dtype=torch.bfloat16) if autocast else nullcontext()
    times, memory = [], 0
    with torch.inference_mode(), ctx:
        for i in range(args.warmup + args.repeats):
            with PeakMemory() as peak:
                start = time.perf_counter()
                unet(x, t, encoder_hidden_states=context)
                times.append(time.perf_counter() - start)
            memory = max(memory, peak.extra)
            print(f"  {size}x{size} step {i + 1}: {times[-1]:.2f} s", flush=True)
            if i < args.warmup and times[-1] > args.max_step_s:
                return {"seconds": times[-1], "timed": 0, "warmup_only": True, "memory": memory}
    timed = times[args.warmup :]
    return {"seconds": sum(timed) / len(timed), "timed": len(timed), "memory": memory}


def time_vae(size: int) -> dict:
    from diffusers import AutoencoderKL

    torch.manual_seed(0)
    vae = AutoencoderKL(**SD15_VAE).eval()
    z = torch.randn(1, 4, size // 8, size // 8)
    times = []
    with torch.inference_mode():
        for _ in range(2):  # warm-up, then timed
            with PeakMemory() as peak:
                start = time.perf_counter()
                vae.decode(z)
                times.append(time.perf_counter() - start)
    print(f"  VAE decode {size}x{size}: {times[-1]:.2f} s", flush=True)
    return {"seconds": times[-1], "memory": peak.extra}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[256, 512])
    parser.add_argument(
        "--settings", nargs="+", default=["fp32", "bf16-autocast", "bf16"],
        choices=["fp32", "bf16-autocast", "bf16"],
    )  # fmt: skip
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--max-step-s", type=float, default=60.0)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--vae", action="store_true", help="also time the VAE decoder")
    parser.add_argument("--json", type=Path, default=Path("bench/results/sd_unet_speed.json"))
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)

    from diffusers import UNet2DConditionModel

    from genlab.runtime import bf16_native

    torch.manual_seed(0)
    start = time.perf_counter()
    unet = UNet2DConditionModel(**SD15_UNET).eval()
    params = sum(p.numel() for p in unet.parameters())
    cpuinfo = Path("/proc/cpuinfo").read_text().splitlines()
    names = [ln.split(":", 1)[1].strip() for ln in cpuinfo if ln.startswith("model name")]
    cpu = names[0] if names else platform.processor()
    print(f"SD 1.5 UNet: {params / 1e6:.1f} M parameters, built in "
          f"{time.perf_counter() - start:.0f} s; {cpu}, {torch.get_num_threads()} threads, "
          f"native bf16: {bf16_native()}", flush=True)  # fmt: skip
    record = {
        "cpu": cpu, "threads": torch.get_num_threads(), "bf16_native": bf16_native(),
        "torch": torch.__version__, "params": params, "unet": [], "vae": [],
        "load_average_at_start": os.getloadavg()[0],
    }  # fmt: skip
    results, vae = record["unet"], record["vae"]
    for setting in args.settings:
        if setting == "bf16":
            unet = unet.to(torch.bfloat16)
        for size in args.sizes:
            print(f"{setting}:", flush=True)
            r = time_unet(unet, size, setting == "bf16-autocast", args)
            results.append({"setting": setting, "size": size, **r})
            save(record, args.json)  # a long run keeps what it measured so far
    for size in args.sizes if args.vae else []:
        vae.append({"size": size, **time_vae(size)})
        save(record, args.json)
    record["load_average_at_end"] = os.getloadavg()[0]  # other jobs on the machine slow it
    save(record, args.json)

    print("\n| picture | latent | setting | s/step | steps timed | working memory |")
    print("|---|---|---|---|---|---|")
    for r in results:
        timed = "1 (warm-up only)" if r.get("warmup_only") else str(r["timed"])
        print(f"| {r['size']}x{r['size']} | {r['size'] // 8}x{r['size'] // 8} | {r['setting']} "
              f"| {r['seconds']:.2f} | {timed} | {r['memory'] / 2**20:.0f} MiB |")  # fmt: skip
    for r in vae:
        print(f"VAE decode {r['size']}x{r['size']}: {r['seconds']:.2f} s, "
              f"{r['memory'] / 2**20:.0f} MiB working memory")  # fmt: skip
    print(f"wrote {args.json}")


def save(record: dict, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(record, indent=1) + "\n")


if __name__ == "__main__":
    main()
