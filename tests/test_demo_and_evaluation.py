import json

import numpy as np
import pandas as pd

from emotion_core.labels import EMOTIONS
from emotion_core.metrics import evaluation_metrics
from emotion_core.runs import list_runs


def test_demo_build_meets_its_targets(demo_workspace):
    run = demo_workspace / "runs" / "demo"
    metrics = json.loads((run / "metrics.json").read_text())
    test = metrics["splits"]["test"]
    assert test["accuracy"] >= 0.5
    counts = np.array(test["confusion_matrix"])
    assert counts.sum() - np.trace(counts) > 0  # real confusions for the dashboard
    assert json.loads((run / "demo.json").read_text())["synthetic_demo"] is True
    runs = list_runs(demo_workspace / "runs")
    assert [(r.name, r.complete, r.is_demo) for r in runs] == [("demo", True, True)]


def test_evaluation_files_agree(demo_workspace):
    run = demo_workspace / "runs" / "demo"
    predictions = pd.read_parquet(run / "predictions.parquet")
    cams = np.load(run / "cams.npy")
    assert cams.shape == (len(predictions), 2, 8, 8) and cams.dtype == np.float16
    assert cams.max() <= 1.0 and cams.min() >= 0.0
    probabilities = predictions[[f"p_{e}" for e in EMOTIONS]].to_numpy()
    np.testing.assert_allclose(probabilities.sum(1), 1.0, atol=1e-4)
    assert (probabilities.argmax(1) == predictions["pred_idx"]).all()
    metrics = json.loads((run / "metrics.json").read_text())
    for split, values in metrics["splits"].items():
        assert values == json.loads(json.dumps(evaluation_metrics(predictions[predictions["split"] == split])))
    assert not list(run.glob("*.tmp"))


def test_planted_failure_mode_shows_in_anger_to_sadness(demo_workspace):
    predictions = pd.read_parquet(demo_workspace / "runs" / "demo" / "predictions.parquet")
    cell = predictions[(predictions["label"] == "anger") & (predictions["pred"] == "sadness")]
    assert len(cell) >= 2
    assert (cell["demo_trait"] == "monochrome").mean() >= 0.5


def test_one_demo_build_at_a_time(tmp_path):
    from training.demo import build_demo, build_lock, demo_building

    run = tmp_path / "runs" / "demo"
    assert not demo_building(run)
    with build_lock(run):
        assert demo_building(run)  # what a second dashboard session sees
    run.mkdir(parents=True)
    (run / "metrics.json").write_text("{}")
    assert build_demo(run_dir=run, dataset_dir=tmp_path / "data", reuse=True)["reused"]
    assert not (tmp_path / "data").exists()


def test_an_empty_shard_gives_empty_results():
    from emotion_core.evaluation import predict_frame
    from emotion_core.model import ModelConfig, build_model
    from emotion_core.predict import Predictor

    rows = pd.DataFrame(columns=["image_id", "path", "split", "label", "label_idx", "agree", "disagree"])
    table, cams = predict_frame(Predictor(build_model(ModelConfig(arch="vgg_small", input_size=64)), 64), rows)
    assert len(table) == 0 and cams.shape == (0, 2, 8, 8)
    assert "p_anger" in table and "cam_index" in table
