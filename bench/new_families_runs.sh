#!/bin/bash
# Issue 26: the quality rows of flow matching, Glow and VQ-VAE + prior (README, docs/quality.md).
# Run alone on the machine (the budgets are wall-clock), one training at a time, then `genlab
# eval` at n = 10,000 (floor 0.41, blurred 204.9). About 2 hours in all.
# Usage: bench/new_families_runs.sh OUT_DIR [fm|lfm|glow|vq|fm3|lfm3|glow3|vq3 ...]
# (default: the four 20-minute runs; the ...3 names are the 3-minute rows)
set -euo pipefail
OUT=${1:-bench-runs/new-families}
shift || true
WHICH=${*:-fm lfm glow vq}
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
evaluate() {  # name json-name [sampling options...]
  local name=$1 json=$2
  shift 2
  [ -f "$OUT/$json.json" ] || $G eval "$OUT/$name" --n 10000 --no-progress \
    --json "$OUT/$json.json" "$@"
}
for what in $WHICH; do
  case $what in
    fm)  # pixel space, the defaults (unconditional, logit-normal t), 20 minutes: the pixel DDPM's
      # protocol (its FD 139.2 at DDIM 50); Euler at NFE 25 and 8
      train fm20 flow-matching 20
      evaluate fm20 fm20-euler25 --sampler euler --steps 25
      evaluate fm20 fm20-euler8 --sampler euler --steps 8
      evaluate fm20 fm20-midpoint12 --sampler midpoint --steps 12
      evaluate fm20 fm20-midpoint4 --sampler midpoint --steps 4
      ;;
    fm3)
      train fm3 flow-matching 3
      evaluate fm3 fm3-midpoint12 --sampler midpoint --steps 12
      ;;
    lfm3)
      train lfm3-vae vae 1 --latent-channels 4 --beta 0.1
      train lfm3 flow-matching 2 --vae "$OUT/lfm3-vae" --conditional
      evaluate lfm3 lfm3-midpoint12-w2 --sampler midpoint --steps 12 --guidance 2
      ;;
    glow3)
      train glow3 glow 3
      evaluate glow3 glow3-t07
      evaluate glow3 glow3-t1.0 --temperature 1.0
      ;;
    vq3)
      train vq3-vqvae vqvae 1.2
      evaluate vq3-vqvae vq3-reconstructions
      train vq3 pixelcnn 1.8 --prior "$OUT/vq3-vqvae"
      evaluate vq3 vq3-prior
      ;;
    lfm)  # in a VAE's 4x7x7 latent with CFG: the ldm's protocol (VAE 5 + 15 minutes, w = 3)
      train lfm20-vae vae 5 --latent-channels 4 --beta 0.1
      train lfm20 flow-matching 15 --vae "$OUT/lfm20-vae" --conditional
      evaluate lfm20 lfm20-euler25-w3 --sampler euler --steps 25 --guidance 3
      evaluate lfm20 lfm20-euler8-w3 --sampler euler --steps 8 --guidance 3
      for w in 1.5 2 2.5; do evaluate lfm20 "lfm20-euler25-w$w" --sampler euler --steps 25 \
        --guidance "$w"; done
      evaluate lfm20 lfm20-midpoint12-w2 --sampler midpoint --steps 12 --guidance 2
      evaluate lfm20 lfm20-heun12-w2 --sampler heun --steps 12 --guidance 2
      evaluate lfm20 lfm20-midpoint4-w2 --sampler midpoint --steps 4 --guidance 2
      ;;
    glow)  # the defaults for 20 minutes: test bits/dim, samples at temperature 0.7 (its default)
      train glow20 glow 20
      evaluate glow20 glow20-t07
      for T in 0.5 0.6 0.8 0.9 1.0; do evaluate glow20 "glow20-t$T" --temperature "$T"; done
      [ -f "$OUT/glow20-nll.txt" ] || $G nll "$OUT/glow20" > "$OUT/glow20-nll.txt"
      ;;
    vq)  # VQ-VAE then its PixelCNN prior, 20 minutes together
      train vq20-vqvae vqvae "${VQ_MINUTES:-8}"
      evaluate vq20-vqvae vq20-reconstructions
      train vq20 pixelcnn "${PRIOR_MINUTES:-12}" --prior "$OUT/vq20-vqvae"
      evaluate vq20 vq20-prior
      ;;
    *) echo "unknown: $what (fm, lfm, glow, vq, fm3, lfm3, glow3, vq3)" >&2; exit 2 ;;
  esac
done
for f in "$OUT"/*.json; do
  python3 -c "
import json, sys
d = json.load(open(sys.argv[1])); m = d['metrics']
acc = m.get('conditional_accuracy')
print(f\"{sys.argv[1]}: step {d['source']['step']} FD {m['fd']:.1f} precision {m['precision']:.3f} \"
      f\"recall {m['recall']:.3f} modes {m['modes_covered']}/10\" + (f' cond acc {acc:.3f}' if acc else ''))
" "$f"
done
