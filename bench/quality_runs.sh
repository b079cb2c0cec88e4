#!/bin/bash
# Issue 14: the commands behind the README's StyleGAN, VAE and conditional-GAN figures. Run
# alone on the machine (the budgets are wall-clock): one training run at a time, then
# `genlab eval` at n = 10,000 (floor 0.41, blurred 204.9, noised 420.2 on Fashion-MNIST).
# Usage: bench/quality_runs.sh OUT_DIR
set -euo pipefail
OUT=${1:-bench-runs/quality}
G=${GENLAB:-.venv/bin/genlab}
mkdir -p "$OUT"
run() {  # name family minutes [options...]
  local name=$1 family=$2 minutes=$3
  shift 3
  [ -f "$OUT/$name.json" ] && return
  rm -rf "${OUT:?}/$name"
  $G train "$family" --data fashion-mnist --out "$OUT/$name" --max-minutes "$minutes" \
    --no-progress "$@"
  $G eval "$OUT/$name" --n 10000 --no-progress --json "$OUT/$name.json"
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
run cgan20 cgan 20
run gan20 gan 20
for f in "$OUT"/*.json; do
  python3 -c "
import json, sys
d = json.load(open(sys.argv[1])); m = d['metrics']
acc = m['conditional_accuracy']
print(f\"{sys.argv[1]}: step {d['source']['step']} FD {m['fd']:.1f} precision {m['precision']:.3f} \"
      f\"recall {m['recall']:.3f} modes {m['modes_covered']}/10\" + (f' cond acc {acc:.3f}' if acc else ''))
" "$f"
done
