import numpy as np
import torch
from captum.attr import LayerGradCam
from torch import nn
from torchvision.models import VGG

from emotion_core.gradcam import GradCam, normalise_maps
from emotion_core.model import ModelConfig, build_model, cam_layer
from emotion_core.predict import Predictor


def tiny_vgg() -> VGG:
    """features = one 1x1 conv (1 -> 2 channels); head = global mean + Linear(2, 8)."""
    model = VGG(nn.Sequential(nn.Conv2d(1, 2, kernel_size=1)), num_classes=8, init_weights=False)
    model.avgpool = nn.AdaptiveAvgPool2d((1, 1))
    model.classifier = nn.Sequential(nn.Linear(2, 8))
    with torch.no_grad():
        model.features[0].weight.copy_(torch.tensor([[[[1.0]]], [[[-1.0]]]]))
        model.features[0].bias.zero_()
        model.classifier[0].weight.copy_(torch.arange(16, dtype=torch.float32).view(8, 2) - 6)
        model.classifier[0].bias.zero_()
    return model.eval()


def test_gradcam_matches_hand_computation():
    x = torch.tensor([[[[1.0, 2.0], [-1.0, 0.5]]]])  # (1, 1, 2, 2)
    model, target = tiny_vgg(), 5
    # By hand: A = conv(x) = [x, -x]; logit_c = sum_k W[c,k] * mean(A_k) + b
    # => dlogit/dA_k = W[c,k] / 4 everywhere; alpha_k = W[c,k] / 4; cam = relu(sum_k alpha_k A_k).
    a = np.stack([x[0, 0].numpy(), -x[0, 0].numpy()])
    w = model.classifier[0].weight[target].detach().numpy()
    expected = np.maximum((w[:, None, None] / 4 * a).sum(0), 0)
    cam = GradCam(model)
    got = cam.maps(cam.activations(x), target)[0].numpy()
    np.testing.assert_allclose(got, expected, rtol=1e-6)


def test_shared_pass_equals_captum_on_the_whole_model():
    torch.manual_seed(0)
    model = build_model(ModelConfig(arch="vgg_small", input_size=64)).eval()
    images, labels = torch.randn(3, 3, 64, 64), torch.tensor([1, 4, 7])
    result = Predictor(model, 64).evaluate_batch(images, labels)
    reference = LayerGradCam(model, cam_layer(model))
    for column, targets in ((0, torch.as_tensor(result.predicted)), (1, labels)):
        maps = reference.attribute(images, target=targets, relu_attributions=True).detach()[:, 0]
        np.testing.assert_allclose(result.cams[:, column], normalise_maps(maps).numpy(), atol=2e-3)
    with torch.no_grad():
        np.testing.assert_allclose(result.probabilities, torch.softmax(model(images), 1).numpy(), atol=1e-5)


def test_cam_layer_is_the_rectified_last_conv():
    small = build_model(ModelConfig(arch="vgg_small", input_size=64))
    assert list(small.features).index(cam_layer(small)) == 14  # conv 12 -> batch norm 13 -> ReLU 14
    vgg19 = build_model(ModelConfig(pretrained=False, input_size=64))
    assert list(vgg19.features).index(cam_layer(vgg19)) == 35  # conv5_4 (34) -> ReLU (35)
    assert isinstance(cam_layer(tiny_vgg()), nn.Conv2d)  # no ReLU after it: the conv itself


def test_most_demo_maps_of_the_predicted_class_are_not_empty(demo_workspace):
    # The model's evidence for what it predicts should show. The true class's map of a wrong
    # image is often empty, rightly: the demo's planted images carry no evidence of it.
    cams = np.load(demo_workspace / "runs" / "demo" / "cams.npy").astype(np.float32)
    empty = cams.reshape(len(cams), 2, -1).max(axis=2) == 0  # (N, [pred, true])
    assert empty[:, 0].mean() < 0.2
