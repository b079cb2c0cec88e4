#!/usr/bin/env bash
# The PixelCNN runs and measurements behind the README's autoregressive section, in order, one
# at a time on a quiet machine (each run has a wall-clock budget: the steps it reaches depend
# on the machine; the README says what they reached here, a 2-core AMD EPYC).
#
#   bash bench/pixelcnn_runs.sh [RUNS_DIR]      # default /work/runs; about 2 hours on 2 cores
set -euo pipefail
R=${1:-/work/runs}
G=${GENLAB:-.venv/bin/genlab}
mkdir -p "$R"

# 1. The acceptance run: 20 minutes, defaults; likelihood, samples, completions, the GIF, FD.
$G train pixelcnn --data fashion-mnist --out "$R/pixelcnn_20min" --max-minutes 20
$G nll "$R/pixelcnn_20min"
$G sample "$R/pixelcnn_20min" --n 64 --out docs/img/pixelcnn_samples.png
$G complete "$R/pixelcnn_20min" --out docs/img/pixelcnn_complete.png
$G pixel-order "$R/pixelcnn_20min" --out docs/img/pixelcnn_order.gif
$G eval "$R/pixelcnn_20min" --n 1000
$G eval "$R/pixelcnn_20min" --n 10000

# 2. The peer at the same budget, in its own venv (see the script's doc), scored next to run 1.
#   /work/venvs/pg/bin/python bench/pixelcnn_vs_pytorch_generative.py --minutes 20 \
#       --peer-src /work/venvs/pg/src --genlab-run "$R/pixelcnn_20min"

# 3. Too many pixels at once: the same architecture emitting k pixels per step, 2.5 minutes each.
for k in 1 4 28 196 784; do
    $G train pixelcnn --pixels-per-step $k --out "$R/pixelcnn_k$k" --max-minutes 2.5
done
$G ar-blur "$R"/pixelcnn_k{1,4,28,196,784} --n 10 --eval-n 1000 --out docs/img/pixelcnn_blur.png

# 4. The likelihood table: binarized PixelCNN and VAE, an 8-bit DDPM (4 minutes each), scored
#    with the 20-minute PixelCNN on the same 1,000 test images.
$G train pixelcnn --binarize --out "$R/pixelcnn_bin_4min" --max-minutes 4
$G train vae --binarize --out "$R/vae_bin_4min" --max-minutes 4
$G train ddpm --out "$R/ddpm_4min" --max-minutes 4
.venv/bin/python bench/likelihood_table.py "$R/pixelcnn_20min" "$R/ddpm_4min" \
    "$R/pixelcnn_bin_4min" "$R/vae_bin_4min" --n 1000 --k 1000 --draws 8
# 5. The peer on binarized data at the binarized run's budget.
#   /work/venvs/pg/bin/python bench/pixelcnn_vs_pytorch_generative.py --minutes 4 --binarize \
#       --peer-src /work/venvs/pg/src --genlab-run "$R/pixelcnn_bin_4min" --n-test 2000 \
#       --peer-rows 1
