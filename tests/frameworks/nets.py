"""Small torch architectures the format tests build by dotted path (``nets:TinyNet``).

pytest's default ``prepend`` import mode puts ``tests/frameworks`` on ``sys.path``, so these
are importable as the top-level module ``nets``.
"""

from __future__ import annotations

import torch
from torch import nn


class TinyNet(nn.Module):
    """VGG-shaped but tiny: a conv block in ``features``, a linear head in ``classifier``."""

    def __init__(self, num_classes: int = 3) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(3, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(), nn.MaxPool2d(2)
        )
        self.classifier = nn.Sequential(nn.Flatten(), nn.Linear(4 * 4 * 4, num_classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x))


class WideNet(TinyNet):
    """Same keys as :class:`TinyNet` with ``classifier.1`` one class wider, plus an extra layer."""

    def __init__(self) -> None:
        super().__init__(num_classes=4)
        self.extra = nn.Linear(2, 2)


class TiedNet(nn.Module):
    """Two attribute names for one weight (tied embeddings): state dict keys share storage."""

    def __init__(self) -> None:
        super().__init__()
        self.embed = nn.Embedding(5, 3)
        self.head = nn.Linear(3, 5, bias=False)
        self.head.weight = self.embed.weight

    def forward(self, idx: torch.Tensor) -> torch.Tensor:
        return self.head(self.embed(idx))


def tiny_net(num_classes: int = 3) -> TinyNet:
    """A factory, like ``torchvision.models.vgg16``."""
    return TinyNet(num_classes=num_classes)
