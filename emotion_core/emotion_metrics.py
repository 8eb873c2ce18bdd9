"""Emotion-aware evaluation: polarity, Mikels'-wheel severity (ECC, EMC) and calibration.

ECC and EMC follow Zhao et al., "To Err Like Human: Affective Bias-Inspired Measures for Visual
Emotion Recognition Evaluation" (NeurIPS 2024), Eq. 1, 3 and 4: the emotional distance of true
class i and predicted class j is W[i, j] = 1 + d on the same polarity and C + d across polarities
(C = 4), d the number of steps between them on Mikels' wheel (circular);
ECC = sum_ij S[i, j] / W[i, j] / N and EMC = sum_{i != j} S[i, j] / (W[i, j] - 1) / (N - N_correct),
S the confusion matrix (rows true, columns predicted). EMC lies in (0, 1]: an error to a wheel
neighbour of the same polarity counts 1, one to the far side of the other polarity 1/7.

Every metric is returned only where it is defined (polarity needs a polarity for every class,
ECC/EMC Mikels' eight, calibration a confidence column, agreement usable votes): absent, never an error.
"""
from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from emotion_core.labels import MIKELS_POSITIVE, MIKELS_WHEEL, ClassSet
from emotion_core.ldl_metrics import AGREEMENT_KEY, LDL_KEY, label_probability_vs_agreement, ldl_metrics
from emotion_core.votes import NO_VOTES, NON_UNANIMOUS, STRONGLY_DIVIDED, UNANIMOUS, vote_agreement, vote_levels

POSITIVE, NEGATIVE = "positive", "negative"
POLARITY_GAP = 4   # C of Zhao et al.: any cross-polarity error is farther than every same-polarity one
ECE_BINS = 15
# vote_levels' disjoint levels, from most to least agreement (NON_UNANIMOUS here excludes strongly divided)
AGREEMENT_ORDER = (UNANIMOUS, NON_UNANIMOUS, STRONGLY_DIVIDED)
LEVEL_NAMES = {UNANIMOUS: "unanimous", NON_UNANIMOUS: "non-unanimous, not strongly divided",
               STRONGLY_DIVIDED: "strongly divided"}
# the keys emotion_aware_metrics may add to a split's metrics.json entry
KEYS = ("polarity", "ecc", "emc", "calibration", "confidence_vs_agreement", LDL_KEY, AGREEMENT_KEY)
# those measured on the predicted distribution against the votes (added later than the others: a run
# evaluated before them has the rest); never for a run imported with labels only, whose p_<class> columns
# are one-hot stand-ins (metrics.json's has_probabilities: false), not the model's probabilities
LDL_KEYS = (LDL_KEY, AGREEMENT_KEY)
LABELS_ONLY_NOTE = ("No LDL metrics or p(label) vs agree share: this run was imported with labels only, so it has no "
                    "predicted distribution to measure against the votes.")


def class_polarities(classes: ClassSet) -> list[str] | None:
    """Each class's polarity in model order: the class set's own, Mikels' for his eight when the set
    declares none; None when some class has no polarity."""
    if all(name in classes.polarity for name in classes.names):
        return [classes.polarity[name] for name in classes.names]
    if classes.is_mikels:
        return [POSITIVE if name in MIKELS_POSITIVE else NEGATIVE for name in classes.names]
    return None


def wheel_distances(classes: ClassSet) -> np.ndarray | None:
    """d[i, j]: steps between classes i and j on Mikels' wheel (circular), model order; None unless
    the class set is Mikels' eight."""
    if not classes.is_mikels:
        return None
    wheel = classes.wheel or MIKELS_WHEEL
    position = np.array([wheel.index(name) for name in classes.names])
    steps = np.abs(position[:, None] - position[None, :])
    return np.minimum(steps, len(wheel) - steps)


def emotion_distances(classes: ClassSet) -> np.ndarray | None:
    """W[i, j] of Zhao et al. (Eq. 1): 1 + d on the same polarity, 4 + d across; 1 on the diagonal."""
    steps, polarity = wheel_distances(classes), class_polarities(classes)
    if steps is None or polarity is None or not set(polarity) <= {POSITIVE, NEGATIVE}:
        return None
    same = np.equal.outer(np.array(polarity), np.array(polarity))
    return np.where(same, 1 + steps, POLARITY_GAP + steps)


def ecc(counts: np.ndarray, distances: np.ndarray) -> float | None:
    """Emotion Confusion Confidence: every image weighted by 1 / W of its (true, predicted) cell."""
    total = counts.sum()
    return float((counts / distances).sum() / total) if total else None


def emc(counts: np.ndarray, distances: np.ndarray) -> float | None:
    """Emotional Misclassification Confidence: the errors weighted by 1 / (W - 1); None without errors."""
    off = ~np.eye(len(counts), dtype=bool)
    errors = counts[off].sum()
    return float((counts[off] / (distances[off] - 1)).sum() / errors) if errors else None


def polarity_metrics(counts: np.ndarray, classes: ClassSet) -> dict | None:
    """Share of images whose predicted class has the true class's polarity, and the share of the
    errors that go from positive to negative or back; None when a class has no polarity."""
    polarity = class_polarities(classes)
    total = int(counts.sum())
    if polarity is None or not total:
        return None
    polarity = np.array(polarity)
    same = np.equal.outer(polarity, polarity)
    crossing = (np.isin(polarity, [POSITIVE, NEGATIVE])[:, None] & np.isin(polarity, [POSITIVE, NEGATIVE])[None, :]
                & ~same)
    errors = int(total - np.trace(counts))
    crossed = int(counts[crossing].sum())
    return {"accuracy": float(counts[same].sum() / total), "errors": errors, "cross_polarity_errors": crossed,
            "cross_polarity_error_share": crossed / errors if errors else None}


def _bin_index(confidence: np.ndarray, bins: int) -> np.ndarray:
    """Equal-width bins over [0, 1], each (lower, upper] (the first also holds 0)."""
    inner_edges = np.linspace(0.0, 1.0, bins + 1)[1:-1]
    return np.searchsorted(inner_edges, confidence, side="left")


def reliability_table(confidence: np.ndarray, correct: np.ndarray, bins: int = ECE_BINS) -> pd.DataFrame:
    """Per non-empty bin: lower, upper, images, mean_confidence, accuracy (the reliability diagram)."""
    confidence, correct = np.asarray(confidence, dtype=float), np.asarray(correct, dtype=float)
    index = _bin_index(confidence, bins)
    images = np.bincount(index, minlength=bins)
    sums = np.bincount(index, weights=confidence, minlength=bins)
    hits = np.bincount(index, weights=correct, minlength=bins)
    filled = images > 0
    edges = np.linspace(0.0, 1.0, bins + 1)
    return pd.DataFrame({"lower": edges[:-1][filled], "upper": edges[1:][filled], "images": images[filled],
                         "mean_confidence": sums[filled] / images[filled], "accuracy": hits[filled] / images[filled]})


def expected_calibration_error(confidence: np.ndarray, correct: np.ndarray, bins: int = ECE_BINS) -> float:
    """sum over bins of (images in bin / all images) * |accuracy - mean confidence| (Guo et al. 2017)."""
    table = reliability_table(confidence, correct, bins)
    total = table["images"].sum()
    return float((table["images"] * (table["accuracy"] - table["mean_confidence"]).abs()).sum() / total)


def calibration(predictions: pd.DataFrame, bins: int = ECE_BINS) -> dict | None:
    """ECE and the reliability diagram's bins; None without a confidence column or images."""
    confidence, correct = _confidence_and_correct(predictions)
    if confidence is None:
        return None
    table = reliability_table(confidence, correct, bins)
    return {"ece": expected_calibration_error(confidence, correct, bins), "bins": bins,
            "reliability": table.to_dict(orient="records")}


def confidence_vs_agreement(predictions: pd.DataFrame) -> dict | None:
    """How the model's confidence tracks the annotators' agreement: Spearman's rho over the images with
    votes, and per agreement level the images, accuracy and mean confidence. None without votes or
    confidence; rho None when either side is constant (no ranking to correlate)."""
    confidence, correct = _confidence_and_correct(predictions)
    if confidence is None:
        return None
    predictions = predictions[np.isfinite(pd.to_numeric(predictions["confidence"], errors="coerce").to_numpy(float))]
    agreement = vote_agreement(predictions).to_numpy()
    voted = ~np.isnan(agreement)
    if not voted.any():
        return None
    rho, p_value = _spearman(agreement[voted], confidence[voted])
    levels = vote_levels(predictions).to_numpy()
    rows = [{"level": level, "images": int((levels == level).sum()),
             "accuracy": float(correct[levels == level].mean()),
             "mean_confidence": float(confidence[levels == level].mean())}
            for level in AGREEMENT_ORDER if (levels == level).any()]
    return {"spearman": rho, "p_value": p_value, "images": int(voted.sum()),
            "no_votes": int((levels == NO_VOTES).sum()), "levels": rows}


def _confidence_and_correct(predictions: pd.DataFrame) -> tuple[np.ndarray | None, np.ndarray | None]:
    """The images' confidence and whether they are right, images without a confidence left out;
    (None, None) when no image has one."""
    if "confidence" not in predictions:
        return None, None
    confidence = pd.to_numeric(predictions["confidence"], errors="coerce").to_numpy(dtype=float)
    known = np.isfinite(confidence)
    if not known.any():
        return None, None
    correct = predictions["label_idx"].to_numpy() == predictions["pred_idx"].to_numpy()
    return confidence[known], correct[known]


def _spearman(x: np.ndarray, y: np.ndarray) -> tuple[float | None, float | None]:
    if len(x) < 3 or np.ptp(x) == 0 or np.ptp(y) == 0:
        return None, None
    from scipy.stats import spearmanr  # scipy costs a second: only when there is something to rank

    result = spearmanr(x, y)
    return float(result.statistic), float(result.pvalue)


def ldl_entries(predictions: pd.DataFrame, classes: ClassSet, *, has_probabilities: bool = True) -> dict[str, Any]:
    """The LDL_KEYS entries that apply: LDL measures (per-class vote distributions), p(label) against the agree
    share (FI-style votes); none without the run's own probabilities (has_probabilities False: labels only)."""
    if not has_probabilities:
        return {}
    entries = ((LDL_KEY, ldl_metrics(predictions, classes)),  # per-class vote distributions only
               (AGREEMENT_KEY, label_probability_vs_agreement(predictions, classes)))  # FI-style votes
    return {key: value for key, value in entries if value is not None}


def emotion_aware_metrics(predictions: pd.DataFrame, counts: np.ndarray, classes: ClassSet, *,
                          has_probabilities: bool = True) -> dict[str, Any]:
    """The emotion-aware entries of one split's metrics.json: only those defined for this class set
    and table (see the module docstring); counts is the split's confusion matrix in model order;
    has_probabilities False (labels-only import) leaves out the LDL_KEYS."""
    result: dict[str, Any] = {}
    polarity = polarity_metrics(counts, classes)
    if polarity is not None:
        result["polarity"] = polarity
    distances = emotion_distances(classes)
    if distances is not None and counts.sum():
        result["ecc"], result["emc"] = ecc(counts, distances), emc(counts, distances)
    for key, value in (("calibration", calibration(predictions)),
                       ("confidence_vs_agreement", confidence_vs_agreement(predictions))):
        if value is not None:
            result[key] = value
    return result | ldl_entries(predictions, classes, has_probabilities=has_probabilities)


def split_emotion_metrics(split_metrics: dict, predictions: pd.DataFrame | None, classes: ClassSet, *,
                          has_probabilities: bool = True) -> dict:
    """A split's emotion-aware metrics: those stored in metrics.json, and what a run evaluated before they
    existed lacks, computed from its predictions when given: all of them, or only the LDL_KEYS (a run
    evaluated between the two has polarity and calibration but no LDL entries). has_probabilities:
    metrics.json's (False for a labels-only import: no LDL_KEYS)."""
    stored = {key: split_metrics[key] for key in KEYS if key in split_metrics}
    if predictions is None or not len(predictions):
        return stored
    if not stored:
        from emotion_core.metrics import confusion_matrix

        counts = confusion_matrix(predictions["label_idx"], predictions["pred_idx"], len(classes))
        return emotion_aware_metrics(predictions, counts, classes, has_probabilities=has_probabilities)
    if not lacks_ldl_entries(stored, has_probabilities):
        return stored
    return stored | ldl_entries(predictions, classes, has_probabilities=has_probabilities)


def lacks_ldl_entries(split_metrics: dict, has_probabilities: bool = True) -> bool:
    """Whether split_emotion_metrics would look at the predictions for this split's metrics.json entry: it has no
    emotion-aware metric at all, or (for a run with probabilities) no LDL_KEYS entry. A run whose dataset has
    no votes lacks them too; computing finds nothing there, cheaply."""
    if not any(key in split_metrics for key in KEYS):
        return True
    return has_probabilities and not any(key in split_metrics for key in LDL_KEYS)


def severity_notes(classes: ClassSet) -> list[list[str]] | None:
    """Per cell (model order) a few words on how far the error goes: 'wheel distance 3 · crosses
    polarity · emotional distance W = 7'; empty on the diagonal; None unless Mikels' eight."""
    steps, polarity, distances = wheel_distances(classes), class_polarities(classes), emotion_distances(classes)
    if steps is None or polarity is None or distances is None:
        return None
    n = len(classes)
    return [["" if i == j else
             f"wheel distance {steps[i, j]} · {'same polarity' if polarity[i] == polarity[j] else 'crosses polarity'}"
             f" · emotional distance W = {distances[i, j]}" for j in range(n)] for i in range(n)]


def wheel_order(classes: ClassSet) -> tuple[str, ...] | None:
    """The class ids in Mikels' wheel order, for the matrix view; None unless Mikels' eight."""
    return tuple(classes.wheel or MIKELS_WHEEL) if classes.is_mikels else None


def summary_text(aware: dict) -> str:
    """The emotion-aware metrics of a split in one line (the CLI summary, the report); '' when none apply."""
    parts = []
    polarity = aware.get("polarity")
    if polarity:
        share = polarity["cross_polarity_error_share"]
        parts.append(f"polarity accuracy {polarity['accuracy']:.1%}"
                     + (f" ({share:.1%} of errors cross polarity)" if share is not None else ""))
    if aware.get("ecc") is not None:
        parts.append(f"ECC {aware['ecc']:.3f}")
    if aware.get("emc") is not None:
        parts.append(f"EMC {aware['emc']:.3f}")
    if aware.get("calibration"):
        parts.append(f"ECE {aware['calibration']['ece']:.3f}")
    tracking = aware.get("confidence_vs_agreement")
    if tracking and tracking["spearman"] is not None:
        parts.append(f"confidence vs vote agreement Spearman rho {tracking['spearman']:.2f}")
    label_tracking = aware.get(AGREEMENT_KEY)
    if label_tracking and label_tracking["spearman"] is not None:
        parts.append(f"p(label) vs agree share Spearman rho {label_tracking['spearman']:.2f}")
    return " · ".join(parts)
