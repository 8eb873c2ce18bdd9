"""Label-distribution metrics: how far a run's predicted distribution is from the annotators' votes.

Flickr_LDL, Twitter_LDL (vote counts) and Emotion6 (vote shares) give every image a distribution over
the classes (`votes_<class>`); a run gives one too (`p_<class>`). The six measures of Geng's LDL
survey ("Label Distribution Learning", IEEE TKDE 2016, Table 2), with q the voted distribution
(normalised to sum to 1) and p the predicted one, summed over the C classes j:

    Chebyshev     max_j |p_j - q_j|                          lower is better, 0 .. 1
    Clark         sqrt( sum_j (p_j - q_j)^2 / (p_j + q_j)^2 ) lower is better, 0 .. sqrt(C)
    Canberra      sum_j |p_j - q_j| / (p_j + q_j)            lower is better, 0 .. C
    KL            sum_j q_j ln(q_j / p_j)  (KL(q || p))      lower is better, 0 .. (large)
    cosine        sum_j p_j q_j / (||p|| ||q||)              higher is better, 0 .. 1
    intersection  sum_j min(p_j, q_j)                        higher is better, 0 .. 1

Zeros: the votes often give a class nothing (q_j = 0) and a float32 softmax can underflow (p_j = 0).
A Clark or Canberra term with p_j + q_j = 0 is 0 (no difference in that class, the limit of 0/0
along p = q). KL takes the votes q as the reference: a term with q_j = 0 is 0 (q ln q -> 0), and
p is clipped from below at KL_EPSILON = 1e-12 before the logarithm, so a class the voters chose and
the model ruled out costs q_j * ln(q_j / 1e-12) (at most about 27.6 * q_j), never infinity.

FI has no distribution: its Turkers voted agree or disagree on one emotion. There the question is
whether the model's probability for the label follows the agree share (Spearman's rho), beside the
accuracy by agreement level that emotion_metrics.confidence_vs_agreement already gives.
"""
from __future__ import annotations

from collections.abc import Collection

import numpy as np
import pandas as pd

from emotion_core.votes import DISTRIBUTION_PREFIX, PROBABILITY_PREFIX, has_distribution, vote_agreement

# measure -> higher is better, in the order tables show them
MEASURES: dict[str, bool] = {"chebyshev": False, "clark": False, "canberra": False, "kl": False,
                             "cosine": True, "intersection": True}
MEASURE_NAMES = {"chebyshev": "Chebyshev", "clark": "Clark", "canberra": "Canberra", "kl": "KL divergence",
                 "cosine": "Cosine similarity", "intersection": "Intersection"}
KL_EPSILON = 1e-12
LDL_KEY, AGREEMENT_KEY = "ldl", "label_probability_vs_agreement"  # a split's metrics.json keys


def measure_label(measure: str) -> str:
    """'Chebyshev ↓', 'Cosine similarity ↑': the name with the better direction."""
    return f"{MEASURE_NAMES[measure]} {'↑' if MEASURES[measure] else '↓'}"


def _names(classes) -> list[str]:
    """Class ids in model order from a ClassSet or a list of ids."""
    return list(getattr(classes, "names", classes))


def voted_distributions(predictions: pd.DataFrame, classes: Collection[str]) -> np.ndarray | None:
    """(N, C) each image's votes_<class> normalised to sum to 1 (counts or shares alike), model order;
    NaN rows where a vote is missing or all are 0. None when the table lacks a votes_ column of some
    class (FI-style agree/disagree votes, or no votes at all)."""
    columns = [DISTRIBUTION_PREFIX + name for name in _names(classes)]
    if not columns or any(c not in predictions for c in columns):
        return None
    votes = np.column_stack([pd.to_numeric(predictions[c], errors="coerce").to_numpy(dtype=float)
                             for c in columns])  # (N, C); a missing vote is NaN
    totals = votes.sum(axis=1, keepdims=True)   # NaN when any vote is missing
    usable = np.isfinite(totals) & (totals > 0) & (votes >= 0).all(axis=1, keepdims=True)
    return np.where(usable, votes / np.where(usable, totals, 1.0), np.nan)


def has_probabilities(predictions: pd.DataFrame, classes: Collection[str]) -> bool:
    """Whether the table has a p_<class> column for every class."""
    return all(PROBABILITY_PREFIX + name in predictions for name in _names(classes))


def predicted_distributions(predictions: pd.DataFrame, classes: Collection[str]) -> np.ndarray:
    """(N, C) the run's p_<class> columns in model order, each row divided by its sum (an imported run's
    probabilities may sum to 1 only within a tolerance). Raises a one-line ValueError when a column is missing."""
    columns = [PROBABILITY_PREFIX + name for name in _names(classes)]
    missing = [c for c in columns if c not in predictions]
    if missing:
        raise ValueError(f"the predictions have no probability column {missing[0]} (expected p_<class> for: "
                         f"{', '.join(_names(classes))})")
    probabilities = np.column_stack([pd.to_numeric(predictions[c], errors="coerce").to_numpy(dtype=float)
                                     for c in columns])
    totals = probabilities.sum(axis=1, keepdims=True)
    return probabilities / np.where(totals > 0, totals, np.nan)


def per_image(predicted: np.ndarray, voted: np.ndarray) -> pd.DataFrame:
    """One row per image, one column per MEASURES entry (formulas in the module docstring); NaN where
    the image has no voted distribution. predicted, voted: (N, C), rows summing to 1."""
    p, q = np.asarray(predicted, dtype=float), np.asarray(voted, dtype=float)
    if p.shape != q.shape:
        raise ValueError(f"predicted {p.shape} and voted {q.shape} distributions differ in shape")
    difference, total = np.abs(p - q), p + q
    # 0/0 in a class neither side gives anything: no difference there
    ratio = np.divide(difference, total, out=np.zeros_like(total), where=total > 0)
    log_ratio = np.log(np.where(q > 0, q, 1.0)) - np.log(np.clip(p, KL_EPSILON, None))
    kl_terms = np.where(q > 0, q * log_ratio, 0.0)
    norms = np.linalg.norm(p, axis=1) * np.linalg.norm(q, axis=1)
    frame = pd.DataFrame({
        "chebyshev": difference.max(axis=1),
        "clark": np.sqrt((ratio ** 2).sum(axis=1)),
        "canberra": ratio.sum(axis=1),
        "kl": kl_terms.sum(axis=1),
        "cosine": (p * q).sum(axis=1) / np.where(norms > 0, norms, np.nan),
        "intersection": np.minimum(p, q).sum(axis=1),
    })
    frame.loc[np.isnan(q).any(axis=1) | np.isnan(p).any(axis=1)] = np.nan  # no votes (or no prediction): no distance
    return frame


def distances(predictions: pd.DataFrame, classes: Collection[str]) -> pd.DataFrame | None:
    """per_image for a predictions table, indexed like it (NaN rows for images without a distribution);
    None when the dataset has no per-class votes."""
    voted = voted_distributions(predictions, classes)
    if voted is None:
        return None
    return per_image(predicted_distributions(predictions, classes), voted).set_axis(predictions.index)


def ldl_metrics(predictions: pd.DataFrame, classes: Collection[str]) -> dict | None:
    """A split's LDL entry of metrics.json: each measure's mean over the images with a voted distribution,
    `images` (how many) and `without_distribution` (images left out); None when no image has one, or when
    the table lacks a p_<class> column (a comparison keeps p_ only when both runs have them all)."""
    if not has_probabilities(predictions, classes):
        return None
    per = distances(predictions, classes)
    if per is None:
        return None
    counted = per.dropna()
    if counted.empty:
        return None
    return {"images": int(len(counted)), "without_distribution": int(len(per) - len(counted)),
            **{measure: float(counted[measure].mean()) for measure in MEASURES}}


def label_probabilities(predictions: pd.DataFrame, classes: Collection[str]) -> np.ndarray:
    """(N,) each image's predicted probability of its own label (p_<label>)."""
    probabilities = predicted_distributions(predictions, classes)
    position = {name: i for i, name in enumerate(_names(classes))}
    columns = predictions["label"].map(position).to_numpy(dtype=float)
    known = ~np.isnan(columns)
    result = np.full(len(predictions), np.nan)
    result[known] = probabilities[np.nonzero(known)[0], columns[known].astype(int)]
    return result


def label_probability_vs_agreement(predictions: pd.DataFrame, classes: Collection[str]) -> dict | None:
    """FI-style votes (agree / disagree on the label only): Spearman's rho of the predicted p(label) with
    the agree share over the images with votes, and per agreement level the images, accuracy, mean
    confidence (emotion_metrics.confidence_vs_agreement's levels) and mean p(label). None when the
    table has per-class vote distributions (ldl_metrics answers there), no votes or no probabilities;
    rho None when either side is constant."""
    from emotion_core.emotion_metrics import _spearman, confidence_vs_agreement  # it imports this module
    from emotion_core.votes import vote_levels

    if has_distribution(predictions) or not has_probabilities(predictions, classes):
        return None
    agreement = vote_agreement(predictions).to_numpy()
    label_p = label_probabilities(predictions, classes)
    usable = ~np.isnan(agreement) & np.isfinite(label_p)
    if not usable.any():
        return None
    rho, p_value = _spearman(agreement[usable], label_p[usable])
    levels = vote_levels(predictions).to_numpy()
    tracking = confidence_vs_agreement(predictions) or {"levels": []}
    rows = [{**row, "mean_label_probability": float(np.nanmean(label_p[levels == row["level"]]))}
            for row in tracking["levels"]]
    return {"spearman": rho, "p_value": p_value, "images": int(usable.sum()), "levels": rows}


def summary_line(ldl: dict | None) -> str:
    """A split's LDL entry in one line (the CLI summary): 'LDL on 120 vote distributions: Chebyshev ↓ 0.312,
    ...'; '' without one."""
    if not ldl:
        return ""
    shown = ", ".join(f"{measure_label(m)} {ldl[m]:.3f}" for m in MEASURES)
    return f"LDL on {ldl['images']:,} vote distributions: {shown}"
