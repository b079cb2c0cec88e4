"""The second pass of `make test` (the tests marked `kernels`, run with ATEN_CPU_CAPABILITY=avx2,
ONEDNN_MAX_CPU_ISA=AVX2 and MKL_ENABLE_INSTRUCTIONS=AVX2) computes as a CPU without AVX-512
would: PyTorch's AVX2 kernels, oneDNN's and MKL's AVX2 code (MKL's sgemm computes the float32
Linear layers: without the third variable a DQN trained bit for bit as on AVX-512), no native
bf16, so `precision=auto` trains and samples in fp32 as on an AMD Zen 3."""

import os

import pytest
import torch

from genlab.runtime import bf16_native
from genlab.training.engine import resolve_precision


@pytest.mark.kernels
@pytest.mark.skipif(os.environ.get("ATEN_CPU_CAPABILITY") != "avx2", reason="the first pass")
def test_the_second_pass_computes_as_an_avx2_cpu():
    assert torch.backends.cpu.get_cpu_capability() == "AVX2"
    assert os.environ.get("ONEDNN_MAX_CPU_ISA") == "AVX2"
    assert os.environ.get("MKL_ENABLE_INSTRUCTIONS") == "AVX2"
    assert not bf16_native()
    assert resolve_precision("auto", "cpu") == "no"
