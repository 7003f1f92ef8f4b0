"""Network architectures, registered by name (``inkdigits train --model NAME``).

Every model takes ``(N, 1, 28, 28)`` float32 images in [0, 1], white ink on black, and
returns logits. The input normalization is the model's first layer, so training, ONNX export
and prediction apply exactly the same arithmetic, and the checkpoint records which one.

Adding an architecture is one function decorated with ``@register``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

NORMALIZATIONS = ("scale01", "keras")


class InputNorm(nn.Module):
    """``scale01``: pixels as they come, in [0, 1].

    ``keras``: what the classic tutorial did with ``keras.utils.normalize(x, axis=1)`` on an
    ``(N, 28, 28)`` array: the L2 norm is taken along axis 1, i.e. down each 28-pixel column
    of the image, and every pixel is divided by its column's norm (all-zero columns stay 0).
    It is scale-invariant, so it gives the same result on [0, 255] and on [0, 1] pixels.
    """

    def __init__(self, mode: str = "scale01") -> None:
        super().__init__()
        if mode not in NORMALIZATIONS:
            raise ValueError(f"unknown normalization {mode!r}; choose from {NORMALIZATIONS}")
        self.mode = mode

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.mode == "keras":
            norm = torch.linalg.vector_norm(x, dim=2, keepdim=True)
            return x / torch.where(norm == 0, torch.ones_like(norm), norm)
        return x

    def extra_repr(self) -> str:
        return f"mode={self.mode!r}"


@dataclass(frozen=True)
class Recipe:
    """Training defaults for one architecture; the CLI's flags override some of them.

    The values start from common practice for small CNNs; recipes (architecture, epochs,
    EMA) were compared on the validation split (the last 5,000 training images), never on
    the test set.
    """

    epochs: int
    batch_size: int
    lr: float
    optimizer: str = "adam"  # "adam" or "adamw"
    weight_decay: float = 0.0
    schedule: str = "constant"  # "constant" or "onecycle"
    label_smoothing: float = 0.0
    augment: bool = False
    elastic: float = 0.0  # strength of the elastic distortion, in pixels (0: none)
    thickness: float = 0.0  # share of each batch whose strokes are thickened or thinned
    ema: float = 0.0  # decay of the weights' exponential moving average (0: no EMA)
    fast_cpu: bool = False  # channels_last and bf16 autocast where the CPU has bf16 units
    # Reading people's images (``--handwriting``): shares of each batch replaced by
    # photographed-and-preprocessed training digits and by non-digits (an 11th class), and
    # photo degradations (blur, noise, contrast, erasure) on part of the batch.
    realistic: float = 0.0
    negatives: float = 0.0
    photo: bool = False
    # Share of the training 1s given the flag and of the 7s given the bar across the stem
    # that much of Europe writes (``synth.european_digits``); MNIST's writers hardly did.
    european: float = 0.0


@dataclass(frozen=True)
class ModelSpec:
    name: str
    build: Callable[..., nn.Module]
    recipe: Recipe
    summary: str
    options: dict[str, Any] = field(default_factory=dict)


MODELS: dict[str, ModelSpec] = {}


def register(name: str, recipe: Recipe, summary: str) -> Callable[[Callable[..., nn.Module]], Callable[..., nn.Module]]:
    def decorate(build: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
        MODELS[name] = ModelSpec(name, build, recipe, summary)
        return build

    return decorate


# Output classes: the ten digits, and for models trained with non-digits an eleventh,
# "not a digit", which lets the recognizer decline letters, scribbles and shapes.
DIGITS = 10
NOT_A_DIGIT = 10


def build_model(name: str, normalization: str = "scale01", classes: int = DIGITS) -> nn.Module:
    if name not in MODELS:
        raise ValueError(f"unknown model {name!r}; choose from {', '.join(MODELS)}")
    if classes not in (DIGITS, DIGITS + 1):
        raise ValueError(f"a digit model has 10 or 11 outputs, not {classes}")
    return MODELS[name].build(normalization=normalization, classes=classes)


@register(
    "mlp",
    Recipe(epochs=3, batch_size=32, lr=1e-3),
    "the classic tutorial MLP: Flatten, Dense 128 ReLU, Dense 128 ReLU, Dense 10",
)
def mlp(normalization: str = "scale01", classes: int = DIGITS) -> nn.Module:
    """Exactly the Keras tutorial's network; softmax lives in the loss and in the export."""
    return nn.Sequential(
        InputNorm(normalization),
        nn.Flatten(),
        nn.Linear(28 * 28, 128),
        nn.ReLU(),
        nn.Linear(128, 128),
        nn.ReLU(),
        nn.Linear(128, classes),
    )


def _conv_block(cin: int, cout: int, kernel: int = 3) -> list[nn.Module]:
    return [nn.Conv2d(cin, cout, kernel, padding=kernel // 2, bias=False), nn.BatchNorm2d(cout), nn.ReLU()]


@register(
    "cnn",
    Recipe(
        epochs=8,
        batch_size=128,
        lr=3e-3,
        optimizer="adamw",
        weight_decay=5e-4,
        schedule="onecycle",
        label_smoothing=0.1,
        augment=True,
        elastic=1.5,
        thickness=0.3,
        fast_cpu=True,
    ),
    "compact CNN: 3 conv+BN stages (32-64-128) with pooling, dense 128, about 0.3 M parameters",
)
def cnn(normalization: str = "scale01", classes: int = DIGITS) -> nn.Module:
    """Compact and fast on a CPU: about 8 M multiply-adds per image.

    The first 5x5 convolution sees a whole stroke width at full resolution; each later stage
    works on a quarter of the pixels, which is where most of the cheapness comes from.
    BatchNorm lets OneCycle's high learning rate train it in a few epochs.
    """
    return nn.Sequential(
        InputNorm(normalization),
        *_conv_block(1, 32, 5),
        nn.MaxPool2d(2),
        *_conv_block(32, 64),
        nn.MaxPool2d(2),
        *_conv_block(64, 128),
        nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Linear(128 * 3 * 3, 128),
        nn.ReLU(),
        nn.Dropout(0.3),
        nn.Linear(128, classes),
    )


class Residual(nn.Module):
    """x + f(x): two 3x3 conv+BN layers with an identity shortcut."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.body = nn.Sequential(
            *_conv_block(channels, channels),
            nn.Conv2d(channels, channels, 3, padding=1, bias=False),
            nn.BatchNorm2d(channels),
        )
        self.act = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(x + self.body(x))


@register(
    "resnet",
    Recipe(
        epochs=28,
        batch_size=128,
        lr=4e-3,
        optimizer="adamw",
        weight_decay=5e-4,
        schedule="onecycle",
        label_smoothing=0.1,
        augment=True,
        elastic=2.0,
        thickness=0.3,
        ema=0.999,
        fast_cpu=True,
    ),
    "residual CNN: 32-48-96 channels, a residual block at 14x14 and at 7x7, BatchNorm, about 0.5 M parameters",
)
def resnet(normalization: str = "scale01", classes: int = DIGITS) -> nn.Module:
    """The strongest model: the cnn's three stages plus a residual block at 14x14 and at 7x7.

    Why residual blocks: a second pair of 3x3 convolutions at each resolution widens the
    receptive field enough to see a whole digit's topology (the loop of a 6 against the
    tail of a 4), which is where the cnn's remaining mistakes are, and the identity shortcut
    keeps the deeper network as quick to train as the shallow one. Widths of 48 and 96
    rather than 64 and 128 hold it to about 2.7x the cnn's compute, so it still trains
    enough epochs on two CPU cores.
    """
    return nn.Sequential(
        InputNorm(normalization),
        *_conv_block(1, 32, 5),
        nn.MaxPool2d(2),
        *_conv_block(32, 48),
        Residual(48),
        nn.MaxPool2d(2),
        *_conv_block(48, 96),
        Residual(96),
        nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Dropout(0.2),
        nn.Linear(96 * 3 * 3, classes),
    )


# Line reader sizes: convolution widths, LSTM units per direction, LSTM layers. "small" stops
# improving at about 83% of validation rows read exactly, trained for 10 epochs or 14.
# "large" (three times the work) read 83.4% after 7 epochs, its training loss far below the
# small one's: with 60,000 rows, more capacity learns the rows, not the writing. Two small
# readers trained apart and combined (``lines.agreed_reading``) do better.
READER_SIZES: dict[str, tuple[tuple[int, int, int, int], int, int]] = {
    "small": ((16, 32, 48, 64), 96, 1),
    "large": ((24, 48, 72, 96), 128, 2),
}


class LineReader(nn.Module):
    """Reads a whole row of digits and separators: CNN features per column, a bidirectional
    LSTM along the row, and per-step class scores for CTC (``inkdigits.lines``).

    Input (N, 1, 32, W), white ink on black in [0, 1]; output (N, W / 2, classes) logits.
    The convolutions fold the 32-pixel height into one feature column every two pixels (a
    digit spans about eight steps, so even a tight "11" has room for the blank between its
    ones); the LSTM gives each step the context of its neighbours, which is what tells where
    one touching digit ends and the next begins.
    """

    def __init__(self, classes: int, size: str = "small") -> None:
        super().__init__()
        (c1, c2, c3, c4), hidden, layers = READER_SIZES[size]
        self.features = nn.Sequential(
            *_conv_block(1, c1),
            nn.MaxPool2d(2),  # 16 x W/2
            *_conv_block(c1, c2),
            nn.MaxPool2d((2, 1)),  # 8 x W/2
            *_conv_block(c2, c3),
            nn.MaxPool2d((2, 1)),  # 4 x W/2
            *_conv_block(c3, c4),
            nn.MaxPool2d((4, 1)),  # 1 x W/2
        )
        self.rnn = nn.LSTM(c4, hidden, num_layers=layers, bidirectional=True, batch_first=True)
        self.head = nn.Linear(2 * hidden, classes)
        # Training may run the convolutions under bf16 autocast (a third faster on CPUs with
        # bf16 units); the LSTM and evaluation stay in float32.
        self.bf16_features = False

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.bf16_features and self.training:
            with torch.autocast(x.device.type, dtype=torch.bfloat16):
                features = self.features(x)
            features = features.float()
        else:
            features = self.features(x)
        columns = features.squeeze(2).transpose(1, 2)  # N, T, channels
        context, _ = self.rnn(columns)
        return self.head(context)
