"""Batched prediction with Grad-CAM for the predicted and the true class, and each image's embedding."""
from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np
import torch
from PIL import Image
from torch import nn

from emotion_core.backbones import num_outputs
from emotion_core.gradcam import GradCam, normalise_maps
from emotion_core.labels import FI_CLASSES, ClassSet
from emotion_core.transforms import eval_transform


@dataclass
class BatchResult:
    """On the predictor's device: a loop over batches keeps these there and reads them
    back once at the end, so the host never waits for the device batch by batch."""
    probabilities: torch.Tensor  # (N, classes) float32
    predicted: torch.Tensor      # (N,) int64
    cams: torch.Tensor | None    # (N, 2, h, w) float16: [predicted class, true class], each max 1; None: not asked
    embeddings: torch.Tensor     # (N, d) float16: the pooled features that enter the head


@dataclass
class LivePrediction:
    """One uploaded image, in the host's memory."""
    probabilities: np.ndarray  # (classes,) float32, in the predictor's class order
    cam: np.ndarray            # (h, w) float32 in [0, 1], for the asked class
    embedding: np.ndarray      # (d,) float32: comparable with a run's embeddings.npy rows


class Predictor:
    """Holds a model in eval mode and the classes of its outputs (FI's eight unless told);
    call with batches of images or tensors."""

    def __init__(self, model: nn.Module, input_size: int, device: str | torch.device = "cpu",
                 classes: ClassSet | None = None):
        self.classes = FI_CLASSES if classes is None else classes
        outputs = num_outputs(model)
        if outputs != len(self.classes):
            raise ValueError(f"the model has {outputs} outputs but {len(self.classes)} classes were given")
        self.device = torch.device(device)
        self.model = model.to(self.device).eval()
        self.input_size = input_size
        self.transform = eval_transform(input_size)
        self.gradcam = GradCam(self.model)

    @classmethod
    def from_checkpoint(cls, path: str | os.PathLike, device: str | torch.device = "cpu") -> "Predictor":
        """The checkpoint's model with the class set it was trained on (the live and inspector
        pages' model)."""
        from emotion_core.model import checkpoint_classes, load_checkpoint

        model, config, payload = load_checkpoint(path)
        return cls(model, config.input_size, device, classes=checkpoint_classes(payload, path))

    def evaluate_batch(self, images: torch.Tensor, labels: torch.Tensor, *, cams: bool = True) -> BatchResult:
        """Probabilities plus Grad-CAM for predicted and true class, one trunk pass. cams=False: no
        Grad-CAM (its two backward passes through the tail), for callers that keep only probabilities.

        Nothing here reads the device: copies in are non_blocking (a blocking copy waits
        for the device's queue) and the results stay on the device."""
        images = images.to(self.device, non_blocking=True)
        labels = labels.to(self.device, non_blocking=True)
        activations = self.gradcam.activations(images)
        logits, embeddings = self.gradcam.logits_and_embeddings(activations)
        probabilities = torch.softmax(logits.float(), dim=1)
        predicted = probabilities.argmax(dim=1)
        if not cams:
            return BatchResult(probabilities, predicted, None, embeddings.to(torch.float16))
        cam_pred = normalise_maps(self.gradcam.maps(activations, predicted))
        cam_true = normalise_maps(self.gradcam.maps(activations, labels))
        cams = torch.stack([cam_pred, cam_true], dim=1)
        return BatchResult(probabilities, predicted, cams.to(torch.float16), embeddings.to(torch.float16))

    def cam_shape(self) -> tuple[int, int]:
        """(h, w) of the Grad-CAM maps at this input size."""
        zeros = torch.zeros(1, 3, self.input_size, self.input_size, device=self.device)
        return self.gradcam.cam_shape(self.gradcam.activations(zeros))

    def embedding_size(self) -> int:
        """d of the embeddings (N, d) at this input size."""
        zeros = torch.zeros(1, 3, self.input_size, self.input_size, device=self.device)
        return int(self.gradcam.logits_and_embeddings(self.gradcam.activations(zeros))[1].shape[1])

    def predict_live(self, image: Image.Image, target: int | str | None) -> LivePrediction:
        """Probabilities, a [0, 1] Grad-CAM map for `target` (a class index or id of self.classes,
        None for the top class) and the image's embedding, from one trunk pass."""
        batch = self.transform(image.convert("RGB")).unsqueeze(0).to(self.device)
        activations = self.gradcam.activations(batch)
        logits, embeddings = self.gradcam.logits_and_embeddings(activations)
        probabilities = torch.softmax(logits.float(), dim=1)[0]
        if isinstance(target, str):
            target = self.classes.index[self.classes.parse(target)]
        target = int(probabilities.argmax()) if target is None else int(target)
        cam = normalise_maps(self.gradcam.maps(activations, target))[0]
        # through float16 like the stored embeddings, so that an evaluated image finds itself at similarity 1
        embedding = embeddings[0].to(torch.float16).float()
        return LivePrediction(probabilities.cpu().numpy(), cam.cpu().float().numpy(), embedding.cpu().numpy())

    def predict_with_cam(self, image: Image.Image, target: int | str | None) -> tuple[np.ndarray, np.ndarray]:
        """Probabilities (in self.classes' order) and a [0, 1] Grad-CAM map for `target` (see predict_live)."""
        live = self.predict_live(image, target)
        return live.probabilities, live.cam
