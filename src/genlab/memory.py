"""Keep freed tensor memory in the process instead of handing it back to the kernel.

glibc serves allocations above its mmap threshold (128 KiB, rising to at most 32 MiB as it
adapts) with fresh mappings, and returns free memory at the top of the heap past its trim
threshold. A training or sampling step frees and re-allocates the same large activations every
step, so by default each step maps fresh pages and faults every one of them in again: on a 2-core
AMD EPYC (Zen 3), `genlab sample` of the shipped ddpm (n = 1,000, DDIM 50) spent 195 s of its
241 s in the kernel; with both thresholds at 1 GiB, 99 s (1.1 s in the kernel), and `genlab train
vae` ran 1.39x faster (docs/engine.md has the figures of a Zen 4 machine, where the gain is in
the kernel's time alone). The price is that the process keeps its peak heap.

`import genlab` calls `keep_freed_memory()` once; `GENLAB_MALLOC=system` keeps glibc's defaults,
and `MALLOC_MMAP_THRESHOLD_` / `MALLOC_TRIM_THRESHOLD_` set by the user are left alone.
"""

from __future__ import annotations

import ctypes
import os
import sys

M_TRIM_THRESHOLD = -1  # mallopt parameters, from glibc's malloc.h
M_MMAP_THRESHOLD = -3
THRESHOLD = 1 << 30  # 1 GiB: larger than any activation of genlab's models on a CPU


def keep_freed_memory() -> bool:
    """Raise glibc's mmap and trim thresholds to 1 GiB (see the module docstring).

    Returns:
        Whether both were set (False off glibc, with GENLAB_MALLOC=system, or when the user set
        glibc's own variables).
    """
    if not sys.platform.startswith("linux") or os.environ.get("GENLAB_MALLOC") == "system":
        return False
    if "MALLOC_MMAP_THRESHOLD_" in os.environ or "MALLOC_TRIM_THRESHOLD_" in os.environ:
        return False
    try:
        mallopt = ctypes.CDLL(None).mallopt  # the process's own symbols: glibc's mallopt
    except (OSError, AttributeError):  # musl and others: no mallopt
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    return bool(mallopt(M_MMAP_THRESHOLD, THRESHOLD)) and bool(mallopt(M_TRIM_THRESHOLD, THRESHOLD))
