"""Comparing two runs evaluated on the same images: which images flipped, and is the gain real?

Two runs are compared image by image on what both evaluated (one split of one dataset, one class
set). The accuracy difference gets a paired bootstrap interval (scipy.stats.bootstrap, paired: an
image's two outcomes are resampled together, so the interval reflects the runs' correlation) and
the exact McNemar test, a binomial test on the discordant pairs (b: only A right, c: only B right;
under "no difference" each discordant image is a fair coin). Per true class the same test, with
Benjamini-Hochberg across the classes. The difference matrix is B's confusion matrix minus A's:
each row sums to 0 because both runs saw the same images of that true class.
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from emotion_core.emotion_metrics import wheel_distances
from emotion_core.labels import ClassSet, describe_classes
from emotion_core.ldl_metrics import AGREEMENT_KEY, LDL_KEY, MEASURE_NAMES, MEASURES, distances, voted_distributions
from emotion_core.metrics import confusion_matrix, evaluation_metrics
from emotion_core.metrics import per_class_table as scores_per_class
from emotion_core.report import Column, display_value
from emotion_core.runs import predictions_of_split
from emotion_core.votes import NO_VOTES, NON_UNANIMOUS, STRONGLY_DIVIDED, UNANIMOUS

BOTH_RIGHT, ONLY_A, ONLY_B, BOTH_WRONG = "both_right", "only_a", "only_b", "both_wrong"
BUCKETS = (BOTH_RIGHT, ONLY_A, ONLY_B, BOTH_WRONG)
BUCKET_NAMES = {BOTH_RIGHT: "both right", ONLY_A: "only A right", ONLY_B: "only B right", BOTH_WRONG: "both wrong"}
BUCKET_TITLES = {bucket: name[0].upper() + name[1:] for bucket, name in BUCKET_NAMES.items()}  # 'Only A right'
# Per-run columns of a predictions table; everything else (label, votes, path, attributes) is the image's.
RUN_COLUMNS = ("pred", "pred_idx", "confidence", "correct", "cam_index")
# The difference-matrix cell's images: in B's cell and not A's, in A's and not B's, in both.
ENTERED, LEFT, STAYED = "entered (B only)", "left (A only)", "in both"
# vote_levels' disjoint levels (non-unanimous here excludes the strongly divided), most agreement first
LEVELS = (UNANIMOUS, NON_UNANIMOUS, STRONGLY_DIVIDED, NO_VOTES)
LEVEL_NAMES = {UNANIMOUS: "unanimous", NON_UNANIMOUS: "non-unanimous, not strongly divided",
               STRONGLY_DIVIDED: "strongly divided", NO_VOTES: "no votes"}
SORT_KEYS = ("flips first", "B's confidence (high first)", "A's confidence (high first)", "agreement (low first)")
N_RESAMPLES = 9999
SEED = 0
NO_DISCORDANT = "no discordant pairs (both runs right or both wrong on every image): p = 1, no evidence of a difference"
# How pages show the tables below (emotion_core.report.format_table)
METRIC_COLUMNS = {"metric": Column("Metric"), "a": Column("Run A"), "b": Column("Run B"),
                  "difference": Column("B − A"), "winner": Column("Better")}
PER_CLASS_COLUMNS = {"emotion": Column("Emotion"), "images": Column("Images", "count"),
                     "precision_a": Column("Prec. A", "percent"), "precision_b": Column("Prec. B", "percent"),
                     "recall_a": Column("Recall A", "percent"), "recall_b": Column("Recall B", "percent"),
                     "f1_a": Column("F1 A", "percent"), "f1_b": Column("F1 B", "percent"),
                     "only_a": Column("Only A right", "count"), "only_b": Column("Only B right", "count"),
                     "p_value": Column("McNemar p (exact)", "p"), "q_value": Column("q-value (Benjamini-Hochberg)", "p")}
FLIP_COLUMNS = {"level": Column("Votes"), "images": Column("Images", "count"),
                **{bucket: Column(BUCKET_TITLES[bucket], "count") for bucket in BUCKETS},
                "net_gain": Column("B's net gain (only B − only A)", "count"),
                "accuracy_a": Column("Accuracy A", "percent"), "accuracy_b": Column("Accuracy B", "percent")}
# error_nearness's columns; a pair that no run can fill (wheel off Mikels' eight, votes off LDL) is dropped
NEARNESS_COLUMNS = {"level": Column("Votes"), "images": Column("Images", "count"),
                    "errors_a": Column("Errors A", "count"), "errors_b": Column("Errors B", "count"),
                    "wheel_a": Column("Wheel steps of errors A", "ratio"),
                    "wheel_b": Column("Wheel steps of errors B", "ratio"),
                    "voted_pred_a": Column("Votes for the wrong class A", "percent"),
                    "voted_pred_b": Column("Votes for the wrong class B", "percent"),
                    "kl_a": Column("KL to the votes A", "ratio"), "kl_b": Column("KL to the votes B", "ratio")}
NEARNESS_MEANS = ("wheel", "voted_pred", "kl")


@dataclass(frozen=True)
class Comparison:
    """Two runs' predictions of the same images: one row per image both evaluated. Columns: the
    image's own (image_id, path, label, label_idx in `classes` order, votes, agreement_level, ...)
    from run A, and per run pred_a / pred_b, pred_idx_a / _b, confidence_a / _b, correct_a / _b,
    cam_index_a / _b (when the run has it), p_<class>_a / _b (when both runs have every class's); bucket
    (one of BUCKETS)."""
    table: pd.DataFrame
    classes: ClassSet
    split: str
    only_in_a: int  # images of the split that only run A evaluated (left out)
    only_in_b: int

    @property
    def note(self) -> str | None:
        """What was left out when the runs evaluated partly different images (None when the same)."""
        if not self.only_in_a and not self.only_in_b:
            return None
        return (f"The runs evaluated partly different images of the {self.split} split: compared on the "
                f"{len(self.table):,} both evaluated ({self.only_in_a:,} only in run A and "
                f"{self.only_in_b:,} only in run B left out).")


def check_comparable(dataset_a: str | None, dataset_b: str | None, classes_a: ClassSet, classes_b: ClassSet) -> None:
    """Raise a one-line ValueError unless the runs are on the same dataset (named by its folder, as
    tags are) and the same class set (the same ids; their order may differ)."""
    name_a, name_b = (Path(str(d)).name if d else None for d in (dataset_a, dataset_b))
    if name_a and name_b and name_a != name_b:
        raise ValueError(f"Run A was evaluated on dataset '{name_a}' and run B on '{name_b}': "
                         "pick two runs of the same dataset.")
    if set(classes_a.names) != set(classes_b.names):
        raise ValueError(f"The runs have different class sets (A: {describe_classes(classes_a)}; "
                         f"B: {describe_classes(classes_b)}): they cannot be compared image by image.")


def align(predictions_a: pd.DataFrame, predictions_b: pd.DataFrame, *, classes: ClassSet, split: str,
          with_probabilities: tuple[bool, bool] = (True, True)) -> Comparison:
    """The images of `split` both runs evaluated, side by side (an image listed twice counts once, its
    first row). with_probabilities: whether each run's p_<class> are its model's probabilities (metrics.json's
    has_probabilities; False for a labels-only import, whose p_ are one-hot stand-ins): the p_ columns are
    kept only when both runs have real ones, so no LDL metric or KL is measured on a stand-in. Raises a
    one-line ValueError when a run has no prediction on the split, the runs share no image, or an image
    has different labels in the two runs (not the same dataset)."""
    a, b = (_of_split(table, split, name) for table, name in ((predictions_a, "A"), (predictions_b, "B")))
    shared_ids = pd.Index(a["image_id"]).intersection(pd.Index(b["image_id"]))
    if shared_ids.empty:
        raise ValueError(f"The runs evaluated no image in common on the {split} split (run A {len(a):,} images, "
                         f"run B {len(b):,}): they were not evaluated on the same images.")
    image_columns = [c for c in a.columns if c not in RUN_COLUMNS and not str(c).startswith("p_")]
    # each run's p_<class> too (the LDL metrics need both distributions), when both runs have them all
    probabilities = _probability_columns(classes)
    both_have_probabilities = all(with_probabilities) and all(c in a and c in b for c in probabilities)
    run_columns = ([c for c in RUN_COLUMNS if c in a.columns and c in b.columns]
                   + (probabilities if both_have_probabilities else []))
    left = a[image_columns + run_columns].rename(columns={c: f"{c}_a" for c in run_columns})
    right = b[["image_id", "label", *run_columns]].rename(columns={"label": "label_b",
                                                                   **{c: f"{c}_b" for c in run_columns}})
    table = left.merge(right, on="image_id")  # run A's row order
    relabelled = table["label"] != table.pop("label_b")
    if relabelled.any():
        first = table.loc[relabelled, "image_id"].iloc[0]
        raise ValueError(f"{int(relabelled.sum()):,} images have different labels in the two runs (e.g. {first}): "
                         "they were not evaluated on the same dataset.")
    _index_in(table, classes)
    return Comparison(table.reset_index(drop=True), classes, split, len(a) - len(shared_ids), len(b) - len(shared_ids))


def _probability_columns(classes: ClassSet) -> list[str]:
    return [f"p_{name}" for name in classes.names]


def _of_split(table: pd.DataFrame, split: str, run: str) -> pd.DataFrame:
    rows = predictions_of_split(table, split, lambda _: f"Run {run} has no predictions on the {split} split.")
    return rows.drop_duplicates("image_id")


def _index_in(table: pd.DataFrame, classes: ClassSet) -> None:
    """label_idx, pred_idx_a / _b in the comparison's class order (run B's own order may differ),
    correct_a / _b from them, and the flip bucket, in place."""
    position = classes.index
    for column in ("label", "pred_a", "pred_b"):
        unknown = sorted(set(table[column].astype(str)) - set(position))
        if unknown:
            raise ValueError(f"class {unknown[0]!r} in the predictions is not in the class set "
                             f"({describe_classes(classes)})")
    table["label_idx"] = table["label"].map(position).astype(int)
    for run in ("a", "b"):
        table[f"pred_idx_{run}"] = table[f"pred_{run}"].map(position).astype(int)
        table[f"correct_{run}"] = table[f"pred_idx_{run}"] == table["label_idx"]
    table["bucket"] = flip_buckets(table["correct_a"], table["correct_b"])


def flip_buckets(correct_a: pd.Series, correct_b: pd.Series) -> pd.Series:
    """Each image's bucket: both right, only A right, only B right, both wrong."""
    a, b = correct_a.to_numpy(dtype=bool), correct_b.to_numpy(dtype=bool)
    bucket = np.select([a & b, a & ~b, ~a & b], [BOTH_RIGHT, ONLY_A, ONLY_B], default=BOTH_WRONG)
    return pd.Series(bucket, index=correct_a.index, dtype="object")


def bucket_counts(comparison: Comparison) -> dict[str, int]:
    counts = comparison.table["bucket"].value_counts()
    return {bucket: int(counts.get(bucket, 0)) for bucket in BUCKETS}


def bucket_rows(comparison: Comparison, bucket: str) -> pd.DataFrame:
    if bucket not in BUCKETS:
        raise ValueError(f"unknown flip bucket {bucket!r}; valid: {', '.join(BUCKETS)}")
    return comparison.table[comparison.table["bucket"] == bucket]


def run_view(comparison: Comparison, run: str) -> pd.DataFrame:
    """One run's predictions of the compared images as a predictions table (label_idx, pred_idx,
    pred, confidence, correct, p_<class> when both runs have them, and the votes), for the functions
    written for one run."""
    table = comparison.table
    per_run = (*RUN_COLUMNS, *_probability_columns(comparison.classes))
    suffixed = [f"{column}_{side}" for column in per_run for side in ("a", "b")]
    view = table.drop(columns=[c for c in table.columns if c in suffixed] + ["bucket"])
    for column in per_run:
        if f"{column}_{run}" in table:
            view[column] = table[f"{column}_{run}"]
    return view


def difference_matrix(comparison: Comparison) -> np.ndarray:
    """B's confusion matrix minus A's (rows true, columns predicted, the comparison's class order)."""
    n, table = len(comparison.classes), comparison.table
    return (confusion_matrix(table["label_idx"], table["pred_idx_b"], n)
            - confusion_matrix(table["label_idx"], table["pred_idx_a"], n))


def cell_rows(comparison: Comparison, true: str, pred: str) -> pd.DataFrame:
    """The images behind one cell of the difference matrix: those of true class `true` that A or B
    predicted as `pred`, with a column change (ENTERED, LEFT or STAYED), entered first."""
    table = comparison.table
    of_class = table["label"] == true
    in_a, in_b = of_class & (table["pred_a"] == pred), of_class & (table["pred_b"] == pred)
    rows = table[in_a | in_b].copy()
    rows["change"] = np.select([~in_a[rows.index], ~in_b[rows.index]], [ENTERED, LEFT], default=STAYED)
    order = rows["change"].map({ENTERED: 0, LEFT: 1, STAYED: 2})
    return rows.assign(_order=order).sort_values(["_order", "image_id"], kind="stable").drop(columns="_order")


def cell_sentence(rows: pd.DataFrame, true: str, pred: str, classes: ClassSet) -> str:
    """'Anger → Sadness: run A 5, run B 3 (−2): 1 entered, 3 left, 2 in both'."""
    change = rows["change"].value_counts()
    entered, left, stayed = (int(change.get(k, 0)) for k in (ENTERED, LEFT, STAYED))
    count_a, count_b = left + stayed, entered + stayed
    return (f"{classes.display_name(true)} → {classes.display_name(pred)}: run A {count_a}, run B {count_b} "
            f"({signed(count_b - count_a)}): {entered} entered, {left} left, {stayed} in both")


def signed(value: float, fmt: str = "{:,.0f}") -> str:
    """'+3', '−2', '0' (a real minus sign)."""
    text = fmt.format(abs(value))
    return f"+{text}" if value > 0 else f"−{text}" if value < 0 else text


def accuracy_difference(correct_a, correct_b, *, n_resamples: int = N_RESAMPLES, confidence_level: float = 0.95,
                        seed: int = SEED, method: str = "BCa") -> dict:
    """B's accuracy minus A's with a paired bootstrap interval (scipy.stats.bootstrap, paired=True,
    seeded). Without discordant pairs every resample differs by 0: the interval is [0, 0] (scipy's BCa
    would give NaN there, with a warning); with fewer than 2 images there is no interval (NaN)."""
    a, b = np.asarray(correct_a, dtype=float), np.asarray(correct_b, dtype=float)
    result = {"difference": float(b.mean() - a.mean()) if len(a) else float("nan"), "images": len(a),
              "confidence_level": confidence_level, "n_resamples": n_resamples, "note": None}
    if len(a) < 2:
        return {**result, "low": float("nan"), "high": float("nan"), "note": "too few images for an interval"}
    if np.array_equal(a, b):
        return {**result, "low": 0.0, "high": 0.0, "note": "no discordant pairs: every resample differs by 0"}
    from scipy.stats import bootstrap  # scipy costs a second: only when there is something to resample

    with warnings.catch_warnings():  # a nearly degenerate sample: scipy warns, the interval is still given
        warnings.simplefilter("ignore")
        interval = bootstrap((a, b), _mean_difference, paired=True, vectorized=True, n_resamples=n_resamples,
                             confidence_level=confidence_level, method=method, rng=np.random.default_rng(seed),
                             batch=max(1, 20_000_000 // len(a))).confidence_interval  # bounded memory
    return {**result, "low": float(interval.low), "high": float(interval.high)}


def _mean_difference(a: np.ndarray, b: np.ndarray, axis: int = -1) -> np.ndarray:
    return b.mean(axis=axis) - a.mean(axis=axis)


def mcnemar(correct_a, correct_b) -> dict:
    """Exact McNemar test: b = images only A got right, c = only B; two-sided binomial test of c among
    the b + c discordant images against 1/2. No discordant image: p = 1 with a note, not an error."""
    a, b = np.asarray(correct_a, dtype=bool), np.asarray(correct_b, dtype=bool)
    only_a, only_b = int((a & ~b).sum()), int((~a & b).sum())
    if only_a + only_b == 0:
        return {"only_a": 0, "only_b": 0, "p_value": 1.0, "note": NO_DISCORDANT}
    from scipy.stats import binomtest

    return {"only_a": only_a, "only_b": only_b, "p_value": float(binomtest(only_b, only_a + only_b, 0.5).pvalue),
            "note": None}


def class_table(comparison: Comparison) -> pd.DataFrame:
    """Per true class: images, both runs' precision, recall (the class's accuracy) and F1, the
    discordant counts, the exact McNemar p-value and its Benjamini-Hochberg q-value across the classes
    that have images (a class without images has neither)."""
    from emotion_core.trends import benjamini_hochberg  # trends imports scipy (a second); this module does not

    table, names = comparison.table, list(comparison.classes.names)
    columns = {}
    for run in ("a", "b"):
        counts = confusion_matrix(table["label_idx"], table[f"pred_idx_{run}"], len(names))
        scores = scores_per_class(counts, names)
        columns.update({f"{score}_{run}": scores[score].to_numpy() for score in ("precision", "recall", "f1")})
    rows = []
    for name in names:
        of_class = table[table["label"] == name]
        test = mcnemar(of_class["correct_a"], of_class["correct_b"]) if len(of_class) else {}
        rows.append({"emotion": comparison.classes.display_name(name), "images": len(of_class),
                     "only_a": test.get("only_a", 0), "only_b": test.get("only_b", 0),
                     "p_value": test.get("p_value", float("nan"))})
    result = pd.DataFrame(rows).assign(**columns)
    tested = result["images"] > 0
    result["q_value"] = float("nan")
    result.loc[tested, "q_value"] = benjamini_hochberg(result.loc[tested, "p_value"].to_numpy())
    return result


def metric_table(comparison: Comparison) -> pd.DataFrame:
    """Accuracy, macro F1 and the emotion-aware metrics both runs have (emotion_core.emotion_metrics,
    through evaluation_metrics), recomputed on the compared images: metric, a, b, difference, winner
    (text, for people) and the numbers (value_a, value_b)."""
    scores = [_scores(evaluation_metrics(run_view(comparison, run), comparison.classes)) for run in ("a", "b")]
    rows = []
    for name, (kind, higher_is_better) in SCORES.items():
        value_a, value_b = scores[0].get(name), scores[1].get(name)
        if value_a is None or value_b is None:
            continue
        rows.append({"metric": name, "a": _shown(value_a, kind), "b": _shown(value_b, kind),
                     "difference": _shown(value_b - value_a, kind, signed_=True),
                     "winner": winner(value_a, value_b, higher_is_better), "value_a": value_a, "value_b": value_b})
    return pd.DataFrame(rows, columns=["metric", "a", "b", "difference", "winner", "value_a", "value_b"])


# metric -> (how shown, higher is better); those a run's metrics lack (e.g. ECC off Mikels' eight) are left out
SCORES = {
    "Accuracy": ("percent", True),
    "Macro F1": ("percent", True),
    "Polarity accuracy": ("percent", True),
    "Errors crossing polarity": ("percent", False),
    "ECC (Zhao et al. 2024)": ("ratio", True),
    "EMC (Zhao et al. 2024)": ("ratio", True),
    "Expected calibration error (15 bins)": ("percent", False),
    "Confidence vs vote agreement (Spearman ρ)": ("ratio", True),
    "p(label) vs agree share (Spearman ρ)": ("ratio", True),
    **{f"LDL {MEASURE_NAMES[m]}": ("ratio", higher) for m, higher in MEASURES.items()},
}


def _scores(metrics: dict) -> dict[str, float]:
    """The SCORES of one run's evaluation_metrics payload; a metric it lacks or leaves empty is absent."""
    polarity, calibration = metrics.get("polarity") or {}, metrics.get("calibration") or {}
    agreement = metrics.get("confidence_vs_agreement") or {}
    label_agreement, ldl = metrics.get(AGREEMENT_KEY) or {}, metrics.get(LDL_KEY) or {}
    values = dict(zip(SCORES, (metrics.get("accuracy"), metrics.get("macro_f1"), polarity.get("accuracy"),
                               polarity.get("cross_polarity_error_share"), metrics.get("ecc"), metrics.get("emc"),
                               calibration.get("ece"), agreement.get("spearman"), label_agreement.get("spearman"),
                               *(ldl.get(m) for m in MEASURES))))
    return {name: float(value) for name, value in values.items() if value is not None and np.isfinite(value)}


def winner(value_a: float, value_b: float, higher_is_better: bool = True) -> str:
    if np.isclose(value_a, value_b, rtol=0, atol=1e-12):
        return "tie"
    return "B" if (value_b > value_a) == higher_is_better else "A"


def _shown(value: float, kind: str, *, signed_: bool = False) -> str:
    if kind == "percent":
        return signed(value * 100, "{:.1f}") + " pp" if signed_ else display_value(value, "percent")
    return signed(value, "{:.3f}") if signed_ else f"{value:.3f}"


def flips_by_agreement(comparison: Comparison) -> pd.DataFrame:
    """Per vote level (disjoint: non-unanimous here excludes the strongly divided): images, the four
    buckets, B's net gain (only B right − only A right) and both accuracies. Levels without images
    are left out."""
    table = comparison.table
    rows = []
    for level in LEVELS:
        of_level = table[table["agreement_level"] == level]
        if of_level.empty:
            continue
        counts = of_level["bucket"].value_counts()
        rows.append({"level": LEVEL_NAMES[level], "images": len(of_level),
                     **{bucket: int(counts.get(bucket, 0)) for bucket in BUCKETS},
                     "net_gain": int(counts.get(ONLY_B, 0) - counts.get(ONLY_A, 0)),
                     "accuracy_a": float(of_level["correct_a"].mean()),
                     "accuracy_b": float(of_level["correct_b"].mean())})
    return pd.DataFrame(rows, columns=list(FLIP_COLUMNS))


def flips_sentence(flips: pd.DataFrame) -> str:
    """Where B's gains and losses come from, in words: 'Run B gets 7 images right that A got wrong and 3
    the other way round (net +4): +3 on unanimous images, +1 on strongly divided ones, ...'."""
    gained, lost = int(flips[ONLY_B].sum()), int(flips[ONLY_A].sum())
    if gained + lost == 0:
        return "No image flipped: both runs are right, or both wrong, on every image."
    parts = [f"{signed(row.net_gain)} on {row.level} images ({row.only_b} gained, {row.only_a} lost)"
             for row in flips.itertuples() if row.only_a or row.only_b]
    return (f"Run B gets {gained:,} images right that A got wrong and {lost:,} the other way round "
            f"(net {signed(gained - lost)}): " + "; ".join(parts) + ".")


def error_nearness(comparison: Comparison) -> pd.DataFrame:
    """Are a run's errors "nearer"? Per vote level (as flips_by_agreement) and run: its errors, their mean
    steps on Mikels' wheel from the label (Mikels' eight only), the mean share of the annotators' votes
    that went to the class it wrongly predicted (per-class vote distributions only: a wrong answer some
    annotators gave too), and the mean KL(votes || predicted) over all the level's images (distributions
    and both runs' probabilities only). Means over no errors are NaN; columns no run can fill are left out."""
    table, classes = comparison.table, comparison.classes
    steps = wheel_distances(classes)
    voted = voted_distributions(table, classes)
    per_run = {}
    for run in ("a", "b"):
        view = run_view(comparison, run)
        wrong = ~view["correct"].to_numpy(dtype=bool)
        label, pred = view["label_idx"].to_numpy(), view["pred_idx"].to_numpy()
        has_p = all(c in view for c in _probability_columns(classes))
        per_run[run] = {
            "wrong": wrong,
            "wheel": steps[label, pred].astype(float) if steps is not None else None,
            "voted_pred": voted[np.arange(len(view)), pred] if voted is not None else None,
            "kl": distances(view, classes)["kl"].to_numpy() if voted is not None and has_p else None}
    rows = []
    for level in LEVELS:
        of_level = (table["agreement_level"] == level).to_numpy()
        if not of_level.any():
            continue
        row = {"level": LEVEL_NAMES[level], "images": int(of_level.sum())}
        for run, values in per_run.items():
            errors = of_level & values["wrong"]
            row[f"errors_{run}"] = int(errors.sum())
            for key in NEARNESS_MEANS[:2]:  # over the run's errors
                row[f"{key}_{run}"] = _mean(values[key], errors)
            row[f"kl_{run}"] = _mean(values["kl"], of_level)
        rows.append(row)
    result = pd.DataFrame(rows, columns=list(NEARNESS_COLUMNS))
    unfilled = [f"{key}_{run}" for key in NEARNESS_MEANS for run in ("a", "b")
                if result[[f"{key}_a", f"{key}_b"]].isna().all(axis=None)]
    return result.drop(columns=unfilled)


def nearness_columns(nearness: pd.DataFrame) -> dict[str, Column]:
    """NEARNESS_COLUMNS that this error_nearness table has (for format_table)."""
    return {name: column for name, column in NEARNESS_COLUMNS.items() if name in nearness}


def _mean(values: np.ndarray | None, mask: np.ndarray) -> float:
    """The mean of values over the mask's finite entries; NaN when there are none (or no values)."""
    if values is None:
        return float("nan")
    chosen = values[mask]
    chosen = chosen[np.isfinite(chosen)]
    return float(chosen.mean()) if len(chosen) else float("nan")


def nearness_sentence(nearness: pd.DataFrame) -> str:
    """The divided images' answer in words: 'On the 12 strongly divided images run A makes 5 errors, run B 3;
    their errors lie 2.2 and 1.3 wheel steps from the label; ...'. '' when no image is divided."""
    divided = nearness[nearness["level"] == LEVEL_NAMES[STRONGLY_DIVIDED]]
    if divided.empty:
        return ""
    row = divided.iloc[0]
    parts = [f"On the {row['images']:,} strongly divided images run A makes {row['errors_a']:,} errors, "
             f"run B {row['errors_b']:,}"]
    for key, words, fmt in (("wheel", "their errors lie {} and {} wheel steps from the label", "{:.1f}"),
                            ("voted_pred", "{} and {} of the votes went to the class they wrongly chose", "{:.0%}"),
                            ("kl", "KL to the votes {} and {}", "{:.3f}")):
        if f"{key}_a" in row and not (pd.isna(row[f"{key}_a"]) and pd.isna(row[f"{key}_b"])):
            shown = ("–" if pd.isna(row[f"{key}_{r}"]) else fmt.format(row[f"{key}_{r}"]) for r in ("a", "b"))
            parts.append(words.format(*shown))
    return "; ".join(parts) + " (A, then B)."


def statistics(comparison: Comparison) -> dict:
    """Everything the Compare page and the report show of a comparison: metrics (metric_table), classes
    (class_table), ci (accuracy_difference), mcnemar, flips (flips_by_agreement), flips_sentence,
    nearness (error_nearness), nearness_sentence,
    difference (difference_matrix) and buckets (bucket_counts)."""
    correct_a, correct_b = comparison.table["correct_a"], comparison.table["correct_b"]
    flips, nearness = flips_by_agreement(comparison), error_nearness(comparison)
    return {"metrics": metric_table(comparison), "classes": class_table(comparison),
            "ci": accuracy_difference(correct_a, correct_b), "mcnemar": mcnemar(correct_a, correct_b),
            "flips": flips, "flips_sentence": flips_sentence(flips), "nearness": nearness,
            "nearness_sentence": nearness_sentence(nearness),
            "difference": difference_matrix(comparison), "buckets": bucket_counts(comparison)}


# sort key -> (column, ascending) for the keys that sort by one column of the comparison table
SORT_COLUMNS = {SORT_KEYS[1]: ("confidence_b", False), SORT_KEYS[2]: ("confidence_a", False),
                SORT_KEYS[3]: ("agreement", True)}


def sort_keys(rows: pd.DataFrame) -> tuple[str, ...]:
    """The SORT_KEYS these rows can be sorted by: the confidence keys only when both runs have a
    confidence column (align keeps a per-run column only when both runs have it)."""
    return tuple(key for key in SORT_KEYS if key not in SORT_COLUMNS or SORT_COLUMNS[key][0] in rows)


def sort_rows(rows: pd.DataFrame, key: str = SORT_KEYS[0]) -> pd.DataFrame:
    """Gallery order: flips first (only B right, only A right, both wrong, both right), a run's
    confidence, or the annotators' agreement; then image id."""
    if key not in sort_keys(rows):
        raise ValueError(f"cannot sort by {key!r} here; valid: {', '.join(sort_keys(rows))}")
    if key == SORT_KEYS[0]:
        order = rows["bucket"].map({ONLY_B: 0, ONLY_A: 1, BOTH_WRONG: 2, BOTH_RIGHT: 3})
        return rows.assign(_order=order).sort_values(["_order", "image_id"], kind="stable").drop(columns="_order")
    column, ascending = SORT_COLUMNS[key]
    return rows.sort_values([column, "image_id"], ascending=[ascending, True], na_position="last", kind="stable")
