"""Grad-CAM with captum, sharing one trunk forward pass, for every backbone.

The model is split at its Grad-CAM layer (see emotion_core.backbones.cam_split): the trunk
(the expensive part) runs once under no_grad; captum's LayerGradCam then runs only the tail
once per target, so Grad-CAM for two classes costs little over prediction. The tail passes
the CAM-shaped activations (N, C, h, w) through its `cam_output` identity, which is what
captum attributes to (for ViT: the patch tokens of the last block's ln_1, as a grid).
"""
from __future__ import annotations

import torch
from captum.attr import LayerGradCam
from torch import nn

from emotion_core.backbones import cam_split


class GradCam:
    """Build once per model; call with activations and per-image target classes."""

    def __init__(self, model: nn.Module):
        split = cam_split(model)
        self.trunk, self.tail = split.trunk, split.tail
        self._cam = LayerGradCam(self.tail, self.tail.cam_output)

    @torch.no_grad()
    def activations(self, images: torch.Tensor) -> torch.Tensor:
        # CNNs: (N, C, h, w), e.g. (N, 512, 14, 14) for VGG19 at 224; ViT: tokens (N, 1 + h*w, C)
        return self.trunk(images)

    @torch.no_grad()
    def logits_and_embeddings(self, activations: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(N, classes) logits and (N, d) embeddings (the pooled features that enter the head, e.g.
        512-d for VGG19), from one pass through the tail."""
        return self.tail.logits_and_embeddings(activations)

    def cam_shape(self, activations: torch.Tensor) -> tuple[int, int]:
        """(h, w) of the maps these activations give."""
        return self.tail.cam_hw(activations)

    def maps(self, activations: torch.Tensor, targets: torch.Tensor | int) -> torch.Tensor:
        """Grad-CAM maps (N, h, w), ReLU'd, at the CAM layer's resolution, unnormalised."""
        inputs = activations.detach().requires_grad_(True)
        with torch.enable_grad():
            cams = self._cam.attribute(inputs, target=targets, relu_attributions=True)
        return cams.detach()[:, 0]


def normalise_maps(maps: torch.Tensor) -> torch.Tensor:
    """Scale each map to [0, 1] by its own maximum (all-zero maps stay zero)."""
    peak = maps.flatten(1).amax(dim=1).clamp_min(1e-12)
    return maps / peak[:, None, None]
