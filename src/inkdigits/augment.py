"""Augmentation of whole batches as tensors: no per-image Python in the training loop.

Real handwriting differs from MNIST's normalized digits in slant, size, placement, wobble
and pen width. One resampling step applies a random affine map (rotation, scale, shear,
shift) plus a smooth elastic displacement; a max-pool then thickens or thins the strokes of
part of the batch.
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
