"""Image denoisers for diffusion (task ``diffusion``): a network that predicts the noise (or the
velocity) of a noisy image, the condition embedding it shares with every architecture, and the
process that trains and samples it (:class:`~latentbridge.models.process.DiffusionProcess`,
built from the ``process`` argument: the network holds no schedule maths).

Families (registry names):

- ``ddpm_unet``: our residual U-Net (:class:`~latentbridge.nn.unet.UNet2D`);
- ``ddpm_seed_unet``: the reference design's two-block U-Net (:class:`~latentbridge.nn.unet.SimpleUNet`);
- ``ddpm_diffusers_unet``: diffusers' ``UNet2DModel`` (the condition vector enters through its
  ``identity`` class embedding, so conditioning is the same path as ours).

Data space: images in [0, 1] (``uint8 / 255``), ``(B, C, H, W)``; the process runs in [-1, 1].
Training batches are dicts ``{"x": images, "y": labels (optional), "c": conditions (optional)}``.
"""

from __future__ import annotations

import math
from typing import Any, Callable, ClassVar, Literal

import torch
from pydantic import Field
from torch import Tensor, nn

from latentbridge.models.base import ModelFamily, ModelSpec, inference
from latentbridge.models.process import DiffusionProcess, guided
from latentbridge.sampling_args import guidance_problem
from latentbridge.nn.unet import ConditionEmbedding, SimpleUNet, UNet2D, _groups


class DDPMUNetConfig(ModelSpec):
    name: Literal["ddpm_unet"] = "ddpm_unet"
    channels: list[int] = Field(default_factory=lambda: [32, 64, 64])
    """Width per resolution (each further entry halves the resolution)."""
    blocks: int = Field(1, ge=1)
    """Residual blocks per resolution on the way down (one more on the way up)."""
    attention_resolution: int = Field(8, ge=0)
    """Self-attention at the resolutions whose side is at most this (and in the middle)."""
    heads: int = Field(4, gt=0)
    groups: int = Field(8, gt=0)
    dropout: float = Field(0.0, ge=0, lt=1)


class SeedUNetConfig(ModelSpec):
    name: Literal["ddpm_seed_unet"] = "ddpm_seed_unet"
    channels: list[int] = Field(default_factory=lambda: [64, 128])
    """Widths of the two encoder blocks."""
    emb_dim: int = Field(128, gt=0)


class DiffusersUNetConfig(ModelSpec):
    name: Literal["ddpm_diffusers_unet"] = "ddpm_diffusers_unet"
    channels: list[int] = Field(default_factory=lambda: [32, 64, 64])
    layers_per_block: int = Field(1, ge=1)
    attention_resolution: int = Field(8, ge=0)
    groups: int = Field(8, gt=0)
    head_dim: int = Field(16, gt=0)


class Denoiser(ModelFamily, nn.Module):
    """What every image denoiser shares: conditions, the training loss, guided sampling.

    ``image_shape``: (C, H, W); ``n_classes``: class labels (0: none; label ``n_classes`` is the
    null class); ``n_continuous``: continuous conditions per image; ``process``: the
    :class:`DiffusionProcess` fields; ``label_dropout``: share of training samples whose
    conditions are replaced by the null ones. Subclasses build ``self.net`` (``forward(x, t,
    cond)``) with ``emb_dim`` given by :meth:`build`."""

    tasks: ClassVar[tuple[str, ...]] = ("diffusion",)

    def __init__(self, image_shape=(1, 28, 28), n_classes: int = 0, n_continuous: int = 0,
                 process: dict | None = None, label_dropout: float = 0.1, **arch: Any):
        super().__init__()
        self.image_shape = tuple(int(s) for s in image_shape)
        if len(self.image_shape) != 3:
            raise ValueError(f"image_shape must be (C, H, W), got {image_shape}")
        self.n_classes, self.n_continuous = int(n_classes), int(n_continuous)
        self.label_dropout = float(label_dropout)
        self.process = DiffusionProcess.from_config(process)
        self.arch = dict(arch)
        self.net, emb_dim = self.build(**arch)
        self.cond = ConditionEmbedding(emb_dim, self.n_classes, self.n_continuous)

    def build(self, **arch: Any) -> tuple[nn.Module, int]:  # pragma: no cover - abstract
        raise NotImplementedError

    @property
    def conditional(self) -> bool:
        return bool(self.n_classes or self.n_continuous)

    def config(self) -> dict[str, Any]:
        return {"image_shape": list(self.image_shape), "n_classes": self.n_classes,
                "n_continuous": self.n_continuous, "process": self.process.config(),
                "label_dropout": self.label_dropout, **self.arch}

    # --- the network ---------------------------------------------------------------------
    def forward(self, x_t: Tensor, t: Tensor, y: Tensor | None = None, c: Tensor | None = None,
                drop: Tensor | None = None) -> Tensor:
        """The prediction (noise or velocity) for noisy images ``x_t`` (in [-1, 1]) at timesteps ``t``
        (B,), labels ``y`` (B,), conditions ``c`` (B, n_continuous); ``drop`` (B,) bool: use the
        null condition for those rows."""
        cond = self.cond(x_t.shape[0], y, c, drop, device=x_t.device) if self.conditional else None
        return self.net(x_t, t, cond)

    # --- training ------------------------------------------------------------------------
    @staticmethod
    def _parts(batch) -> tuple[Tensor, Tensor | None, Tensor | None]:
        if isinstance(batch, dict):
            return batch["x"], batch.get("y"), batch.get("c")
        return batch, None, None

    def loss(self, batch, beta: float = 0.0) -> tuple[Tensor, dict[str, Tensor]]:
        """Per-sample mean squared error between the prediction and the process's target (the
        noise, or the velocity) at a uniformly drawn timestep (beta is unused)."""
        x, y, c = self._parts(batch)
        if tuple(x.shape[1:]) != self.image_shape:
            raise ValueError(f"{type(self).__name__} expects images of shape (B, {self.image_shape}), "
                             f"got {tuple(x.shape)}")
        x0 = x * 2.0 - 1.0
        x_t, t, target = self.process.diffuse(x0)
        drop = None
        if self.training and self.conditional and self.label_dropout > 0:
            drop = torch.rand(x.shape[0], device=x.device) < self.label_dropout
        out = self(x_t, t, y if self.n_classes else None, c if self.n_continuous else None, drop)
        mse = (out - target).pow(2).flatten(1).mean(1)
        return mse, {"mse": mse}

    def example_batch(self, n: int, generator: torch.Generator | None = None) -> dict[str, Tensor]:
        """Blurred blobs in [0, 1] with labels (and conditions) for checks."""
        c, h, w = self.image_shape
        yy = torch.linspace(-1, 1, h).view(1, 1, h, 1)
        xx = torch.linspace(-1, 1, w).view(1, 1, 1, w)
        centre = torch.rand(n, c, 2, generator=generator) - 0.5
        width = 0.2 + 0.3 * torch.rand(n, c, 1, 1, generator=generator)
        x = torch.exp(-((yy - centre[..., 0:1, None]) ** 2 + (xx - centre[..., 1:2, None]) ** 2) / width ** 2)
        batch = {"x": x.clamp(0, 1)}
        if self.n_classes:
            batch["y"] = torch.randint(0, self.n_classes, (n,), generator=generator)
        if self.n_continuous:
            batch["c"] = torch.rand(n, self.n_continuous, generator=generator)
        return batch

    # --- sampling ------------------------------------------------------------------------
    def _check_conditions(self, n: int, y: Tensor | None, c: Tensor | None) -> tuple[Tensor | None, Tensor | None]:
        if n < 0 or int(n) != n:
            raise ValueError(f"n (the number of images) must be a whole number >= 0, got {n!r}")
        if y is not None:
            if not self.n_classes:
                raise ValueError(f"{type(self).__name__} was trained without class labels")
            try:
                given = torch.as_tensor(y)
            except (TypeError, ValueError, RuntimeError):
                given = None
            if given is None or given.is_complex() or given.is_floating_point() and not bool(
                    (given == given.round()).all()):  # (2.7 was class 2; '3' a message of dimensions)
                raise ValueError(f"labels must be class indices (whole numbers 0..{self.n_classes - 1}), got {y!r}")
            y = given.long().reshape(-1)
            if len(y) != n or (y < 0).any() or (y >= self.n_classes).any():
                raise ValueError(f"labels must be {n} values in 0..{self.n_classes - 1}")
        if c is not None:
            if not self.n_continuous:
                raise ValueError(f"{type(self).__name__} was trained without continuous conditions")
            c = torch.as_tensor(c, dtype=torch.float32).reshape(n, self.n_continuous)
        return y, c

    def denoiser(self, y: Tensor | None = None, c: Tensor | None = None, guidance: float = 1.0):
        """``fn(x_t, t)`` for :meth:`DiffusionProcess.sample`, guided toward ``y`` / ``c`` (a model
        given no condition samples from its null condition)."""
        has = (y is not None and self.n_classes > 0) or (c is not None and self.n_continuous > 0)
        return guided(self.forward, y, c, guidance, conditional=has)

    def sampling_batch(self, batch_size: int, guided: bool = False) -> int:
        """``batch_size`` or fewer images, so that a batch's activations stay within :data:`SAMPLING_MEMORY_SHARE`
        of the memory free where the model is (on the CPU, 4 GiB at most): 250 images of 128 x 128 at a time took
        9.3 GB for a model of 285 KB. The images do not depend on it (:meth:`generate`)."""
        from latentbridge.errors import available_memory

        dev = next(self.parameters()).device
        free = torch.cuda.mem_get_info(dev)[0] if dev.type == "cuda" else min(4 * 2**30, available_memory() or 2**32)
        per = self.image_activation_bytes() * (2 if guided else 1)  # (classifier-free guidance: a batch twice over)
        return max(1, min(int(batch_size), int(SAMPLING_MEMORY_SHARE * free // per)))

    def image_activation_bytes(self) -> float:
        """An image's activations in one forward pass, measured once: 1.5 times the outputs of the layers (peaks
        measured at 0.4-1.5 times them, 28 to 128 pixels)."""
        if getattr(self, "_image_bytes", None) is None:
            total = [0]

            def count(_module, _inputs, out):
                total[0] += out.numel() * out.element_size() if isinstance(out, Tensor) else 0

            hooks = [m.register_forward_hook(count) for m in self.modules() if not list(m.children())]
            dev, was = next(self.parameters()).device, self.training
            try:
                with torch.no_grad():
                    self.eval().forward(torch.zeros(1, *self.image_shape, device=dev),
                                        torch.zeros(1, device=dev).long())
            finally:
                self.train(was)
                for h in hooks:
                    h.remove()
            self._image_bytes = max(1.0, 1.5 * total[0])
        return self._image_bytes

    @inference
    def generate(self, n: int, *, y=None, c=None, guidance: float = 1.0, scheduler: str = "ddim",
                 steps: int | None = 50, eta: float = 0.0, generator: torch.Generator | None = None,
                 batch_size: int = 250, progress: Callable[[int], None] | None = None) -> Tensor:
        """``n`` images in [0, 1] (B, C, H, W, on the CPU), drawn on the model's device in batches of
        ``batch_size``, each image's noise (its start and, with the ddpm scheduler or DDIM's ``eta``, every step's) from
        a generator of its own seeded by ``generator`` (a CPU generator): same generator seed, same device → same
        images, whatever the batch size (one generator drawn in turn by the batches made the batch size change them)."""
        y, c = self._check_conditions(n, y, c)
        if problem := guidance_problem(guidance):  # (-1 sampled; NaN was blamed on the steps and scheduler)
            raise ValueError(f"guidance: {problem}")
        if int(batch_size) != batch_size or batch_size < 1:
            raise ValueError(f"batch_size must be a whole number >= 1, got {batch_size!r}")
        dev = next(self.parameters()).device
        y, c = (None if v is None else v.to(dev) for v in (y, c))
        first = int(torch.randint(0, 2**62, (1,), generator=generator))
        out = []
        for i in range(0, n, batch_size):
            j = min(n, i + batch_size)
            fn = self.denoiser(None if y is None else y[i:j], None if c is None else c[i:j], guidance)
            own = [torch.Generator().manual_seed(first + k) for k in range(i, j)]  # this batch's images'
            noise = torch.stack([torch.randn(self.image_shape, generator=g) for g in own])
            x = self.process.sample(fn, (j - i, *self.image_shape), scheduler=scheduler, steps=steps,
                                    generator=own, noise=noise, eta=eta, progress=progress, device=dev,
                                    guidance=float(guidance))
            out.append(((x.clamp(-1, 1) + 1) / 2).float().cpu())
        return torch.cat(out) if out else torch.zeros(0, *self.image_shape)


#: the share of the free memory a batch of sampled images' activations may take (:meth:`Denoiser.sampling_batch`)
SAMPLING_MEMORY_SHARE = 0.25


def _attention_flags(channels, side: int, limit: int) -> list[bool]:
    return [side // 2 ** i <= limit for i in range(len(channels))]


class DDPMUNet(Denoiser):
    """Our residual U-Net with sinusoidal timestep embedding, skips and low-resolution attention."""

    name = "ddpm_unet"
    config_class = DDPMUNetConfig

    def build(self, channels=(32, 64, 64), blocks: int = 1, attention_resolution: int = 8, heads: int = 4,
              groups: int = 8, dropout: float = 0.0):
        c, h, w = self.image_shape
        net = UNet2D(c, [int(x) for x in channels], int(blocks),
                     _attention_flags(channels, min(h, w), attention_resolution), groups=groups,
                     heads=math.gcd(int(heads), *[int(x) for x in channels]), dropout=dropout)
        return net, net.emb_dim


class SeedUNet(Denoiser):
    """The reference design's simple two-block U-Net (conditioned through the same embedding)."""

    name = "ddpm_seed_unet"
    config_class = SeedUNetConfig

    def build(self, channels=(64, 128), emb_dim: int = 128):
        if len(channels) != 2:
            raise ValueError(f"ddpm_seed_unet has two encoder blocks: channels must have 2 entries, got {channels}")
        net = SimpleUNet(self.image_shape[0], channels, emb_dim)
        return net, net.emb_dim


class _DiffusersNet(nn.Module):
    def __init__(self, unet, emb_dim: int):
        super().__init__()
        self.unet = unet
        self.emb_dim = emb_dim

    def forward(self, x: Tensor, t: Tensor, cond: Tensor | None = None) -> Tensor:
        t = t.reshape(-1).expand(x.shape[0]) if t.numel() == 1 else t
        if cond is None and self.unet.config.class_embed_type is not None:
            cond = torch.zeros(x.shape[0], self.emb_dim, device=x.device)
        return self.unet(x, t, class_labels=cond).sample


class DiffusersUNet(Denoiser):
    """diffusers' ``UNet2DModel`` (residual blocks, attention where the side is at most
    ``attention_resolution``), conditioned through its ``identity`` class embedding."""

    name = "ddpm_diffusers_unet"
    config_class = DiffusersUNetConfig

    def build(self, channels=(32, 64, 64), layers_per_block: int = 1, attention_resolution: int = 8,
              groups: int = 8, head_dim: int = 16):
        from diffusers import UNet2DModel

        c, h, w = self.image_shape
        channels = [int(x) for x in channels]
        flags = _attention_flags(channels, min(h, w), attention_resolution)
        g = _groups(math.gcd(*channels), groups)
        emb_dim = 4 * channels[0]
        conditional = bool(self.n_classes or self.n_continuous)
        unet = UNet2DModel(
            sample_size=(h, w), in_channels=c, out_channels=c, block_out_channels=tuple(channels),
            layers_per_block=int(layers_per_block), norm_num_groups=g,
            attention_head_dim=min(int(head_dim), min(channels)),
            down_block_types=tuple("AttnDownBlock2D" if f else "DownBlock2D" for f in flags),
            up_block_types=tuple("AttnUpBlock2D" if f else "UpBlock2D" for f in reversed(flags)),
            class_embed_type="identity" if conditional else None)
        return _DiffusersNet(unet, emb_dim), emb_dim
