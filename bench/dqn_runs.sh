#!/usr/bin/env bash
# The commands behind the README's reinforcement-learning figures (about 75 minutes on 2 cores;
# run alone on the machine: the wall times are part of the result).
set -euo pipefail
cd "$(dirname "$0")/.."
G=.venv/bin/genlab
PY=.venv/bin/python
SB3=${SB3:-/work/venvs/sb3/bin/python}   # see bench/sb3_dqn.py for its environment
mkdir -p runs/rl results

# CartPole-v1: 5 seeds x 50,000 steps, greedy evaluation of 100 episodes every 2,500 steps.
$PY bench/dqn_cartpole.py --steps 50000 --json results/dqn_cartpole.json --keep runs/rl/cartpole
$SB3 bench/sb3_dqn.py --env CartPole-v1 --steps 50000 --json results/sb3_cartpole.json

# LunarLander-v3: 5 seeds x 150,000 steps, 100 evaluation episodes every 10,000 steps.
$PY bench/dqn_cartpole.py --env LunarLander-v3 --steps 150000 --eval-every 10000 \
    --threshold 200 --within 150000 --json results/dqn_lunarlander.json --keep runs/rl/lunar

# MinAtar Breakout (10x10x4 frames, conv Q-network) for 20 minutes, against a random policy.
$G train dqn --env MinAtar/Breakout-v1 --out runs/rl/breakout --max-minutes 20 \
    --max-steps 100000000 --depth 1 --width 128 --lr 3e-4 --lr-schedule constant \
    --eps-steps 100000 --eps-end 0.05 --learning-starts 5000 --train-every 1 --batch-size 64 \
    --eval-every 25000 --eval-episodes 20 --no-progress
$G eval runs/rl/breakout --episodes 100 --json results/breakout_greedy.json
$G eval runs/rl/breakout --episodes 100 --epsilon 1 --json results/breakout_random.json

# The README's pictures (the first CartPole seed; FrozenLake's table).
$G train qtable --env FrozenLake-v1 --out runs/rl/frozenlake --max-steps 200000 --no-progress
$G eval runs/rl/frozenlake --episodes 1000
C=runs/rl/cartpole/CartPole-v1-seed0
$G play $C --episodes 2 --out docs/img/dqn_play.gif
$G plot $C --out docs/img/dqn_curves.png
$G q-values $C --out docs/img/dqn_q_values.png
$G q-values runs/rl/frozenlake --out docs/img/qtable_frozenlake.png
$G plot runs/rl/breakout --out docs/img/breakout_curves.png
$G play runs/rl/breakout --episodes 1 --every 1 --out docs/img/breakout_play.gif
