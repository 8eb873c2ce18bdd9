import json

import numpy as np
import pandas as pd
import pytest
from sklearn.ensemble import RandomForestClassifier

from emotion_core.demo_data import PLANTED, generate
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


def test_the_demo_model_makes_every_planted_mistake(demo_workspace):
    predictions = pd.read_parquet(demo_workspace / "runs" / "demo" / "predictions.parquet")
    for mode in PLANTED:
        planted = predictions[(predictions["label"] == mode.emotion) & (predictions["demo_trait"] == mode.trait)]
        assert set(planted["split"]) == {"dev", "test"}
        assert (planted["pred"] == mode.looks_like).mean() >= 2 / 3, (mode, planted["pred"].value_counts())


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_planted_images_force_their_mistake_on_any_model_that_fits(seed):
    """The failure modes come from how the images are made, not from one VGG run: a
    random forest on 8x8 thumbnails, which fits the ordinary images, makes them too."""
    items = generate(110, size=64, seed=seed)
    pixels = np.stack([np.asarray(item.image.resize((8, 8)), dtype=np.float32).ravel() for item in items])
    labels, traits, splits = (np.array([getattr(item, key) for item in items]) for key in ("label", "trait", "split"))
    forest = RandomForestClassifier(n_estimators=200, random_state=0).fit(pixels[splits == "train"],
                                                                          labels[splits == "train"])
    evaluated = splits != "train"
    ordinary = evaluated & (traits == "")
    assert (forest.predict(pixels[ordinary]) == labels[ordinary]).mean() >= 0.75
    for mode in PLANTED:
        planted = evaluated & (labels == mode.emotion) & (traits == mode.trait)
        assert planted.sum() >= 10  # several images in every planted cell of dev and test
        assert (forest.predict(pixels[planted]) == mode.looks_like).mean() >= 0.75, mode
    planted_kinds = {(mode.emotion, mode.trait) for mode in PLANTED}
    assert not [item for item in items if item.split == "train" and (item.label, item.trait) in planted_kinds]


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
