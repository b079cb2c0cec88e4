"""`import genlab` keeps freed tensor memory in the process: a step that allocates and frees the
same large activations every time no longer faults their pages in again (genlab.memory)."""

import os
import subprocess
import sys

SCRIPT = """
import resource, torch, genlab
torch.set_num_threads(1)
w = torch.randn(32, 32, 3, 3)
def step():  # about 50 MiB of activations, freed at the end, as in a training step
    x = torch.randn(64, 32, 56, 56)
    return float(torch.nn.functional.conv2d(x, w, padding=1).relu().sum())
for _ in range(3):  # the heap grows to its peak
    step()
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(5):
    step()
print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""


def faults(setting: str) -> int:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MALLOC_")}
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT],
        capture_output=True,
        text=True,
        env={**env, "GENLAB_MALLOC": setting},
        check=True,
    )
    return int(done.stdout.split()[-1])


def test_steps_no_longer_fault_their_memory_in_every_time():
    pages = 5 * 2 * 64 * 32 * 56 * 56 * 4 // 4096  # input and output of 5 steps, 4 KiB pages
    default = faults("system")  # glibc's defaults: fresh pages every step (the test can fail)
    assert default > pages / 2, default
    # Kept: 0 faults alone; 6,272 with the suite running beside (1/16 of the default's there).
    kept = faults("genlab")
    assert kept < default / 4, (kept, default)
