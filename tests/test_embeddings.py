"""Embeddings at evaluation: the pooled features that enter the head, from the same pass as prediction and
Grad-CAM, written to embeddings.npy (row i for cam_index i), merged in order across torchrun shards."""
import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn

from emotion_core.dataset import read_dataset
from emotion_core.evaluation import evaluate_run
from emotion_core.images import load_image
from emotion_core.backbones import last_conv_layer
from emotion_core.model import ModelConfig, build_model, save_checkpoint
from emotion_core.predict import Predictor
from emotion_core.runs import EMBEDDINGS_FILE, load_embeddings, load_predictions
from emotion_core.transforms import eval_transform
from tests.conftest import write_demo_dataset

SIZE = 32


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    return write_demo_dataset(tmp_path_factory.mktemp("data"), 3, size=40, seed=0, split=(0.5, 0.25, 0.25))


def make_run(folder, seed: int = 0):
    config = ModelConfig(arch="vgg_small", input_size=SIZE)
    torch.manual_seed(seed)
    model = build_model(config)
    save_checkpoint(folder / "checkpoint.pt", model, config)
    return model.eval()


def grid_average(model: nn.Module, flattened: torch.Tensor) -> torch.Tensor:
    """A VGG head's input (N, C*h*w: the grid after the last max-pool and avgpool, flattened) averaged over
    the grid: (N, C)."""
    channels = last_conv_layer(model).out_channels
    return flattened.reshape(len(flattened), channels, -1).mean(dim=2)


def features_of_a_separate_pass(model: nn.Module, paths: list[str]) -> np.ndarray:
    """The whole torchvision model run as it is, what its head reads averaged over the grid."""
    seen = []
    hook = model.classifier.register_forward_pre_hook(lambda module, args: seen.append(grid_average(model, args[0])))
    images = torch.stack([eval_transform(SIZE)(load_image(p)) for p in paths])
    with torch.no_grad():
        model(images)
    hook.remove()
    return seen[0].numpy()


def test_stored_embeddings_equal_the_features_of_a_separate_forward_pass(tmp_path, dataset):
    run = tmp_path / "run"
    model = make_run(run)
    (run / EMBEDDINGS_FILE).write_bytes(b"stale: from an evaluation of other images")
    evaluate_run(run, dataset, splits=("train", "dev", "test"), batch_size=5, attributes=False)
    predictions, stored = load_predictions(run), load_embeddings(run)
    assert stored.dtype == np.float16 and stored.shape == (len(predictions), 96)  # vgg_small's last conv: 96
    manifest, _ = read_dataset(dataset)
    assert len(predictions) == len(manifest) and set(predictions["split"]) == {"train", "dev", "test"}
    by_row = predictions.sort_values("cam_index")
    expected = features_of_a_separate_pass(model, by_row["path"].tolist())
    np.testing.assert_allclose(stored.astype(np.float32), expected, rtol=2e-3, atol=1e-4)
    assert np.abs(expected).max() > 0.01  # features, not zeros


def test_shards_merge_in_the_manifests_order_with_an_empty_shard(tmp_path, dataset):
    """One 'process' per dev image plus one with none (embeddings (0, d)), gathered on rank 0: the same
    files as one process writes."""
    single, sharded = tmp_path / "single", tmp_path / "sharded"
    make_run(single), make_run(sharded)
    evaluate_run(single, dataset, splits=("dev",), batch_size=4, attributes=False)
    manifest, _ = read_dataset(dataset)
    world = int((manifest["split"] == "dev").sum()) + 1
    parts = {}
    for rank in range(world - 1, -1, -1):  # the other ranks first: rank 0 gathers
        def gather(part, rank=rank):
            parts[rank] = part
            return [parts[r] for r in range(world)] if rank == 0 else None
        evaluate_run(sharded, dataset, splits=("dev",), batch_size=4, attributes=False, shard=(rank, world),
                     gather=gather)
    assert parts[world - 1][3].shape == (0, 96)  # the empty shard
    pd.testing.assert_frame_equal(load_predictions(sharded), load_predictions(single))
    np.testing.assert_allclose(load_embeddings(sharded).astype(np.float32),
                               load_embeddings(single).astype(np.float32), rtol=1e-3, atol=1e-4)


def test_an_uploaded_image_finds_its_stored_embedding(tmp_path, dataset):
    run = tmp_path / "run"
    make_run(run)
    evaluate_run(run, dataset, splits=("test",), batch_size=8, attributes=False)
    predictor = Predictor.from_checkpoint(run / "checkpoint.pt")
    row = load_predictions(run).iloc[1]
    live = predictor.predict_live(load_image(row["path"]), None)
    stored = load_embeddings(run)[int(row["cam_index"])].astype(np.float32)
    np.testing.assert_allclose(live.embedding, stored, rtol=2e-3, atol=1e-4)
    probabilities, cam = predictor.predict_with_cam(load_image(row["path"]), None)
    np.testing.assert_allclose(probabilities, live.probabilities)
    assert cam.shape == live.cam.shape


ARCH_SIZES = {"resnet50": 64, "convnext_tiny": 64, "vit_b_16": 48, "vgg16": 64}


def head_input_hook(arch: str, model: nn.Module, seen: list):
    """Where each torchvision model's head reads its pooled features, in the whole model's own forward."""
    if arch == "resnet50":
        return model.fc.register_forward_pre_hook(lambda module, args: seen.append(args[0]))
    if arch == "convnext_tiny":  # after the classifier's LayerNorm: what the new head's weights read
        return model.classifier[-1].register_forward_pre_hook(lambda module, args: seen.append(args[0]))
    if arch == "vgg16":  # the grid after the last max-pool, averaged (the head reads it whole)
        return model.classifier.register_forward_pre_hook(
            lambda module, args: seen.append(grid_average(model, args[0])))
    return model.heads.register_forward_pre_hook(lambda module, args: seen.append(args[0]))  # ViT's class token


@pytest.mark.parametrize("head", ["linear", "paper"])
@pytest.mark.parametrize("arch", ARCH_SIZES)
def test_every_backbone_embeds_what_its_head_reads(arch, head):
    torch.manual_seed(0)
    size = ARCH_SIZES[arch]
    fc = "8" if head == "linear" else "16x8"
    model = build_model(ModelConfig(arch=arch, head=head, fc=fc, input_size=size, pretrained=False)).eval()
    images = torch.randn(2, 3, size, size)
    result = Predictor(model, size).evaluate_batch(images, torch.tensor([0, 3]))
    seen = []
    hook = head_input_hook(arch, model, seen)
    with torch.no_grad():
        model(images)
    hook.remove()
    assert result.embeddings.shape == seen[0].shape and result.embeddings.dtype == torch.float16
    torch.testing.assert_close(result.embeddings.float(), seen[0], rtol=2e-3, atol=2e-3)


def test_the_dashboard_reads_the_embeddings_file_evaluation_writes():
    from emotion_core import evaluation

    assert evaluation.EMBEDDINGS_FILE == EMBEDDINGS_FILE
