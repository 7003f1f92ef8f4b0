"""Augmentation of whole batches as tensors: no per-image Python in the training loop.

Real handwriting differs from MNIST's normalized digits in slant, size, placement, wobble
and pen width. One resampling step applies a random affine map (rotation, scale, shear,
shift) plus a smooth elastic displacement; a max-pool then thickens or thins the strokes of
part of the batch. ``photo_degrade`` adds what a camera does to ink: blur, sensor noise,
faded or uneven contrast, and broken strokes (erased patches).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F


@dataclass(frozen=True)
class AugmentSettings:
    rotation_degrees: float = 12.0
    scale: float = 0.12
    shear: float = 0.2
    shift_pixels: float = 2.5
    elastic_pixels: float = 0.0
    thickness: float = 0.0  # share of the batch whose strokes are thickened or thinned


def _uniform(n: int, generator: torch.Generator, *shape: int) -> torch.Tensor:
    return torch.rand(n, *shape, generator=generator) * 2 - 1


def affine_theta(n: int, settings: AugmentSettings, generator: torch.Generator) -> torch.Tensor:
    """(n, 2, 3) sampling matrices for affine_grid: output pixel -> input position."""
    rand = _uniform(n, generator, 5)
    angle = rand[:, 0] * math.radians(settings.rotation_degrees)
    scale = 1 + rand[:, 1] * settings.scale
    shear = rand[:, 2] * settings.shear
    shift = rand[:, 3:5] * (settings.shift_pixels / 14)  # grid units: 14 pixels per unit
    cos, sin = torch.cos(angle) / scale, torch.sin(angle) / scale
    row_x = torch.stack([cos, -sin + shear * cos, shift[:, 0]], dim=1)
    row_y = torch.stack([sin, cos + shear * sin, shift[:, 1]], dim=1)
    return torch.stack([row_x, row_y], dim=1)


def elastic_field(n: int, size: int, pixels: float, generator: torch.Generator) -> torch.Tensor:
    """A smooth random displacement (n, size, size, 2) in grid units, up to ``pixels``.

    Random offsets on a coarse 4x4 lattice, upsampled bicubically: the wobble of a hand,
    not the pixel noise of per-pixel jitter.
    """
    coarse = _uniform(n, generator, 2, 4, 4) * (pixels / (size / 2))
    field = F.interpolate(coarse, size=(size, size), mode="bicubic", align_corners=True)
    return field.permute(0, 2, 3, 1)


def change_thickness(x: torch.Tensor, share: float, generator: torch.Generator) -> torch.Tensor:
    """Thicken (dilate) a share of the images and thin (erode, half-strength) another share."""
    n = x.shape[0]
    pick = torch.rand(n, generator=generator)
    thicker = (pick < share / 2).view(n, 1, 1, 1)
    thinner = ((pick >= share / 2) & (pick < share)).view(n, 1, 1, 1)
    dilated = F.max_pool2d(x, 3, stride=1, padding=1)
    eroded = 0.5 * (x - F.max_pool2d(-x, 3, stride=1, padding=1))
    return torch.where(thicker, dilated, torch.where(thinner, eroded, x))


def augment_batch(x: torch.Tensor, settings: AugmentSettings, generator: torch.Generator) -> torch.Tensor:
    """Augment a float batch (N, 1, H, W) in [0, 1]; the result has the same shape."""
    n, _, height, width = x.shape
    grid = F.affine_grid(affine_theta(n, settings, generator), [n, 1, height, width], align_corners=False)
    if settings.elastic_pixels > 0:
        grid = grid + elastic_field(n, height, settings.elastic_pixels, generator)
    out = F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    if settings.thickness > 0:
        out = change_thickness(out, settings.thickness, generator)
    return out


def photo_degrade(x: torch.Tensor, share: float, generator: torch.Generator) -> torch.Tensor:
    """Degrade a ``share`` of the batch as a phone photo or a poor scan would.

    Each picked image gets a random mix of: Gaussian blur (sigma up to 1.2 pixels), faded
    ink (peak 0.45..1) with a gamma change, additive noise, and an erased rectangle that
    breaks a stroke. Only the ink's look changes; the digit stays the same digit.
    """
    n, _, height, width = x.shape
    picked = (torch.rand(n, 1, 1, 1, generator=generator) < share).float()
    sigma = 0.3 + torch.rand(n, generator=generator) * 0.9
    offsets = torch.arange(-2, 3, dtype=x.dtype).view(1, 5)
    kernel_1d = torch.exp(-(offsets**2) / (2 * sigma.view(n, 1) ** 2))
    kernel_1d = kernel_1d / kernel_1d.sum(1, keepdim=True)
    kernel = (kernel_1d.view(n, 5, 1) * kernel_1d.view(n, 1, 5)).view(n, 1, 5, 5).to(x.dtype)
    # One grouped convolution blurs every image with its own kernel.
    blurred = F.conv2d(x.reshape(1, n, height, width), kernel, padding=2, groups=n).reshape(n, 1, height, width)
    use_blur = (torch.rand(n, 1, 1, 1, generator=generator) < 0.5).to(x.dtype)
    out = torch.lerp(x, blurred, use_blur)
    peak = 0.45 + 0.55 * torch.rand(n, 1, 1, 1, generator=generator)
    gamma = torch.exp((torch.rand(n, 1, 1, 1, generator=generator) - 0.5) * 0.8)
    out = out.clamp(0, 1).pow(gamma) * peak
    noise = torch.randn(x.shape, generator=generator) * (torch.rand(n, 1, 1, 1, generator=generator) * 0.08)
    out = out + noise
    erase = _erase_masks(n, height, width, generator).to(x.dtype)
    out = (out * (1 - erase)).clamp(0, 1)
    return torch.lerp(x, out, picked)


def _erase_masks(n: int, height: int, width: int, generator: torch.Generator) -> torch.Tensor:
    """For about a third of the images, a small rectangle (2-5 pixels a side) to erase."""
    size = torch.randint(2, 6, (n, 2), generator=generator)
    top = torch.randint(4, height - 8, (n,), generator=generator)
    left = torch.randint(4, width - 8, (n,), generator=generator)
    rows = torch.arange(height).view(1, height, 1)
    cols = torch.arange(width).view(1, 1, width)
    inside = (
        (rows >= top.view(n, 1, 1))
        & (rows < (top + size[:, 0]).view(n, 1, 1))
        & (cols >= left.view(n, 1, 1))
        & (cols < (left + size[:, 1]).view(n, 1, 1))
    )
    active = torch.rand(n, 1, 1, generator=generator) < 0.35
    return (inside & active).unsqueeze(1)
