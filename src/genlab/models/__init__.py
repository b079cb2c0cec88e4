"""Model families. Each file holds one family: `XConfig` (frozen dataclass), `X` (nn.Module) and
its `FAMILY` record (`genlab.family.Family`), which `genlab.families` collects.

Every model keeps the same interface so that one training engine, one run directory and the
latent tools serve them all:
- `X(config)` builds it; `config` is JSON-serialisable with `dataclasses.asdict`.
- `loss(batch) -> (Tensor, dict[str, Tensor])`: the scalar to minimise and detached scalars to
  log (converted to floats only at logging steps, so a GPU is not synchronised every step).
  Families with two players (GANs) give their step what it needs instead (`d_loss`, `g_loss`).
- `sample(n, *, generator=None, y=None) -> Tensor` (n, C, H, W) in [0, 1].
- Models with a latent space: `encode(x, y=None) -> z` and `decode(z, y=None) -> x` in [0, 1].
"""
