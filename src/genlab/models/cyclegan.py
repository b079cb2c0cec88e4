"""CycleGAN: unpaired image-to-image translation (Zhu et al. 2017, "Unpaired Image-to-Image
Translation using Cycle-Consistent Adversarial Networks").

Two generators translate between domains A and B, G_ab: A -> B and G_ba: B -> A, and two
discriminators tell real from translated images, D_a in domain A and D_b in domain B. Nothing
pairs an image of A with one of B; what ties a translation to its input is cycle consistency:

    L(G_ab, G_ba, D_a, D_b) = L_GAN(G_ab, D_b) + L_GAN(G_ba, D_a)
                              + lambda_cycle * L_cyc(G_ab, G_ba)                    (eq. 3)
                              + lambda_identity * L_identity(G_ab, G_ba)            (sec. 5.2)

    L_cyc = E_a |G_ba(G_ab(a)) - a|_1 + E_b |G_ab(G_ba(b)) - b|_1                    (eq. 2)
    L_identity = E_a |G_ba(a) - a|_1 + E_b |G_ab(b) - b|_1

The adversarial terms are least-squares (LSGAN, Mao et al. 2017), as the paper trains them
(sec. 4): D minimises E[(D(real) - 1)^2] + E[D(fake)^2] and G minimises E[(D(fake) - 1)^2];
"ns" uses gan.py's cross-entropy losses instead. Each D's objective is halved "to slow down the
rate at which D learns relative to G" (sec. 4). D is a PatchGAN: a map of logits, each judging
one receptive field (a 70x70 patch on the paper's 256x256 images).

The paper's images live in [-1, 1]; genlab's in [0, 1]. The networks read 2x - 1 and the L1
terms are measured on that [-1, 1] scale (2 |x - y|), so lambda_cycle = 10 weighs the cycle
against the GAN terms as in the paper.

The training loop (genlab.training.cyclegan) alternates one G update of `g_loss` (both
generators, one optimiser) and one D update of `d_loss` (both discriminators, one optimiser) on
fakes drawn from an `ImagePool` of 50 past translations (Shrivastava et al. 2017), as the paper
does "to reduce model oscillation".
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import NamedTuple

import torch
from torch import nn

from genlab.errors import GenlabError
from genlab.family import Configured, Family, image_config, image_options
from genlab.models.gan import d_loss_bce, g_loss_ns
from genlab.options import Option

# -- losses: pure functions of discriminator logits (any shape, here (B, 1, h, w) patches) -----


def d_loss_lsgan(real_logits: torch.Tensor, fake_logits: torch.Tensor) -> torch.Tensor:
    """E[(D(real) - 1)^2] + E[D(fake)^2]: least-squares D loss (Mao et al. 2017; CycleGAN eq. 1)."""
    return (real_logits - 1).square().mean() + fake_logits.square().mean()


def g_loss_lsgan(fake_logits: torch.Tensor) -> torch.Tensor:
    """E[(D(G(x)) - 1)^2]: the generator side of the least-squares loss."""
    return (fake_logits - 1).square().mean()


LOSSES: dict[str, tuple[Callable, Callable]] = {
    "lsgan": (d_loss_lsgan, g_loss_lsgan),
    "ns": (d_loss_bce, g_loss_ns),
}


def l1_pm1(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Mean |x - y| of [0, 1] images measured on the paper's [-1, 1] scale, i.e. 2 mean |x - y|."""
    return 2 * (x - y).abs().mean()


# -- networks ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class CycleGANConfig:
    """Attributes:
    channels: image channels of both domains (1 grayscale, 3 RGB).
    image_size: image side in pixels; divisible by 4 (28, 32, 64).
    widths: G's channels: widths[0] at full resolution (the paper's c7s1-64), then one stride-2
        level per further entry (d128, d256); the residual blocks run at widths[-1]. The paper's
        (64, 128, 256) costs 16x the default (16, 32, 64) per layer; the default keeps a step
        of batch 16 at 28 px near 0.3 s on 2 CPU cores (bench/cyclegan_speed.py).
    n_res_blocks: residual blocks at the bottom of G; the paper uses 6 for 128 px and 9 for
        256 px; 3 suffices for 28-64 px.
    d_widths: the PatchGAN's conv channels; every conv but the last has stride 2 (the paper's
        C64-C128-C256-C512 is (64, 128, 256, 512), a 70 px receptive field). The default
        (16, 32, 64) sees 34x34 patches (`receptive_field`): 5x5 of them on 28 px images, 14x14
        on 64 px; (16, 32) would see 16x16.
    loss: "lsgan" (the paper) or "ns" (non-saturating cross-entropy, as gan.py's).
    lambda_cycle: weight of the cycle-consistency loss; 10 in the paper.
    lambda_identity: weight of the identity loss; the paper's 0.5 x lambda_cycle = 5 (sec. 5.2,
        for painting <-> photo, where it keeps colours); 0 turns it off.
    pool_size: fakes kept in each image pool for D (Shrivastava et al. 2017); 50 in the paper,
        0 shows D only the current batch.
    lr: Adam learning rate of both optimisers; 2e-4 in the paper.
    betas: Adam's (beta1, beta2); the paper's (0.5, 0.999).
    lr_decay_start: share of the training budget after which the rate decays linearly to 0
        (the paper: 100 epochs constant, then 100 decaying, i.e. 0.5); 1.0 keeps it constant.
    """

    channels: int = 1
    image_size: int = 28
    widths: tuple[int, ...] = (16, 32, 64)
    n_res_blocks: int = 3
    d_widths: tuple[int, ...] = (16, 32, 64)
    loss: str = "lsgan"
    lambda_cycle: float = 10.0
    lambda_identity: float = 5.0
    pool_size: int = 50
    lr: float = 2e-4
    betas: tuple[float, float] = (0.5, 0.999)
    lr_decay_start: float = 0.5


def _init(module: nn.Module) -> None:
    """Conv weights N(0, 0.02), biases 0, as the authors' code initialises CycleGAN."""
    if isinstance(module, nn.Conv2d | nn.ConvTranspose2d):
        nn.init.normal_(module.weight, 0.0, 0.02)
        if module.bias is not None:
            nn.init.zeros_(module.bias)


def _conv_norm_relu(c_in: int, c_out: int, k: int, stride: int = 1) -> list[nn.Module]:
    """A conv with instance norm and ReLU; reflection padding keeps the side for stride 1."""
    pad = [nn.ReflectionPad2d(k // 2)] if stride == 1 else []
    conv = nn.Conv2d(c_in, c_out, k, stride, padding=0 if stride == 1 else k // 2, bias=False)
    return [*pad, conv, nn.InstanceNorm2d(c_out, affine=True), nn.ReLU()]


class ResBlock(nn.Module):
    """R-k: two 3x3 convs with instance norm and a skip: x + F(x) (He et al. 2016)."""

    def __init__(self, c: int):
        super().__init__()
        self.f = nn.Sequential(
            *_conv_norm_relu(c, c, 3),
            nn.ReflectionPad2d(1),
            nn.Conv2d(c, c, 3, bias=False),
            nn.InstanceNorm2d(c, affine=True),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.f(x)


class Generator(nn.Module):
    """ResNet generator (Johnson et al. 2016, CycleGAN appendix 7.2): (B, C, S, S) -> same shape.

    c7s1-w0, one stride-2 3x3 conv per further width (d-k), n_res_blocks R-k at the bottom,
    stride-1/2 transposed convs back up (u-k), and a 7x7 conv to C channels. Instance norm and
    ReLU after every conv but the last; a sigmoid maps to [0, 1] (the paper's tanh on [-1, 1]).
    """

    def __init__(self, config: CycleGANConfig):
        super().__init__()
        w, C = config.widths, config.channels
        layers: list[nn.Module] = _conv_norm_relu(C, w[0], 7)  # c7s1-w0
        for c_in, c_out in zip(w[:-1], w[1:], strict=True):  # d-k: halve the side
            layers += _conv_norm_relu(c_in, c_out, 3, stride=2)
        layers += [ResBlock(w[-1]) for _ in range(config.n_res_blocks)]
        for c_in, c_out in zip(w[:0:-1], w[-2::-1], strict=True):  # u-k: double the side
            layers += [
                nn.ConvTranspose2d(c_in, c_out, 3, 2, padding=1, output_padding=1, bias=False),
                nn.InstanceNorm2d(c_out, affine=True),
                nn.ReLU(),
            ]
        layers += [nn.ReflectionPad2d(3), nn.Conv2d(w[0], C, 7)]  # c7s1-C, no norm
        self.net = nn.Sequential(*layers)
        self.apply(_init)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.net(2 * x - 1))  # (B, C, S, S) in [0, 1]


def receptive_field(d_widths: tuple[int, ...]) -> int:
    """Side in pixels of the patch each PatchGAN logit sees: 70 for the paper's 4 widths."""
    strides = [2] * (len(d_widths) - 1) + [1, 1]  # the convs, then the 1-channel output conv
    rf, jump = 1, 1
    for s in strides:  # every conv is 4x4: rf grows by 3 input steps of the current layer
        rf, jump = rf + 3 * jump, jump * s
    return rf


class PatchDiscriminator(nn.Module):
    """PatchGAN (Isola et al. 2017): images (B, C, S, S) in [0, 1] -> logits (B, 1, h, w).

    4x4 convs with LeakyReLU(0.2): stride 2 for all but the last width, which has stride 1,
    then a 4x4 conv to one logit per patch. Instance norm after every conv but the first.
    """

    def __init__(self, config: CycleGANConfig):
        super().__init__()
        chans = [config.channels, *config.d_widths]
        layers: list[nn.Module] = []
        for i, (c_in, c_out) in enumerate(zip(chans[:-1], chans[1:], strict=True)):
            stride = 2 if i < len(chans) - 2 else 1
            layers.append(nn.Conv2d(c_in, c_out, 4, stride, padding=1, bias=i == 0))
            if i > 0:
                layers.append(nn.InstanceNorm2d(c_out, affine=True))
            layers.append(nn.LeakyReLU(0.2))
        layers.append(nn.Conv2d(chans[-1], 1, 4, padding=1))
        self.net = nn.Sequential(*layers)
        self.apply(_init)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(2 * x - 1)  # (B, 1, h, w)


class GeneratorLoss(NamedTuple):
    """What `CycleGAN.g_loss` returns: the loss, its detached logs, and the translations made
    on the way (detached), which D's update reads (through the image pools)."""

    loss: torch.Tensor
    logs: dict[str, torch.Tensor]
    fake_a: torch.Tensor  # G_ba(x_b): (B, C, H, W), judged by D_a
    fake_b: torch.Tensor  # G_ab(x_a): (B, C, H, W), judged by D_b


class CycleGAN(nn.Module):
    """Two generators, G_ab and G_ba, and two PatchGAN discriminators, D_a and D_b.

    No `loss(batch)` and no `sample`: CycleGAN translates given images (`translate`); its two
    objectives, `g_loss` and `d_loss`, are alternated by `genlab.training.cyclegan`.
    """

    def __init__(self, config: CycleGANConfig):
        super().__init__()
        if config.loss not in LOSSES:
            raise GenlabError(f"loss must be one of {sorted(LOSSES)}, got {config.loss!r}")
        down = 2 ** max(len(config.widths) - 1, 0)
        if not config.widths or min(config.widths) < 1 or config.image_size % down:
            raise GenlabError(
                f"widths {config.widths} need positive channels and an image size divisible by "
                f"{down}, got {config.image_size}"
            )
        if not config.d_widths or min(config.d_widths) < 1 or config.n_res_blocks < 0:
            raise GenlabError("d_widths must be positive channels and n_res_blocks >= 0")
        if min(config.lambda_cycle, config.lambda_identity, config.pool_size) < 0:
            raise GenlabError("lambda_cycle, lambda_identity and pool_size must be >= 0")
        self.config = config
        self.G_ab, self.G_ba = Generator(config), Generator(config)
        self.D_a, self.D_b = PatchDiscriminator(config), PatchDiscriminator(config)
        self.d_loss_fn, self.g_loss_fn = LOSSES[config.loss]

    @property
    def generators(self) -> list[nn.Module]:
        return [self.G_ab, self.G_ba]

    @property
    def discriminators(self) -> list[nn.Module]:
        return [self.D_a, self.D_b]

    @torch.no_grad()
    def translate(self, x: torch.Tensor, direction: str = "ab") -> torch.Tensor:
        """Translate images from A to B ("ab", with G_ab) or from B to A ("ba", with G_ba).

        Instance norm uses each image's own statistics, so the result of one image does not
        depend on the rest of the batch, in train and eval mode alike.

        Args:
            x: (B, C, H, W) in [0, 1], at the model's channels and image size.
            direction: "ab" or "ba".

        Returns:
            (B, C, H, W) in [0, 1].
        """
        if direction not in ("ab", "ba"):
            raise GenlabError(f"direction must be 'ab' or 'ba', got {direction!r}")
        c, s = self.config.channels, self.config.image_size
        if x.ndim != 4 or tuple(x.shape[1:]) != (c, s, s):
            raise GenlabError(f"translate expects (B, {c}, {s}, {s}) images, got {tuple(x.shape)}")
        return (self.G_ab if direction == "ab" else self.G_ba)(x)

    def g_loss(self, x_a: torch.Tensor, x_b: torch.Tensor) -> GeneratorLoss:
        """Both generators' loss (eq. 3 plus identity) on a batch of each domain.

        Gradients reach D's parameters too: step only the generators' optimiser on it (the
        training loop freezes D meanwhile).

        Args:
            x_a: (B, C, H, W) images of A in [0, 1]; x_b: (B', C, H, W) images of B.

        Returns:
            `GeneratorLoss`: the scalar loss; logs loss_g, gan_ab, gan_ba, cycle, identity
            (unweighted; cycle and identity summed over both directions); the translations.
        """
        fake_b, fake_a = self.G_ab(x_a), self.G_ba(x_b)  # A -> B, B -> A
        gan_ab = self.g_loss_fn(self.D_b(fake_b))  # G_ab fools D_b
        gan_ba = self.g_loss_fn(self.D_a(fake_a))  # G_ba fools D_a
        cycle = l1_pm1(self.G_ba(fake_b), x_a) + l1_pm1(self.G_ab(fake_a), x_b)  # eq. 2
        loss = gan_ab + gan_ba + self.config.lambda_cycle * cycle
        identity = torch.zeros((), device=x_a.device)
        if self.config.lambda_identity > 0:  # G_ab should leave images of B alone, and so on
            identity = l1_pm1(self.G_ba(x_a), x_a) + l1_pm1(self.G_ab(x_b), x_b)
            loss = loss + self.config.lambda_identity * identity
        logs = {
            "loss_g": loss.detach(),
            "gan_ab": gan_ab.detach(),
            "gan_ba": gan_ba.detach(),
            "cycle": cycle.detach(),
            "identity": identity.detach(),
        }
        return GeneratorLoss(loss, logs, fake_a.detach(), fake_b.detach())

    def d_loss(
        self,
        x_a: torch.Tensor,
        x_b: torch.Tensor,
        fake_a: torch.Tensor | None = None,
        fake_b: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Both discriminators' loss, each halved as in the paper (sec. 4).

        Args:
            x_a, x_b: (B, C, H, W) real images of A and B in [0, 1].
            fake_a, fake_b: translated images to judge (G_ba(b) for D_a, G_ab(a) for D_b), e.g.
                drawn from an image pool; None translates x_b and x_a now (without gradients).

        Returns:
            The scalar loss and detached logs: loss_d = d_a + d_b, the halved losses of D_a
            and D_b.
        """
        if fake_a is None or fake_b is None:
            with torch.no_grad():
                fake_a, fake_b = self.G_ba(x_b), self.G_ab(x_a)
        d_a = 0.5 * self.d_loss_fn(self.D_a(x_a), self.D_a(fake_a.detach()))
        d_b = 0.5 * self.d_loss_fn(self.D_b(x_b), self.D_b(fake_b.detach()))
        loss = d_a + d_b
        return loss, {"loss_d": loss.detach(), "d_a": d_a.detach(), "d_b": d_b.detach()}


class ImagePool:
    """A buffer of past translations that D sees instead of only the newest (Shrivastava et
    al. 2017, sec. 2.3; CycleGAN sec. 4 keeps 50).

    `query` follows the authors' code: while the pool fills, each new image is stored and
    returned; once full, each image is, with probability 1/2, swapped for a random stored one
    (which is returned, the new one taking its place), else returned itself. Its random draws
    come from the global torch RNG, so a checkpoint's RNG state covers them; `state_dict` /
    `load_state_dict` carry its content for exact resume.

    Args:
        size: images kept (0: `query` returns its input).
        shape: (C, H, W) of one image.
        device: where the images are kept.
    """

    def __init__(self, size: int, shape: tuple[int, int, int], device: torch.device | str = "cpu"):
        self.size = size
        self.images = torch.zeros(size, *shape, device=device)  # (size, C, H, W)
        self.count = 0

    @torch.no_grad()
    def query(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C, H, W) images to show D: new ones mixed with stored ones."""
        if self.size == 0:
            return x
        swap = torch.rand(x.shape[0]) < 0.5  # drawn on the CPU for every batch, full or not
        slot = torch.randint(self.size, (x.shape[0],))
        out = x.clone()
        for i in range(x.shape[0]):
            if self.count < self.size:  # still filling: store and return the new image
                self.images[self.count] = x[i]
                self.count += 1
            elif swap[i]:
                j = int(slot[i])
                out[i] = self.images[j]
                self.images[j] = x[i]
        return out

    def state_dict(self) -> dict[str, torch.Tensor]:
        return {"images": self.images, "count": torch.tensor(self.count)}

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        self.images.copy_(state["images"])
        self.count = int(state["count"])


# ------------------------------------------------------------------------------ the family record

CYCLEGAN_TRAIN = {
    "batch_size": 16,  # the paper trains with batch 1; 16 keeps a 28 px step near 0.3 s on 2 cores
    "lr": 2e-4,
    "lr_schedule": "constant",
    "warmup_steps": 0,
    "grad_clip": None,
    "ema_decay": None,
}
"""TrainConfig values of a CycleGAN run: no clipping, no EMA (the paper has neither). The rate
is CycleGANConfig.lr with its own linear decay; TrainConfig.lr is stored alike, unused."""


def domain_specs(options: dict) -> dict:
    """{"data": domain A, "data_b": domain B} (DataSpecs) of the options: two folders
    (--data-a, --data-b), optionally one class of each, or two classes of --data (--class-a,
    --class-b).

    Raises:
        GenlabError: one folder without the other, or neither folders nor two classes.
    """
    from genlab.data import image_spec

    folder_a, folder_b = options.get("data_a"), options.get("data_b")
    class_a, class_b = options.get("class_a"), options.get("class_b")
    if (folder_a is None) != (folder_b is None):
        raise GenlabError("give both --data-a and --data-b (a folder of images for each domain)")
    if folder_a is None and (class_a is None or class_b is None):
        raise GenlabError(
            "cyclegan needs two domains: --data-a DIR --data-b DIR, or --class-a and --class-b "
            'of --data (e.g. --class-a Sneaker --class-b "Ankle boot")'
        )
    shared = {k: options.get(k) for k in ("data_dir", "limit")}
    shared.update(size=options.get("size") or 32, channels=options.get("channels") or 1)
    data = options.get("data") or "fashion-mnist"

    def spec(folder, cls):
        classes = (cls,) if cls is not None else None
        return image_spec(str(folder) if folder is not None else data, classes=classes, **shared)

    return {"data": spec(folder_a, class_a), "data_b": spec(folder_b, class_b)}


def read_domains(specs: dict, split: str = "train"):
    """Both domains' images (`genlab.data.domains.Domains`) of one split."""
    from genlab.data.domains import load_domains

    return load_domains(specs["data"], specs["data_b"], split)


def configure(options: dict, domains) -> Configured:
    """A CycleGAN for the domains' image shape; their labels go to config.json."""
    from genlab.data.domains import domain_label

    config = image_config(CycleGANConfig, options, domains.a)
    labels = [domain_label(s) for s in domain_specs(options).values()]
    return Configured(config, {"domains": labels}, train={"lr": config.lr})


FAMILY = Family(
    name="cyclegan",
    summary="CycleGAN: unpaired translation between two domains (folders or classes).",
    config=CycleGANConfig,
    model=CycleGAN,
    configure=configure,
    options=(
        *image_options(
            CycleGANConfig,
            widths={"min": 1, "max": 1024},
            n_res_blocks={"max": 64},
            d_widths={"min": 1, "max": 1024},
            loss={"choices": tuple(LOSSES)},
            lambda_cycle={"max": 1e4},
            lambda_identity={"max": 1e4},
            pool_size={"max": 10_000},
            lr={"min_open": True, "max": 1.0},
            betas={"length": 2, "max": 0.9999},
            lr_decay_start={"max": 1.0},
        ),
        Option("data_a", "path", help="A folder of domain A's images."),
        Option("data_b", "path", help="A folder of domain B's images."),
        Option("class_a", "str", help="Domain A is this class of --data (or of --data-a)."),
        Option("class_b", "str", help="Domain B is this class of --data (or of --data-b)."),
    ),
    train_defaults=CYCLEGAN_TRAIN,
    train_ignores=("warmup_steps", "lr_schedule", "min_lr_ratio"),
    specs=domain_specs,
    read=read_domains,
)
