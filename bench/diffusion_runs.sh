#!/usr/bin/env bash
# The diffusion runs and evaluations behind the README's figures, in order. Each training run
# has a wall-clock budget, so the steps it reaches depend on the machine and its load; the
# README says what they reached here (2-core AMD EPYC, one thread per run, two runs at a time).
#
#   bash bench/diffusion_runs.sh [RUNS_DIR]      # default /work/runs; about 3 hours on 2 cores
set -euo pipefail
R=${1:-/work/runs}
G=${GENLAB:-.venv/bin/genlab}
export OMP_NUM_THREADS=1
mkdir -p "$R"

# 1. Pixel space, unconditional, 20 minutes (the time-to-quality comparison).
$G train ddpm --out "$R/ddpm_20min" --max-minutes 20 --sample-every 500 --checkpoint-every 500
# The peer: denoising-diffusion-pytorch, 20 minutes, in its own venv (bench/README.md).
#   /work/venvs/ddpm/bin/python bench/ddpm_pytorch_baseline.py --minutes 20 --n 1000 \
#       --out "$R/ddpm_pytorch_20min"
#   $G eval --images "$R/ddpm_pytorch_20min" --n 1000

# 2. Latent diffusion: the first stage (5 minutes) and a class-conditional model with label
#    dropout (15 minutes): 20 minutes in all. Evaluated unconditionally (w = 0) for the
#    comparison, and with classifier-free guidance.
$G train vae --latent-channels 4 --beta 0.1 --out "$R/vae_4x7x7" --max-minutes 5
$G train ldm --vae "$R/vae_4x7x7" --conditional --out "$R/ldm_15min" --max-minutes 15 \
    --sample-every 1000
# 3. Text to image on the same first stage, 15 minutes.
$G train txt2img --vae "$R/vae_4x7x7" --out "$R/txt2img_15min" --max-minutes 15 \
    --sample-every 1000
# 4. The noise-aware classifier for classifier guidance of the pixel model, 8 minutes.
$G train noisy-classifier --out "$R/noisy_clf" --max-minutes 8

# Quality (n = 1000 samples each; the references are computed at the same n).
for steps in 10 20 50 100; do
    $G eval "$R/ddpm_20min" --n 1000 --sampler ddim --steps "$steps"
    $G eval "$R/ldm_15min" --n 1000 --sampler ddim --steps "$steps" --guidance 0
done
$G eval "$R/ldm_15min" --n 1000 --sampler ddpm --guidance 0
for w in 1 2 3 5; do
    $G eval "$R/ldm_15min" --n 1000 --steps 50 --guidance "$w"
done
for w in 1 3; do
    $G eval "$R/txt2img_15min" --n 1000 --steps 50 --guidance "$w"
done
for s in 1 3 10; do
    $G eval "$R/ddpm_20min" --n 500 --steps 20 --classifier "$R/noisy_clf" --classifier-scale "$s"
done
