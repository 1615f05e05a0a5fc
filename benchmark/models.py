"""The torch models of the built-in in-memory tasks; tasks import them inside `build_model`, so that listing and
validating tasks never imports torch."""
from __future__ import annotations

import torch
from torch import nn


class MLP(nn.Module):
    """Backbone (Linear-ReLU stack) + linear head; `forward_features` gives the penultimate embedding.

    >>> MLP(24, 64, 60)(torch.zeros(2, 24)).shape
    torch.Size([2, 60])
    """

    def __init__(self, in_dim: int, hidden: int, num_classes: int, depth: int = 1) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        d = in_dim
        for _ in range(depth):
            layers += [nn.Linear(d, hidden), nn.ReLU()]
            d = hidden
        self.backbone = nn.Sequential(*layers)
        self.head = nn.Linear(d, num_classes)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.backbone(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.backbone(x))


class SmallCNN(nn.Module):
    """Two 3x3 conv blocks on the 8x8 image, global average pool, linear head (digits-lt `model=cnn`).

    >>> SmallCNN(4, 10)(torch.zeros(2, 64)).shape
    torch.Size([2, 10])
    """

    def __init__(self, width: int, num_classes: int) -> None:
        super().__init__()
        self.backbone = nn.Sequential(
            nn.Conv2d(1, width, 3, padding=1), nn.ReLU(),
            nn.Conv2d(width, 2 * width, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(2 * width, 2 * width, 3, padding=1), nn.ReLU(),
            nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.head = nn.Linear(2 * width, num_classes)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.backbone(x.view(-1, 1, 8, 8))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.forward_features(x))


class NormalizedNet(nn.Module):
    """uint8 images in, per-channel normalization, the backbone's pooled features, a linear `.head`.

    Normalizing inside the model means evaluation needs no separate transform; the separate `.head` is what
    classifier re-training methods (cRT, τ-norm) act on.
    """

    def __init__(self, backbone: nn.Module, num_classes: int, mean: tuple[float, ...],
                 std: tuple[float, ...]) -> None:
        super().__init__()
        self.backbone = backbone
        self.head = nn.Linear(backbone.num_features, num_classes)
        self.register_buffer("mean", torch.tensor(mean).view(1, 3, 1, 1) * 255.0)
        self.register_buffer("std", torch.tensor(std).view(1, 3, 1, 1) * 255.0)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.backbone((x.float() - self.mean) / self.std)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.forward_features(x))
