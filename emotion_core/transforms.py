"""Image -> tensor transforms. The whole image is resized (not cropped) so that a
Grad-CAM map lines up with the full picture the user sees."""
from __future__ import annotations

from torchvision import transforms as T

from emotion_core.model import IMAGENET_MEAN, IMAGENET_STD


def eval_transform(input_size: int) -> T.Compose:
    return T.Compose([
        T.Resize((input_size, input_size), antialias=True),
        T.ToTensor(),
        T.Normalize(IMAGENET_MEAN, IMAGENET_STD),
    ])


def train_transform(input_size: int) -> T.Compose:
    return T.Compose([
        T.RandomResizedCrop(input_size, scale=(0.6, 1.0), antialias=True),
        T.RandomHorizontalFlip(),
        T.ToTensor(),
        T.Normalize(IMAGENET_MEAN, IMAGENET_STD),
    ])

