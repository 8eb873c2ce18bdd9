"""Evaluation computes the image attributes in its loader's workers, from the images it
decodes for the model, and reads the device once per evaluation, not once per batch."""
import os
from pathlib import Path

import matplotlib.cbook
import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image
from torch.utils._python_dispatch import TorchDispatchMode

import emotion_core.dataset as dataset_module
from emotion_core.attributes import compute_attributes, compute_for_run, image_attributes, read_attributes
from emotion_core.dataset import write_dataset
from emotion_core.evaluation import evaluate_frame, evaluate_run
from emotion_core.images import load_image
from emotion_core.labels import EMOTIONS
from emotion_core.model import ModelConfig, build_model, save_checkpoint
from emotion_core.predict import Predictor
from tests.conftest import save_noise_image

SIZE = 32


def _images(folder: Path) -> list[str]:
    """Photo-like noise of several sizes, a portrait with a face, a monochrome and a
    warm image, and one file that is not an image (the loader skips it)."""
    paths = [str(save_noise_image(folder / f"noise{k}.jpg", size=(60 + 17 * k, 45 + 9 * k), seed=k))
             for k in range(6)]
    with matplotlib.cbook.get_sample_data("grace_hopper.jpg") as handle:
        Image.open(handle).convert("RGB").save(folder / "portrait.jpg")
    Image.new("RGB", (70, 50), (120, 120, 120)).save(folder / "gray.png")
    Image.new("RGB", (50, 70), (220, 40, 20)).save(folder / "red.png")
    (folder / "broken.jpg").write_bytes(b"not a jpeg")
    return paths + [str(folder / name) for name in ("portrait.jpg", "gray.png", "broken.jpg", "red.png")]


def _rows(folder: Path) -> pd.DataFrame:
    paths = _images(folder)
    labels = [EMOTIONS[k % len(EMOTIONS)] for k in range(len(paths))]
    return pd.DataFrame({"image_id": [f"img{k}" for k in range(len(paths))], "path": paths, "split": "test",
                         "label": labels, "label_idx": [EMOTIONS.index(x) for x in labels],
                         "agree": pd.array([4] * len(paths), dtype="Int64"),
                         "disagree": pd.array([1] * len(paths), dtype="Int64")})


def _predictor(device: str = "cpu") -> Predictor:
    torch.manual_seed(0)
    return Predictor(build_model(ModelConfig(arch="vgg_small", input_size=SIZE)), SIZE, device)


def _record_calls(monkeypatch, log: Path, name: str) -> None:
    """Wrap emotion_core.dataset.<name> to append the calling process id and path to `log`
    (a file, so forked workers' calls are seen too)."""
    original = getattr(dataset_module, name)

    def recorded(arg):
        with open(log, "a") as out:
            out.write(f"{os.getpid()} {name} {getattr(arg, 'filename', arg)}\n")
        return original(arg)

    monkeypatch.setattr(dataset_module, name, recorded)


def test_attributes_from_two_workers_equal_one_image_at_a_time(tmp_path, monkeypatch):
    rows = _rows(tmp_path / "images")
    log = tmp_path / "calls.log"
    _record_calls(monkeypatch, log, "load_image")
    _record_calls(monkeypatch, log, "pixel_row")
    result = evaluate_frame(_predictor(), rows, batch_size=3, workers=2, attributes=True)

    calls = [line.split(" ", 2) for line in log.read_text().splitlines()]
    pids = {pid for pid, _, _ in calls}
    assert str(os.getpid()) not in pids and len(pids) == 2  # all in the two workers, none in this process
    decoded = [path for _, name, path in calls if name == "load_image"]
    assert sorted(decoded) == sorted(rows["path"])  # every image decoded once, for model and attributes alike

    assert list(result.table["image_id"]) == [i for i in rows["image_id"] if i != "img8"]  # broken.jpg skipped
    one_at_a_time = compute_attributes(result.table, result.cams, workers=1)
    pd.testing.assert_frame_equal(result.attributes, one_at_a_time)
    name = result.table["path"].map(lambda path: Path(path).name)
    portrait = int(np.flatnonzero(name == "portrait.jpg")[0])
    expected = image_attributes(load_image(result.table.loc[portrait, "path"]),
                                result.cams[portrait, 0].astype(np.float32))
    assert result.attributes.loc[portrait, list(expected)].to_dict() == pytest.approx(expected)
    assert expected["has_face"]
    flags = result.attributes.set_index(name)
    assert flags.loc["gray.png", "monochrome"] and flags.loc["red.png", "warm"]


def test_a_run_evaluated_without_workers_gets_the_same_attributes(tmp_path):
    rows = _rows(tmp_path / "data" / "images")
    write_dataset(tmp_path / "data", rows.drop(columns="label_idx"), {})
    config = ModelConfig(arch="vgg_small", input_size=SIZE)
    torch.manual_seed(0)
    model = build_model(config)
    tables = {}
    for workers in (0, 2):
        run = tmp_path / f"run{workers}"
        save_checkpoint(run / "checkpoint.pt", model, config)
        evaluate_run(run, tmp_path / "data", workers=workers, batch_size=4)
        tables[workers] = read_attributes(run)
    pd.testing.assert_frame_equal(tables[0], tables[2])
    assert len(tables[0]) == len(rows) - 1 and tables[0]["cam_concentration"].notna().all()
    # the Trends page's "compute attributes" for a run evaluated with --no-attributes
    (tmp_path / "run0" / "attributes.parquet").unlink()
    pd.testing.assert_frame_equal(compute_for_run(tmp_path / "run0"), tables[2])


aten = torch.ops.aten


class DeviceReads(TorchDispatchMode):
    """Counts what would make the host wait for the device: reading a value back
    (.item(), bool(), .tolist()), copying to the host (.cpu(), .numpy()) and blocking
    copies to the device. The device is "meta": shapes without data, so a copy to the
    host returns zeros and the evaluation runs through."""

    def __init__(self):
        super().__init__()
        self.reads: list[str] = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        first = args[0] if args else None
        target = torch.device(kwargs.get("device") or getattr(first, "device", "cpu"))
        if func is aten._local_scalar_dense.default and first.is_meta:
            self.reads.append("item")
            return 0
        if func is aten._to_copy.default and first.is_meta and target.type == "cpu":
            self.reads.append("copy to host")
            return torch.zeros(first.shape, dtype=kwargs.get("dtype") or first.dtype)
        if func is aten.copy_.default and not first.is_meta and args[1].is_meta:
            self.reads.append("copy to host")
            return first
        if func is aten._to_copy.default and not first.is_meta and target.type == "meta" \
                and not kwargs.get("non_blocking", False):
            self.reads.append("blocking copy to device")
        return func(*args, **kwargs)


def test_the_evaluation_loop_reads_the_device_once_not_per_batch(tmp_path):
    rows = _rows(tmp_path / "images")
    predictor = _predictor("meta")
    reads = {}
    for batch_size in (5, 2):  # 2 and 5 batches
        with DeviceReads() as mode:
            result = evaluate_frame(predictor, rows, batch_size=batch_size)
        reads[batch_size] = mode.reads
    assert reads[5] == reads[2] == ["copy to host"] * 4  # probabilities, classes, CAMs, embeddings: once each
    with DeviceReads() as mode:
        evaluate_frame(predictor, rows, batch_size=2, cams=False)
    assert mode.reads == ["copy to host"] * 3  # no maps to read
    assert result.cams.shape == (len(rows) - 1, 2, 4, 4) and len(result.table) == len(rows) - 1
    assert result.embeddings.shape == (len(rows) - 1, 96) and result.embeddings.dtype == np.float16


def test_without_cams_the_same_predictions_and_embeddings_and_no_grad_cam(tmp_path, monkeypatch):
    rows = _rows(tmp_path / "images")
    predictor = _predictor()
    full = evaluate_frame(predictor, rows, batch_size=4)
    monkeypatch.setattr(predictor.gradcam, "maps", lambda *args, **kwargs: pytest.fail("Grad-CAM computed"))
    bare = evaluate_frame(predictor, rows, batch_size=4, cams=False)
    assert bare.cams is None
    pd.testing.assert_frame_equal(bare.table, full.table)
    np.testing.assert_array_equal(bare.embeddings, full.embeddings)
    with pytest.raises(ValueError, match="attributes=True needs cams=True"):
        evaluate_frame(predictor, rows, attributes=True, cams=False)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_evaluation_batches_never_wait_for_the_gpu():
    predictor = _predictor("cuda")
    batches = [(torch.randn(4, 3, SIZE, SIZE).pin_memory(), torch.tensor([0, 3, 5, 7]).pin_memory())
               for _ in range(3)]  # as the loader gives them on CUDA
    predictor.evaluate_batch(*batches[0])  # warm-up: cuDNN's algorithm search and first allocations may wait
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")  # any synchronizing call raises
    try:
        results = [predictor.evaluate_batch(*batch) for batch in batches]
    finally:
        torch.cuda.set_sync_debug_mode("default")
    assert all(result.cams.device.type == "cuda" for result in results)
