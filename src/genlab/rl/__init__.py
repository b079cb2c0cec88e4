"""Reinforcement learning: gymnasium environments with one-line errors (`env`), the replay
buffer and n-step returns (`replay`), and greedy evaluation and rendering of agents
(`episodes`). The agents themselves are families: `genlab.models.dqn`, `genlab.models.qtable`.
"""
