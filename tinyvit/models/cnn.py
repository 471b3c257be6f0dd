"""Convolutional baselines: a small VGG-style CNN and ResNet-18 for small images."""
from __future__ import annotations

import torch
import torch.nn as nn
import torchvision
from huggingface_hub import PyTorchModelHubMixin

HUB_KW = dict(library_name="tinyvit-lab", tags=["image-classification", "cnn", "tinyvit-lab"])


def _conv_bn(cin: int, cout: int) -> list[nn.Module]:
    return [nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True)]


class SmallCNN(nn.Module, PyTorchModelHubMixin, **HUB_KW):
    """VGG-style: stages of two 3×3 conv-BN-ReLU layers, each stage halving the resolution.

    Widths (64, 128, 256) give ~1.15M parameters, about TinyViT's 1.2M on CIFAR-10.
    """

    def __init__(self, num_classes: int = 10, img_size: int = 32, in_chans: int = 3,
                 widths: tuple[int, ...] | list[int] = (64, 128, 256), dropout: float = 0.1) -> None:
        super().__init__()
        if not widths or any(w <= 0 for w in widths):
            raise ValueError("widths must be a non-empty list of positive channel counts")
        if img_size < 2 ** (len(widths) - 1):
            raise ValueError(f"img_size {img_size} is too small for {len(widths)} stages")
        layers: list[nn.Module] = []
        cin = in_chans
        for i, w in enumerate(widths):
            layers += _conv_bn(cin, w) + _conv_bn(w, w)
            # No pooling after the last stage: CAMs get the finest last feature map.
            if i < len(widths) - 1:
                layers.append(nn.MaxPool2d(2))
            cin = w
        self.features = nn.Sequential(*layers)
        self.head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Dropout(dropout),
                                  nn.Linear(cin, num_classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


class ResNet18Small(nn.Module, PyTorchModelHubMixin, **HUB_KW):
    """torchvision's ResNet-18 with a 3×3 stride-1 stem and no max-pool, for 32-px images."""

    def __init__(self, num_classes: int = 10, img_size: int = 32, in_chans: int = 3) -> None:
        super().__init__()
        net = torchvision.models.resnet18(weights=None, num_classes=num_classes)
        net.conv1 = nn.Conv2d(in_chans, 64, kernel_size=3, stride=1, padding=1, bias=False)
        net.maxpool = nn.Identity()
        self.net = net

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)
