import numpy as np
import pandas as pd
from sklearn.metrics import accuracy_score, precision_recall_fscore_support
from sklearn.metrics import confusion_matrix as sk_confusion

from emotion_core.metrics import evaluation_metrics


def test_metrics_match_scikit_learn():
    rng = np.random.default_rng(0)
    true = rng.integers(0, 8, 500)
    pred = np.where(rng.random(500) < 0.6, true, rng.integers(0, 7, 500))  # class 7 rarely predicted
    metrics = evaluation_metrics(pd.DataFrame({"label_idx": true, "pred_idx": pred}))
    precision, recall, f1, support = precision_recall_fscore_support(true, pred, labels=range(8), zero_division=0)
    table = pd.DataFrame(metrics["per_class"])
    np.testing.assert_allclose(table["precision"], precision)
    np.testing.assert_allclose(table["recall"], recall)
    np.testing.assert_allclose(table["f1"], f1)
    assert table["support"].tolist() == support.tolist()
    assert metrics["accuracy"] == accuracy_score(true, pred)
    assert metrics["confusion_matrix"] == sk_confusion(true, pred, labels=range(8)).tolist()
