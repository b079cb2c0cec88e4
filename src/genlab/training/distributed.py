"""What makes N processes train exactly like one: gradient averaging, batch statistics of the
global batch, the global batch's rows in order, and one process writing the run.

Under `accelerate launch` or torchrun every process holds rows rank::world of each global batch
(`genlab.data.Shard`) and draws the step's randomness for the whole global batch; with the
averaged gradients and the global batch statistics below, the updates are those of one process
training on the whole batch (tests/training/test_ddp.py compares the weights).
"""

from __future__ import annotations

import types
from collections.abc import Callable
from typing import TypeVar

import torch
from torch import nn

from genlab.data import Shard
from genlab.errors import GenlabError

T = TypeVar("T")


def sync_grad_norm(
    params: list[torch.nn.Parameter], clip: float | None, world: int = 1
) -> torch.Tensor:
    """Average gradients over processes, clip them if asked; returns the norm before clipping."""
    grads = [p.grad for p in params if p.grad is not None]
    if world > 1:
        import torch.distributed as dist

        flat = torch.cat([g.flatten() for g in grads])
        dist.all_reduce(flat)
        flat /= world
        for g, avg in zip(grads, flat.split([g.numel() for g in grads]), strict=True):
            g.copy_(avg.view_as(g))
    if clip is not None:
        return torch.nn.utils.clip_grad_norm_(params, clip)
    return torch.nn.utils.get_total_norm(grads)


def as_one_process(model: nn.Module, shard: Shard) -> None:
    """Make the layers of `model` that see the whole batch behave as in one process while
    training: BatchNorm normalises with the global batch's statistics (torch's SyncBatchNorm
    needs a GPU; this one runs on gloo too), and Dropout draws its masks for the global batch
    (each process keeping its rows, the RNGs staying equal). The state dict is unchanged; with
    one process nothing changes."""
    if shard.world == 1:
        return
    for module in model.modules():
        if isinstance(module, nn.modules.batchnorm._BatchNorm):
            module.forward = types.MethodType(_global_batch_norm_forward, module)
        elif isinstance(module, nn.Dropout):
            module.forward = types.MethodType(_sharded_dropout(shard), module)


def _sharded_dropout(shard: Shard):
    def forward(self: nn.Dropout, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0:
            return x
        keep = shard.rand(x.shape, device=x.device) >= self.p
        return x * keep / (1.0 - self.p)

    return forward


def _all_reduce(x: torch.Tensor) -> torch.Tensor:
    """The sum over processes, differentiable (torch.distributed.nn's all_reduce, deprecated
    without a replacement that has autograd)."""
    import warnings

    from torch.distributed.nn.functional import all_reduce

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        return all_reduce(x)


def _global_batch_norm_forward(self: nn.modules.batchnorm._BatchNorm, x: torch.Tensor):
    """BatchNorm over the rows of all processes: the sums travel by a differentiable all-reduce,
    so the gradients are those of one process normalising the whole batch."""
    if not self.training:
        return type(self).forward(self, x)
    dims = [0, *range(2, x.ndim)]
    shape = (1, -1) + (1,) * (x.ndim - 2)
    xf = x.to(torch.promote_types(x.dtype, torch.float32))  # bf16 -> fp32, fp64 stays
    count = torch.tensor([x.numel() / x.shape[1]], device=x.device)
    sums = _all_reduce(torch.cat([xf.sum(dims), count]))  # (C + 1,): sum over every process
    n = sums[-1]
    mean = sums[:-1] / n  # (C,)
    centered = xf - mean.view(shape)
    var = _all_reduce(centered.square().sum(dims)) / n  # (C,), biased, as BatchNorm normalises
    out = centered * torch.rsqrt(var + self.eps).view(shape)
    if self.affine:
        out = out * self.weight.view(shape) + self.bias.view(shape)
    if self.track_running_stats:
        with torch.no_grad():
            self.num_batches_tracked.add_(1)
            m = (
                self.momentum
                if self.momentum is not None
                else 1.0 / float(self.num_batches_tracked)
            )
            unbiased = var * (n / (n - 1).clamp(min=1))
            self.running_mean.lerp_(mean.to(self.running_mean), m)
            self.running_var.lerp_(unbiased.to(self.running_var), m)
    return out.to(x.dtype)


def global_rows(x: torch.Tensor, shard: Shard) -> torch.Tensor:
    """The global batch from each process's rows (`Shard`): (B_local, ...) -> (B, ...) in the
    order of one process (row i of rank r is global row i * world + r)."""
    if shard.world == 1:
        return x
    import torch.distributed as dist

    x = x.contiguous()  # gloo copies raw memory: no channels_last strides on either side
    parts = [torch.empty_like(x, memory_format=torch.contiguous_format) for _ in range(shard.world)]
    dist.all_gather(parts, x)
    return torch.stack(parts, dim=1).flatten(0, 1)


def processes() -> Shard:
    """This process's place among those of `accelerate launch`/torchrun (Shard(0, 1) alone)."""
    from accelerate import PartialState

    state = PartialState(cpu=not torch.cuda.is_available())  # gloo on CPUs, NCCL on GPUs
    return Shard(state.process_index, state.num_processes)


def on_main_process(fn: Callable[[], T]) -> T | None:
    """Run `fn` on the main process only, the others waiting; an error there is raised on every
    process (on the others as a GenlabError with its message), so that none waits forever.

    Returns:
        fn's result on the main process, None on the others.
    """
    shard = processes()
    if shard.world == 1:
        return fn()
    from accelerate.utils import broadcast_object_list

    result, outcome = None, [""]
    if shard.rank == 0:
        try:
            result = fn()
        except BaseException as e:  # the others learn of any failure, then this one raises it
            broadcast_object_list([str(e) or type(e).__name__], from_process=0)
            raise
    broadcast_object_list(outcome, from_process=0)
    if outcome[0]:
        raise GenlabError(outcome[0])
    return result
