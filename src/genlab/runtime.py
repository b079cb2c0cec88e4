"""Process-level helpers shared by training and inference: what the CPU computes natively, and
Ctrl-C turned into a request to stop at the next step."""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator

import torch


def bf16_native() -> bool:
    """Whether this CPU computes bf16 natively (AVX-512-BF16 or AMX): only then is it faster."""
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


@contextlib.contextmanager
def one_thread() -> Iterator[None]:
    """Run torch ops on one thread, restoring the thread count afterwards.

    For work whose ops are far too small to gain from threads: on a busy 2-core CPU two threads
    made 20 steps of the 2-D toy GAN 40x slower than one (14 s against 0.36 s), every parallel
    region waiting for a thread that the other jobs have descheduled.
    """
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


class StopFlag:
    """Turns the first Ctrl-C into a request to stop at the next step boundary."""

    def __init__(self):
        self.requested = False
        self._previous = None

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            self._previous = signal.getsignal(signal.SIGINT)

            def handler(signum, frame):
                if self.requested:  # second Ctrl-C: abort now, the last checkpoint is kept
                    raise KeyboardInterrupt
                self.requested = True

            signal.signal(signal.SIGINT, handler)
        return self

    def __exit__(self, *exc):
        if self._previous is not None:
            signal.signal(signal.SIGINT, self._previous)
