"""Process-level helpers shared by training and inference: what the CPU computes natively, and
Ctrl-C turned into a request to stop at the next step."""

from __future__ import annotations

import signal
import threading

import torch


def bf16_native() -> bool:
    """Whether this CPU computes bf16 natively (AVX-512-BF16 or AMX): only then is it faster."""
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


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
