"""Several GPUs: sums stay on the training device, one GPU per rank, CPU objects still gather.

The CUDA tests are skipped without a GPU; the CPU tests stand in for them with the "meta"
device, whose tensors hold no data: any read-back to the host (.item(), .cpu(), float())
raises there, as it would make the CPU wait for the GPU on a real one.
"""
from pathlib import Path

import pandas as pd
import pytest
import torch
from torch import nn

import training.train as train_module
from emotion_core.labels import EMOTIONS
from emotion_core.model import ModelConfig, build_model, read_checkpoint
from training.distributed import DistInfo, dist_info_from_env, gather_to_main, pick_device, process_group_backend
from training.schedule import Stage
from training.train import TargetLoss, TrainConfig, _dev_epoch, _dev_sums, _optimizer_for, _train_epoch, _train_steps
from tests.conftest import write_demo_dataset

needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")


def _batches(count: int, size: int = 4) -> list[tuple]:
    """What the DataLoader yields: CPU (images, labels, row index, loaded ok); one image unreadable."""
    generator = torch.Generator().manual_seed(0)
    return [(torch.rand(size, 3, 32, 32, generator=generator), torch.arange(size) % len(EMOTIONS),
             torch.arange(size), torch.tensor([True] * (size - 1) + [False])) for _ in range(count)]


def _small_model() -> nn.Module:
    return build_model(ModelConfig(arch="vgg_small", input_size=32, pretrained=False))


def _config(device: str) -> TrainConfig:
    return TrainConfig(dataset="", out="", arch="vgg_small", input_size=32, pretrained=False, device=device)


def test_epoch_sums_stay_on_the_model_device_and_are_reduced_there(monkeypatch):
    device = torch.device("meta")
    model = _small_model().to(device)
    reduced: list[torch.Tensor] = []

    def all_reduce_on_device(tensor, info):  # what NCCL demands: the tensor on the rank's GPU
        assert tensor.device == device, f"all_reduce got a tensor on {tensor.device}, the model is on {device}"
        reduced.append(tensor)
        return torch.arange(1, len(tensor) + 1, dtype=torch.float64)  # stands for the sum over ranks

    monkeypatch.setattr(train_module, "all_reduce_sum", all_reduce_on_device)
    info = DistInfo(rank=0, world_size=2)
    loss_fn = TargetLoss(None)
    optimizer = _optimizer_for(model, Stage("all", ["all"], 1e-3, 1))
    loss, accuracy, seen = _train_epoch(model, _batches(3), optimizer, loss_fn, _config("meta"), device, info, "t")
    assert (loss, accuracy, seen) == (1 / 3, 2 / 3, 3)  # read from the reduced sums: (loss, correct, images)
    dev = _dev_epoch(model, _batches(3), loss_fn, _config("meta"), device, info)
    n = len(EMOTIONS)  # reduced dev sums: loss 1, images 2, correct per class 3.., support per class 3+n..
    assert dev["loss"] == 0.5 and dev["recall"][0] == 3 / (3 + n)
    assert len(reduced) == 2


def test_dev_sums_weight_unreadable_images_out():
    """Unreadable images are weighted 0 (not dropped by a mask, which reads the count back)."""
    class FixedLogits(nn.Module):  # predicts the class in the first pixel of each image
        def forward(self, images):
            return nn.functional.one_hot(images[:, 0, 0, 0].long(), len(EMOTIONS)).float() * 10

    images = torch.zeros(4, 3, 2, 2)
    images[:, 0, 0, 0] = torch.tensor([1.0, 2.0, 0.0, 5.0])  # predictions 1, 2, 0, 5
    labels = torch.tensor([1, 2, 3, 3])                        # right, right, wrong, unreadable
    ok = torch.tensor([True, True, True, False])
    sums = _dev_sums(FixedLogits(), [(images, labels, torch.arange(4), ok)], TargetLoss(None),
                     _config("cpu"), torch.device("cpu"))
    n = len(EMOTIONS)
    assert sums[1] == 3
    assert sums[2:2 + n].tolist() == [0, 1, 1, 0, 0, 0, 0, 0]
    assert sums[2 + n:].tolist() == [0, 1, 1, 1, 0, 0, 0, 0]
    expected_loss = nn.functional.cross_entropy(FixedLogits()(images[:3]), labels[:3], reduction="sum")
    assert float(sums[0]) == pytest.approx(float(expected_loss))


def test_each_rank_takes_the_gpu_of_its_local_rank():
    rank5 = dist_info_from_env({"WORLD_SIZE": "8", "RANK": "5", "LOCAL_RANK": "1"})
    assert rank5 == DistInfo(rank=5, world_size=8, local_rank=1)
    assert pick_device("", rank5, cuda_devices=4) == torch.device("cuda", 1)
    assert pick_device("cuda", rank5, cuda_devices=4) == torch.device("cuda", 1)
    assert pick_device("cuda:1", rank5, cuda_devices=4) == torch.device("cuda", 1)
    assert pick_device("", rank5, cuda_devices=0) == torch.device("cpu")
    assert pick_device("cpu", rank5, cuda_devices=4) == torch.device("cpu")
    single = dist_info_from_env({})
    assert single == DistInfo() and pick_device("", single, cuda_devices=4) == torch.device("cuda")
    assert pick_device("cuda:2", single, cuda_devices=4) == torch.device("cuda", 2)
    with pytest.raises(ValueError, match="names one GPU, but torchrun starts 8 processes"):
        pick_device("cuda:0", rank5, cuda_devices=4)
    # a launcher that shows each process only its own GPU (e.g. SLURM): that one, for every rank
    assert pick_device("cuda", rank5, cuda_devices=1) == torch.device("cuda", 0)
    rank3 = dist_info_from_env({"WORLD_SIZE": "4", "RANK": "3", "LOCAL_RANK": "3"})
    with pytest.raises(ValueError, match="LOCAL_RANK 3 has no GPU: this machine has 2"):
        pick_device("cuda", rank3, cuda_devices=2)


def test_cuda_groups_keep_a_cpu_backend_for_gathered_objects():
    assert process_group_backend("cuda") == "cpu:gloo,cuda:nccl"
    assert process_group_backend("cpu") == "gloo"


# ---- on a real GPU -----------------------------------------------------------------------

class _OneRankGroup(DistInfo):
    """A real process group of one rank, with every collective run (as under torchrun)."""

    @property
    def enabled(self) -> bool:
        return True


@pytest.fixture
def one_rank_cuda_group(tmp_path):
    import torch.distributed as dist

    torch.cuda.set_device(0)
    dist.init_process_group(process_group_backend("cuda"), store=dist.FileStore(str(tmp_path / "store"), 1),
                            rank=0, world_size=1)
    yield _OneRankGroup()
    dist.destroy_process_group()


@needs_cuda
def test_nccl_reduces_the_epoch_sums_and_gathers_cpu_objects(one_rank_cuda_group):
    device, info = torch.device("cuda", 0), one_rank_cuda_group
    model = _small_model().to(device)
    loss_fn = TargetLoss(None)
    optimizer = _optimizer_for(model, Stage("all", ["all"], 1e-3, 1))
    _, _, seen = _train_epoch(model, _batches(3), optimizer, loss_fn, _config("cuda"), device, info, "t")
    assert seen == 9
    dev = _dev_epoch(model, _batches(3), loss_fn, _config("cuda"), device, info)
    assert 0 <= dev["acc"] <= 1 and len(dev["recall"]) == len(EMOTIONS)
    table = pd.DataFrame({"image_id": ["a", "b"]})
    parts = gather_to_main(info)((table, "cams"))
    assert len(parts) == 1 and parts[0][0].equals(table)


@needs_cuda
def test_epoch_steps_never_wait_for_the_gpu():
    device = torch.device("cuda", 0)
    model = _small_model().to(device)
    loss_fn = TargetLoss(None)
    optimizer = _optimizer_for(model, Stage("all", ["all"], 1e-3, 1))
    batches = [tuple(t.pin_memory() for t in batch) for batch in _batches(4)]  # as the loader gives on CUDA
    # Warm-up: first calls may pick cuDNN algorithms and allocate, which may synchronize.
    _train_steps(model, batches[:1], optimizer, loss_fn, _config("cuda"), device, DistInfo(), "warm-up")
    _dev_sums(model, batches[:1], loss_fn, _config("cuda"), device)
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")  # any synchronizing call raises
    try:
        _train_steps(model, batches, optimizer, loss_fn, _config("cuda"), device, DistInfo(), "t")
        _dev_sums(model, batches, loss_fn, _config("cuda"), device)
    finally:
        torch.cuda.set_sync_debug_mode("default")


@needs_cuda
def test_training_on_a_gpu_end_to_end(tmp_path):
    from training.train import train

    write_demo_dataset(tmp_path / "data", 6, size=32, seed=1, split=(0.66, 0.34, 0.0))
    config = TrainConfig(dataset=str(tmp_path / "data"), out=str(tmp_path / "run"), arch="vgg_small", input_size=32,
                         pretrained=False, batch_size=8, workers=0, device="cuda", eval_split="dev")
    result = train(config, [Stage("all", ["all"], 1e-3, 2)])
    assert result["epochs"] == 2 and set(result["metrics"]) == {"dev"}
    assert read_checkpoint(Path(config.out) / "last.pt")["cuda_rng"] is not None
