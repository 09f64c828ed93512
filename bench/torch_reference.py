"""PyTorch baseline for the training-step benchmark: the paper's MNIST networks and steps.

Written for bench/bench_train_step.py from the layer-by-layer description in
notes/reference-code-digest.md §1.1 (uRDP EncoderMNIST / DecoderMNIST / DiscriminatorMNIST),
§1.4 (the paper's small MNIST CNN classifier) and §3.1 (WGAN-GP critic step, generator step);
no code was taken from the reference repositories. Everything is float32, NCHW (PyTorch's
default layout) and uses PyTorch's default initialisation.

Two schedules, mirroring `rdc_keras.trainers.rdc.RDCTrainer`:

* `joint_step`: one encoder/decoder forward, then one critic update with gradient penalty and
  one classifier update on the detached reconstruction, then the generator update
  (MSE + lambda_c * CE + lambda_p * (-critic)) through the same forward pass.
* `alternate_step`: the paper's code, critic and generator on alternate batches, no classifier.
  Critic turns run the generator in training mode without gradients (BatchNorm statistics still
  update, as in the reference code).

In the generator update the critic's and classifier's weights have `requires_grad` switched off,
so autograd computes only the gradients back to x_hat (what TF computes when differentiating with
respect to the generator's variables only).
"""

from __future__ import annotations

import itertools

import torch
from torch import nn
from torch.nn import functional

__all__ = [
    "Classifier",
    "Critic",
    "Decoder",
    "Encoder",
    "TorchRDC",
    "UniversalQuantizer",
    "parameter_count",
]

LEAKY_SLOPE = 0.01  # PyTorch's nn.LeakyReLU default, as in the reference code
BN_EPS, BN_MOMENTUM = 1e-5, 0.1


def parameter_count(module: nn.Module) -> int:
    """Number of trainable parameters (BatchNorm running statistics excluded)."""
    return sum(p.numel() for p in module.parameters() if p.requires_grad)


def _dense_block(in_features: int, out_features: int) -> list[nn.Module]:
    return [
        nn.Linear(in_features, out_features),
        nn.BatchNorm1d(out_features, eps=BN_EPS, momentum=BN_MOMENTUM),
        nn.LeakyReLU(LEAKY_SLOPE),
    ]


class Encoder(nn.Module):
    """784 -> 512 -> 256 -> 128 -> 128 (Linear, BN, LeakyReLU) -> d (Linear, BN, tanh)."""

    def __init__(self, latent_dim: int) -> None:
        super().__init__()
        layers: list[nn.Module] = [nn.Flatten()]
        widths = (784, 512, 256, 128, 128)
        for a, b in itertools.pairwise(widths):
            layers += _dense_block(a, b)
        layers += [
            nn.Linear(128, latent_dim),
            nn.BatchNorm1d(latent_dim, eps=BN_EPS, momentum=BN_MOMENTUM),
            nn.Tanh(),
        ]
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class Decoder(nn.Module):
    """d -> 128 -> 512, view 32x4x4, ConvT 64 k5 s2 (11), ConvT 128 k5 s2 (25), ConvT 1 k4 (28)."""

    def __init__(self, latent_dim: int) -> None:
        super().__init__()
        self.dense = nn.Sequential(*_dense_block(latent_dim, 128), *_dense_block(128, 512))
        self.conv = nn.Sequential(
            nn.ConvTranspose2d(32, 64, 5, stride=2),
            nn.BatchNorm2d(64, eps=BN_EPS, momentum=BN_MOMENTUM),
            nn.LeakyReLU(LEAKY_SLOPE),
            nn.ConvTranspose2d(64, 128, 5, stride=2),
            nn.BatchNorm2d(128, eps=BN_EPS, momentum=BN_MOMENTUM),
            nn.LeakyReLU(LEAKY_SLOPE),
            nn.ConvTranspose2d(128, 1, 4, stride=1),
            nn.Sigmoid(),
        )

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.conv(self.dense(z).view(-1, 32, 4, 4))


class Critic(nn.Module):
    """Conv 64/128/256 k5 s2 p2 with LeakyReLU (28 -> 14 -> 7 -> 4), Linear 4096 -> 1."""

    def __init__(self, channels: int = 1) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Conv2d(channels, 64, 5, stride=2, padding=2),
            nn.LeakyReLU(LEAKY_SLOPE),
            nn.Conv2d(64, 128, 5, stride=2, padding=2),
            nn.LeakyReLU(LEAKY_SLOPE),
            nn.Conv2d(128, 256, 5, stride=2, padding=2),
            nn.LeakyReLU(LEAKY_SLOPE),
            nn.Flatten(),
            nn.Linear(4096, 1),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class Classifier(nn.Module):
    """Conv10 k5, ReLU, MaxPool2, Conv10 k5, ReLU, MaxPool2, FC100, ReLU, FC10 (19,880 params)."""

    def __init__(self) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Conv2d(1, 10, 5),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(10, 10, 5),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Flatten(),
            nn.Linear(160, 100),
            nn.ReLU(),
            nn.Linear(100, 10),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class UniversalQuantizer(nn.Module):
    """Dithered quantizer: nearest of L centres on [-1, 1] to y + u, minus u; soft gradient.

    Forward value: centres[argmin |y + u - c|] - u. Backward: the gradient of the soft
    assignment sum_l c_l softmax_l(-sigma |y + u - c_l|) (DESIGN.md "The method in one screen").
    """

    def __init__(self, num_levels: int, sigma: float = 1.0) -> None:
        super().__init__()
        if num_levels < 2:
            raise ValueError(f"num_levels must be >= 2, got {num_levels}")
        self.num_levels = num_levels
        self.sigma = float(sigma)
        self.register_buffer("centers", torch.linspace(-1.0, 1.0, num_levels))

    def dither(self, batch: int, latent_dim: int) -> torch.Tensor:
        """u ~ U[-1/(L-1), 1/(L-1)] per example and dimension (half a quantization step)."""
        half_step = 1.0 / (self.num_levels - 1)
        return (torch.rand(batch, latent_dim) * 2.0 - 1.0) * half_step

    def forward(self, y: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
        distance = (y + u).unsqueeze(-1) - self.centers
        soft = (torch.softmax(-self.sigma * distance.abs(), dim=-1) * self.centers).sum(-1)
        hard = self.centers[distance.abs().argmin(dim=-1)]
        return soft + (hard - soft).detach() - u


def _adam(params, lr: float, betas: tuple[float, float], eps: float) -> torch.optim.Adam:
    return torch.optim.Adam(params, lr=lr, betas=betas, eps=eps)


class TorchRDC:
    """Encoder, quantizer, decoder, critic and classifier with their Adam optimizers.

    Args:
      latent_dim, num_levels: d and L (the paper's 3 and 3: 4.75 bits).
      lambda_c, lambda_p: generator-loss weights of the CE and adversarial terms.
      generator_lr, critic_lr, classifier_lr: Adam learning rates (rdc_keras's mnist preset).
      betas, eps: Adam betas and epsilon, shared by all optimizers (as in rdc_keras's runner).
      gp_weight: WGAN-GP weight (10).
      sigma: soft-quantizer sigma (1 for MNIST).
      channels_last: store the conv networks' weights channels-last (NHWC in memory); feed
        images with `to_memory_format` then. A lever on the baseline's side, off by default.
    """

    def __init__(
        self,
        latent_dim: int = 3,
        num_levels: int = 3,
        *,
        lambda_c: float = 0.015,
        lambda_p: float = 0.015,
        generator_lr: float = 1e-2,
        critic_lr: float = 2e-4,
        classifier_lr: float = 1e-3,
        betas: tuple[float, float] = (0.5, 0.9),
        eps: float = 1e-8,
        gp_weight: float = 10.0,
        sigma: float = 1.0,
        channels_last: bool = False,
    ) -> None:
        self.latent_dim = latent_dim
        self.memory_format = torch.channels_last if channels_last else torch.contiguous_format
        self.encoder = Encoder(latent_dim)
        self.decoder = Decoder(latent_dim)
        self.quantizer = UniversalQuantizer(num_levels, sigma)
        self.critic = Critic()
        self.classifier = Classifier()
        self.lambda_c, self.lambda_p, self.gp_weight = lambda_c, lambda_p, gp_weight
        generator_params = list(self.encoder.parameters()) + list(self.decoder.parameters())
        self.generator_optimizer = _adam(generator_params, generator_lr, betas, eps)
        self.critic_optimizer = _adam(self.critic.parameters(), critic_lr, betas, eps)
        self.classifier_optimizer = _adam(self.classifier.parameters(), classifier_lr, betas, eps)
        for module in (self.encoder, self.decoder, self.critic, self.classifier):
            module.train()
            module.to(memory_format=self.memory_format)
        self._step = 0

    def to_memory_format(self, images: torch.Tensor) -> torch.Tensor:
        """NCHW images laid out in memory as the networks expect (a copy when channels-last)."""
        return images.contiguous(memory_format=self.memory_format)

    def parameter_counts(self) -> dict[str, int]:
        """Trainable parameters per network (digest §1.1: 585,097 / 326,465 / 1,030,145 at d=3)."""
        return {
            "encoder": parameter_count(self.encoder),
            "decoder": parameter_count(self.decoder),
            "critic": parameter_count(self.critic),
            "classifier": parameter_count(self.classifier),
        }

    def reconstruct(self, x: torch.Tensor) -> torch.Tensor:
        """x_hat = g(Q(f(x) + u) - u) with fresh dither, in training mode."""
        y = self.encoder(x)
        return self.decoder(self.quantizer(y, self.quantizer.dither(x.shape[0], self.latent_dim)))

    def _critic_update(self, x: torch.Tensor, x_hat: torch.Tensor) -> torch.Tensor:
        """E h(x_hat) - E h(x) + gp_weight * E (||grad h(x_tilde)||_2 - 1)^2 (Gulrajani et al.)."""
        x_hat = x_hat.detach()
        epsilon = torch.rand(x.shape[0], 1, 1, 1)
        interpolates = (epsilon * x + (1.0 - epsilon) * x_hat).requires_grad_(True)
        real = self.critic(x).mean()
        fake = self.critic(x_hat).mean()
        scores = self.critic(interpolates)
        (gradients,) = torch.autograd.grad(scores.sum(), interpolates, create_graph=True)
        penalty = ((gradients.flatten(1).norm(2, dim=1) - 1.0) ** 2).mean()
        loss = fake - real + self.gp_weight * penalty
        self.critic_optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.critic_optimizer.step()
        return loss.detach()

    def _classifier_update(self, x_hat: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        loss = functional.cross_entropy(self.classifier(x_hat.detach()), labels)
        self.classifier_optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.classifier_optimizer.step()
        return loss.detach()

    def _generator_update(
        self, x: torch.Tensor, x_hat: torch.Tensor, labels: torch.Tensor | None
    ) -> torch.Tensor:
        frozen = list(self.critic.parameters())
        if labels is not None:
            frozen += list(self.classifier.parameters())
        for p in frozen:
            p.requires_grad_(False)
        try:
            loss = functional.mse_loss(x_hat, x) - self.lambda_p * self.critic(x_hat).mean()
            if labels is not None:
                ce = functional.cross_entropy(self.classifier(x_hat), labels)
                loss = loss + self.lambda_c * ce
            self.generator_optimizer.zero_grad(set_to_none=True)
            loss.backward()
            self.generator_optimizer.step()
        finally:
            for p in frozen:
                p.requires_grad_(True)
        return loss.detach()

    def joint_step(self, x: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """Critic, classifier and generator updates on one batch, one generator forward."""
        x_hat = self.reconstruct(x)
        self._critic_update(x, x_hat)
        self._classifier_update(x_hat, labels)
        loss = self._generator_update(x, x_hat, labels)
        self._step += 1
        return loss

    def alternate_step(self, x: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        """The paper's schedule: even steps update the critic, odd steps the generator."""
        if self._step % 2 == 0:
            with torch.no_grad():
                x_hat = self.reconstruct(x)
            loss = self._critic_update(x, x_hat)
        else:
            loss = self._generator_update(x, self.reconstruct(x), None)
        self._step += 1
        return loss
