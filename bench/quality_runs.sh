#!/bin/bash
# Issue 14: the commands behind the quality table (README, docs/quality.md). Run alone on the
# machine (the budgets are wall-clock): one training run at a time, then `genlab eval` at
# n = 10,000 (floor 0.41, blurred 204.9, noised 420.2 on Fashion-MNIST). About 6 hours in all.
# Usage: bench/quality_runs.sh OUT_DIR
set -euo pipefail
OUT=${1:-bench-runs/quality}
G=${GENLAB:-.venv/bin/genlab}
mkdir -p "$OUT"
train() {  # name family minutes [options...]
  local name=$1 family=$2 minutes=$3
  shift 3
  [ -f "$OUT/$name/model.safetensors" ] && return
  rm -rf "${OUT:?}/$name"
  $G train "$family" --data fashion-mnist --out "$OUT/$name" --max-minutes "$minutes" \
    --no-progress "$@"
}
evaluate() {  # name [sampling options...]
  local name=$1
  shift
  [ -f "$OUT/$name.json" ] || $G eval "$OUT/$name" --n 10000 --no-progress --json "$OUT/$name.json" "$@"
}
run() {  # name family minutes [options...]
  train "$@"
  evaluate "$1"
}
# The VAE at 3 minutes, and what changes Sandal's share of its samples.
run vae3-default vae 3
run vae3-beta05 vae 3 --beta 0.5
run vae3-bs64 vae 3 --batch-size 64
run vae3-beta025 vae 3 --beta 0.25
run vae3-gauss-fixed vae 3 --likelihood gaussian --no-learn-logvar --init-logvar -3
run vae-gauss vae 3 --likelihood gaussian
run vae-wide vae 3 --widths 64,128
run vae-gauss-wide vae 3 --likelihood gaussian --widths 64,128
run vae3-bs64-klw03 vae 3 --batch-size 64 --kl-warmup 0.3
run vae3-klw03 vae 3 --kl-warmup 0.3
run vae3-bs64-beta075 vae 3 --batch-size 64 --beta 0.75
# StyleGAN at 3 minutes with two discriminator widths, then 20 minutes with the defaults, and
# its perceptual path length in z and w.
run sg3-d128 stylegan 3 --d-widths 32,64,128
run sg3-d64 stylegan 3 --d-widths 16,32,64
run sg20 stylegan 20
$G path-length "$OUT/sg20" --n 1000 --out "$OUT/sg20_zw.png"
# The peer at the same budget (its own packages on genlab's torch; see the script).
if [ ! -f "$OUT/peer20-g.json" ]; then
  PYTHONPATH=${SG2LIB:-/work/venvs/sg2lib} .venv/bin/python bench/stylegan2_pytorch_peer.py \
    --minutes 20 --out "$OUT/peer20"
  for w in g ge; do
    $G eval --images "$OUT/peer20/samples_$w" --no-progress --json "$OUT/peer20-$w.json"
  done
fi
# The conditional GAN: what does not cure its collapse, and what does (mode seeking, now the
# default), at 3 minutes; then the default at 20 minutes; the DCGAN at 20 minutes.
run cgan3-old cgan 3 --mode-seeking 0
run cgan3-sn-hinge cgan 3 --spectral-norm --loss hinge --mode-seeking 0
run cgan3-mbstd cgan 3 --minibatch-std --mode-seeking 0
run cgan3-sn-hinge-mbstd cgan 3 --spectral-norm --loss hinge --minibatch-std --mode-seeking 0
run cgan3-ms cgan 3
run cgan3-sn-hinge-ms cgan 3 --spectral-norm --loss hinge --mode-seeking 1
run cgan3-ms05 cgan 3 --mode-seeking 0.5
run cgan20 cgan 20
run gan3 gan 3
run gan20 gan 20
# Diffusion: the pixel model (DDIM 50), and latent diffusion whose budget includes its first
# stage (VAE 5 + LDM 15 minutes; 1 + 2 at 3 minutes), sampled with guidance w = 3.
train ddpm3 ddpm 3  # scored at n = 2,000: 10,000 DDIM-50 samples take 22 minutes here
[ -f "$OUT/ddpm3-n2000.json" ] || $G eval "$OUT/ddpm3" --n 2000 --sampler ddim --steps 50 \
  --no-progress --json "$OUT/ddpm3-n2000.json"
train ddpm20 ddpm 20
evaluate ddpm20 --sampler ddim --steps 50
train ldm3-vae vae 1 --latent-channels 4 --beta 0.1
train ldm3 ldm 2 --vae "$OUT/ldm3-vae" --conditional
evaluate ldm3 --sampler ddim --steps 50 --guidance 3
train ldm20-vae vae 5 --latent-channels 4 --beta 0.1
train ldm20 ldm 15 --vae "$OUT/ldm20-vae" --conditional
evaluate ldm20 --sampler ddim --steps 50 --guidance 3
# PixelCNN at 20 minutes: bench/pixelcnn_runs.sh (its run 1, evaluated at n = 10,000).
# The VAE peer: pythae at the same 3 minutes (its own venv, bench/README.md), both contenders'
# 10,000 prior samples scored by genlab eval.
if [ ! -f "$OUT/pythae-genlab.json" ]; then
  .venv-bench/bin/python bench/vae_vs_pythae.py --minutes 3 --out "$OUT/pythae"
  for s in pythae genlab; do
    $G eval --images "$OUT/pythae/eval_$s.png" --tile 28 --padding 2 --no-progress \
      --json "$OUT/pythae-$s.json"
  done
fi
# The pixel-diffusion peer: denoising-diffusion-pytorch for 20 minutes (its own venv), 500
# DDIM-50 samples (its sampler is slow on a CPU), scored next to genlab's
# 20-minute DDPM at the same n.
if [ ! -f "$OUT/ddpmpeer-eval.json" ]; then
  /work/venvs/ddpm/bin/python bench/ddpm_pytorch_baseline.py --minutes 20 --n 500 \
    --threads 2 --out "$OUT/ddpmpeer"
  $G eval --images "$OUT/ddpmpeer" --n 500 --no-progress --json "$OUT/ddpmpeer-eval.json"
  $G eval "$OUT/ddpm20" --n 500 --sampler ddim --steps 50 --no-progress \
    --json "$OUT/ddpm20-n500.json"
fi
for f in "$OUT"/*.json; do
  python3 -c "
import json, sys
d = json.load(open(sys.argv[1])); m = d['metrics']
acc = m['conditional_accuracy']
print(f\"{sys.argv[1]}: step {d['source']['step']} FD {m['fd']:.1f} precision {m['precision']:.3f} \"
      f\"recall {m['recall']:.3f} modes {m['modes_covered']}/10\" + (f' cond acc {acc:.3f}' if acc else ''))
" "$f"
done
