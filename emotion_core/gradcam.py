"""Grad-CAM on the last conv layer with captum, sharing one trunk forward pass.

The model is split after its last conv layer's rectified output (see model.cam_layer):
the trunk (all convs, the expensive part) runs once under no_grad; captum's LayerGradCam then runs only the tail (pooling
and head) once per target, so Grad-CAM for two classes costs little over prediction.
"""
from __future__ import annotations

import torch
from captum.attr import LayerGradCam
from torch import nn
from torchvision.models import VGG

from emotion_core.model import cam_layer


class _Tail(nn.Module):
    """Everything after the last conv: its output enters through `conv_output`."""

    def __init__(self, model: VGG, start: int):
        super().__init__()
        self.conv_output = nn.Identity()  # the layer captum attributes to
        self.rest = model.features[start:]
        self.avgpool = model.avgpool
        self.classifier = model.classifier
        for module in self.rest:
            if isinstance(module, nn.ReLU):
                module.inplace = False  # in-place would overwrite the saved conv output

    def forward(self, conv_output: torch.Tensor) -> torch.Tensor:
        x = self.rest(self.conv_output(conv_output))
        return self.classifier(torch.flatten(self.avgpool(x), 1))


class GradCam:
    """Build once per model; call with activations and per-image target classes."""

    def __init__(self, model: VGG):
        cut = list(model.features).index(cam_layer(model)) + 1
        self.trunk = model.features[:cut]
        self.tail = _Tail(model, cut)
        self._cam = LayerGradCam(self.tail, self.tail.conv_output)

    @torch.no_grad()
    def activations(self, images: torch.Tensor) -> torch.Tensor:
        return self.trunk(images)  # (N, C, h, w), e.g. (N, 512, 14, 14) at 224

    @torch.no_grad()
    def logits(self, activations: torch.Tensor) -> torch.Tensor:
        return self.tail(activations)  # (N, classes)

    def maps(self, activations: torch.Tensor, targets: torch.Tensor | int) -> torch.Tensor:
        """Grad-CAM maps (N, h, w), ReLU'd, at the conv resolution, unnormalised."""
        inputs = activations.detach().requires_grad_(True)
        with torch.enable_grad():
            cams = self._cam.attribute(inputs, target=targets, relu_attributions=True)
        return cams.detach()[:, 0]


def normalise_maps(maps: torch.Tensor) -> torch.Tensor:
    """Scale each map to [0, 1] by its own maximum (all-zero maps stay zero)."""
    peak = maps.flatten(1).amax(dim=1).clamp_min(1e-12)
    return maps / peak[:, None, None]
