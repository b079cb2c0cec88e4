"""`genlab` with one distributed bug patched in, for showing that the equivalence tests of
test_ddp.py catch it: `python broken_ddp.py BUG genlab-arguments...` under torchrun.

Each bug is one a data-parallel trainer can plausibly have; none is in genlab. Patched from
outside, so the library keeps no test hooks.
"""

from __future__ import annotations

import sys

import torch


def sum_gradients() -> None:
    """Gradients summed over the processes instead of averaged, in the two-player steps'
    explicit all-reduce (the one-optimizer families average through DDP, and clip the global
    norm to 1 by default, under which a summed gradient clips to the averaged one)."""
    import genlab.training.cyclegan as cyclegan
    import genlab.training.gan as gan

    sync = gan.sync_grad_norm

    def summed_sync(params, clip, world=1):
        for p in params:
            if p.grad is not None:
                p.grad.mul_(world)  # the average of world * g is the sum of g
        return sync(params, clip, world)

    gan.sync_grad_norm = cyclegan.sync_grad_norm = summed_sync


def skip_shard() -> None:
    """Every process reads rank 0's rows of each global batch: the other rows are never seen."""
    from genlab.data import Shard
    from genlab.training.engine import Engine

    batch = Engine.batch

    def rank0_batch(self, data, i, seed=None):
        shard = self.shard
        self.shard = Shard(0, shard.world)
        try:
            return batch(self, data, i, seed)._replace(shard=shard)
        finally:
            self.shard = shard

    Engine.batch = rank0_batch


def local_pool() -> None:
    """CycleGAN: each process keeps a pool of its own fakes (and draws its swaps for its own
    rows) instead of one pool of the global batch."""
    from genlab.training.cyclegan import CycleGANStep

    CycleGANStep.pooled = lambda self, k, fakes: self.pools[k].query(fakes)


def fakes_twice() -> None:
    """GAN: every process's D update sees the fakes of all processes, so each fake counts once
    per process (the other rank's twice over the two)."""
    from genlab.models.gan import GAN
    from genlab.training.distributed import global_rows

    d_loss = GAN.d_loss

    def d_loss_all_fakes(self, x_real, y, z, shard):
        return d_loss(self, x_real, y, global_rows(z, shard), shard)

    GAN.d_loss = d_loss_all_fakes


BUGS = {
    f.__name__.replace("_", "-"): f for f in (sum_gradients, skip_shard, local_pool, fakes_twice)
}

if __name__ == "__main__":
    torch.set_num_threads(1)
    BUGS[sys.argv[1]]()
    from genlab.cli import main

    sys.exit(main(sys.argv[2:]))
