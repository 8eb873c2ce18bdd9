"""Counting and testing trends in confusion cells: the paper's discussion, automated.

A cell (true -> predicted) is compared with the reference group: the images of the same
true class that were classified correctly. Boolean features (tags, boolean attributes, one
value of a dataset's categorical attribute) get counts, shares, lift and a one-sided Fisher
exact test; continuous attributes (automatic or the dataset's) a two-sided Mann-Whitney U
test. Discovery adjusts all p-values with Benjamini-Hochberg.
"""
from __future__ import annotations

import numpy as np
import pandas as pd
from scipy.stats import fisher_exact, mannwhitneyu

from emotion_core.attributes import BOOLEAN_ATTRIBUTES, CONTINUOUS_ATTRIBUTES
from emotion_core.confusion import cell_rows, cell_summary
from emotion_core.dataset_attributes import (
    attribute_name,
    categorical_columns,
    numeric_columns,
    top_value_rows,
)
from emotion_core.labels import FI_CLASSES, ClassSet
from emotion_core.report import Column

AUTO, TAG, DATA = "auto: ", "tag: ", "data: "  # DATA: the dataset's own attributes (EmoSet, Emotion6)
# A categorical dataset attribute (EmoSet's scene, objects, ...) is tested value by value: its most
# frequent values over the whole table, so that the tests stay few and each value has images to count.
TOP_VALUES = 10
# How the dashboard shows cell_trend_table and the discovery table (emotion_core.report.format_table).
# The reference group is the correctly classified images of the cell's true class; a feature found in
# the cell and never in the reference has an infinite lift.
TREND_COLUMNS = {"feature": Column("Feature"), "in_cell": Column("In the cell", "count"),
                 "cell_share": Column("Share of the cell", "percent"),
                 "in_reference": Column("In the correct images", "count"),
                 "reference_share": Column("Share of the correct images", "percent"),
                 "lift": Column("Lift", "ratio", infinite="only in errors"),
                 "p_value": Column("Fisher p-value (one-sided)", "p")}
STANDOUT_COLUMNS = {"feature": Column("Feature"), "cell_vs_reference": Column("Cell vs correct images"),
                    "lift": Column("Lift", "ratio", infinite="only in errors"), "p_value": Column("p-value", "p"),
                    "q_value": Column("q-value (Benjamini-Hochberg)", "p")}
AUTO_NAMES = {"monochrome": "monochrome", "warm": "red/warm tones", "has_face": "human face",
              "has_cat_face": "cat face"}


def benjamini_hochberg(p_values: np.ndarray | list[float]) -> np.ndarray:
    """Benjamini-Hochberg adjusted p-values (q-values), in the input order."""
    p = np.asarray(p_values, dtype=float)
    if p.size == 0:
        return p
    order = np.argsort(p)
    ranked = p[order] * p.size / np.arange(1, p.size + 1)
    adjusted = np.minimum.accumulate(ranked[::-1])[::-1].clip(max=1.0)
    result = np.empty_like(adjusted)
    result[order] = adjusted
    return result


def image_features(predictions: pd.DataFrame, attributes: pd.DataFrame | None = None,
                   tags: pd.DataFrame | None = None, *, top_values: int = TOP_VALUES) -> pd.DataFrame:
    """Boolean features per image_id: 'auto: monochrome', ..., 'tag: graveyard', ..., and for each
    categorical dataset attribute in the predictions its top_values most frequent values:
    'data: scene = mountain/snowy', 'data: object = Sky', ..."""
    features = pd.DataFrame(index=pd.Index(predictions["image_id"].unique(), name="image_id"))
    if attributes is not None and len(attributes):
        table = attributes.drop_duplicates("image_id").set_index("image_id")
        for column in BOOLEAN_ATTRIBUTES:
            if column in table:
                features[AUTO + AUTO_NAMES[column]] = table[column].reindex(features.index).fillna(False).astype(bool)
    if tags is not None and len(tags):
        tagged = pd.crosstab(tags["image_id"], tags["tag"]).gt(0)
        for tag in sorted(tagged.columns):
            features[TAG + tag] = tagged[tag].reindex(features.index).fillna(False).astype(bool)
    data = dataset_features(predictions, features.index, top_values)
    return pd.concat([features, data], axis=1) if len(data.columns) else features


def dataset_features(predictions: pd.DataFrame, index: pd.Index, top_values: int = TOP_VALUES) -> pd.DataFrame:
    """'data: <attribute> = <value>' for the top_values most frequent values of each categorical dataset
    attribute (lists such as EmoSet's objects: an image has the value when its list holds it).
    `index` is predictions' image_ids in order of first appearance, as image_features makes it."""
    columns, features = categorical_columns(predictions), {}
    if columns:
        images = predictions.drop_duplicates("image_id")  # row i is index[i]
        for column in columns:
            for value, rows in top_value_rows(images[column], top_values).items():
                having = np.zeros(len(index), dtype=bool)
                having[rows] = True
                features[f"{DATA}{attribute_name(column)} = {value}"] = having
    return pd.DataFrame(features, index=index)


def reference_rows(predictions: pd.DataFrame, true: str) -> pd.DataFrame:
    return predictions[(predictions["label"] == true) & (predictions["pred"] == true)]


def cell_trend_table(predictions: pd.DataFrame, features: pd.DataFrame, true: str, pred: str) -> pd.DataFrame:
    """Per feature: count and share in the cell and in the reference group, lift, Fisher p."""
    cell = features.reindex(cell_rows(predictions, true, pred)["image_id"]).fillna(False).astype(bool)
    reference = features.reindex(reference_rows(predictions, true)["image_id"]).fillna(False).astype(bool)
    rows = [_boolean_test(name, cell[name], reference[name]) for name in features.columns]
    table = pd.DataFrame(rows, columns=["feature", "in_cell", "cell_share", "in_reference", "reference_share",
                                        "lift", "p_value"])
    return table.sort_values(["p_value", "lift"], ascending=[True, False], kind="stable").reset_index(drop=True)


def _boolean_test(name: str, cell: pd.Series, reference: pd.Series) -> dict:
    a, n, b, m = int(cell.sum()), len(cell), int(reference.sum()), len(reference)
    cell_share = a / n if n else float("nan")
    reference_share = b / m if m else float("nan")
    if n and m:
        p_value = float(fisher_exact([[a, n - a], [b, m - b]], alternative="greater")[1])
    else:
        p_value = float("nan")
    lift = cell_share / reference_share if reference_share else (float("inf") if a else float("nan"))
    return {"feature": name, "in_cell": a, "cell_share": cell_share, "in_reference": b,
            "reference_share": reference_share, "lift": lift, "p_value": p_value}


def discover(predictions: pd.DataFrame, features: pd.DataFrame, attributes: pd.DataFrame | None = None, *,
             min_images: int = 3) -> pd.DataFrame:
    """Every off-diagonal cell with >= min_images: each feature tested against the cell's
    reference group; q-values control the false discovery rate over all tests at once."""
    continuous = _continuous_table(attributes, features.index, predictions)
    results = []
    for (true, pred), rows in predictions[~predictions["correct"]].groupby(["label", "pred"]):
        if len(rows) < min_images:
            continue
        table = cell_trend_table(predictions, features, true, pred)
        table["kind"] = "share"
        results.append(table.assign(true=true, pred=pred, cell_images=len(rows)))
        if continuous is not None:
            results.append(_continuous_tests(continuous, predictions, true, pred).assign(cell_images=len(rows)))
    results = [r for r in results if len(r)]
    if not results:
        return pd.DataFrame(columns=["true", "pred", "feature", "kind", "lift", "p_value", "q_value"])
    found = pd.concat(results, ignore_index=True)
    found["cell_vs_reference"] = [_effect(row) for row in found.itertuples()]
    tested = found["p_value"].notna()
    found["q_value"] = np.nan
    found.loc[tested, "q_value"] = benjamini_hochberg(found.loc[tested, "p_value"].to_numpy())
    return found.sort_values(["true", "pred", "q_value", "p_value"], na_position="last",
                             kind="stable").reset_index(drop=True)


def _effect(row) -> str:
    """'100.0% vs 7.1%' for shares, 'median 0.12 vs 0.45' for continuous attributes."""
    if row.kind == "median":
        return f"median {row.cell_median:.3g} vs {row.reference_median:.3g}"
    return f"{row.cell_share:.1%} vs {row.reference_share:.1%}"


def _continuous_table(attributes: pd.DataFrame | None, index: pd.Index,
                      predictions: pd.DataFrame) -> pd.DataFrame | None:
    """The continuous features per image_id, named as features: 'auto: brightness', ..., then the
    dataset's numbers ('data: brightness', 'data: valence', ...); None when there are none."""
    parts = []
    if attributes is not None and len(attributes):
        columns = [c for c in CONTINUOUS_ATTRIBUTES if c in attributes]
        table = attributes.drop_duplicates("image_id").set_index("image_id")[columns]
        parts.append(table.rename(columns=lambda c: AUTO + c).reindex(index))
    numbers = numeric_columns(predictions)
    if numbers:
        table = predictions.drop_duplicates("image_id").set_index("image_id")[numbers].astype("float64")
        parts.append(table.rename(columns=lambda c: DATA + attribute_name(c)).reindex(index))
    return pd.concat(parts, axis=1) if parts else None


def _continuous_tests(values: pd.DataFrame, predictions: pd.DataFrame, true: str, pred: str) -> pd.DataFrame:
    cell = values.reindex(cell_rows(predictions, true, pred)["image_id"])
    reference = values.reindex(reference_rows(predictions, true)["image_id"])
    rows = []
    for column in values.columns:
        x, y = cell[column].dropna(), reference[column].dropna()
        if len(x) < 2 or len(y) < 2 or (x.nunique() == 1 and y.nunique() == 1 and x.iloc[0] == y.iloc[0]):
            continue
        p_value = float(mannwhitneyu(x, y, alternative="two-sided")[1])
        rows.append({"true": true, "pred": pred, "feature": column, "kind": "median",
                     "cell_median": float(x.median()), "reference_median": float(y.median()),
                     "in_cell": len(x), "in_reference": len(y), "p_value": p_value})
    return pd.DataFrame(rows)


def standouts(discovered: pd.DataFrame, true: str, pred: str, *, q_max: float = 0.1, top: int = 5) -> pd.DataFrame:
    """'What stands out in this cell': its findings with q <= q_max that are over-represented
    (share features with lift > 1) or shifted (continuous features)."""
    rows = discovered[(discovered["true"] == true) & (discovered["pred"] == pred) & (discovered["q_value"] <= q_max)]
    rows = rows[(rows["kind"] == "median") | (rows["lift"] > 1)]
    return rows.head(top)


# ---- the paper's paragraphs ----------------------------------------------------------------

def cell_paragraph(predictions: pd.DataFrame, features: pd.DataFrame, true: str, pred: str,
                   table: pd.DataFrame | None = None, *, classes: ClassSet = FI_CLASSES) -> str:
    """'**Anger misclassified as Sadness:** Out of the 16 misclassified, 11 have a
    non-unanimous vote and 7 a strongly divided vote. 11 are monochrome (...)'."""
    summary = cell_summary(cell_rows(predictions, true, pred))
    table = cell_trend_table(predictions, features, true, pred) if table is None else table
    n_reference = len(reference_rows(predictions, true))
    text = (f"**{classes.display_name(true)} misclassified as {classes.display_name(pred)}:** Out of the {summary['images']} "
            f"misclassified, {summary['non_unanimous']} have a non-unanimous vote and "
            f"{summary['strongly_divided']} a strongly divided vote.")
    for _, row in table[table["in_cell"] > 0].sort_values("in_cell", ascending=False, kind="stable").iterrows():
        if n_reference:
            against = (f"vs {row['reference_share']:.0%} of the {n_reference} correctly classified "
                       f"{classes.display_name(true)} images; Fisher p = {row['p_value']:.2g}")
        else:  # nothing to compare with (e.g. a small dev split): no share, no test
            against = f"no {classes.display_name(true)} image of this split is correctly classified to compare with"
        text += f" {row['in_cell']} {_describe(row['feature'])} ({row['cell_share']:.0%}, {against})."
    return text


def _describe(feature: str) -> str:
    if feature.startswith(AUTO):
        return f"are {feature.removeprefix(AUTO)} (automatic)"
    if feature.startswith(DATA):
        return f"have {short_name(feature)}"
    return f"are tagged “{feature.removeprefix(TAG)}”"


def short_name(feature: str) -> str:
    """A feature as a sentence names it: 'monochrome', 'graveyard', 'scene mountain/snowy (dataset)',
    'brightness (dataset)'."""
    if feature.startswith(DATA):
        attribute, _, value = feature.removeprefix(DATA).partition(" = ")
        return f"{attribute} {value} (dataset)" if value else f"{attribute} (dataset)"
    return feature.removeprefix(AUTO).removeprefix(TAG)


def markdown_report(predictions: pd.DataFrame, features: pd.DataFrame, cells: list[tuple[str, str]],
                    discovered: pd.DataFrame | None = None, *, classes: ClassSet = FI_CLASSES) -> str:
    parts = ["# Error analysis\n"]
    for true, pred in cells:
        parts.append(cell_paragraph(predictions, features, true, pred, classes=classes))
        if discovered is not None:
            found = standouts(discovered, true, pred)
            if len(found):
                names = ", ".join(f"{short_name(r.feature)} (q = {r.q_value:.2g})"
                                  for r in found.itertuples())
                parts.append(f"What stands out (Benjamini-Hochberg q ≤ 0.1): {names}.")
        parts.append("")
    return "\n\n".join(parts).rstrip() + "\n"


def error_cells(predictions: pd.DataFrame, min_images: int = 1, *, classes: ClassSet = FI_CLASSES) -> list[tuple[str, str]]:
    """Off-diagonal cells with at least min_images, largest first."""
    counts = predictions[~predictions["correct"]].groupby(["label", "pred"]).size()
    counts = counts[counts >= min_images].sort_values(ascending=False, kind="stable")
    return [(t, p) for t, p in counts.index if t in classes and p in classes]


def cells_csv(predictions: pd.DataFrame, features: pd.DataFrame, cells: list[tuple[str, str]]) -> pd.DataFrame:
    """The trend tables of several cells stacked, with the cell's vote counts."""
    frames = []
    for true, pred in cells:
        summary = cell_summary(cell_rows(predictions, true, pred))
        frames.append(cell_trend_table(predictions, features, true, pred).assign(
            true=true, pred=pred, images=summary["images"], non_unanimous=summary["non_unanimous"],
            strongly_divided=summary["strongly_divided"]))
    if not frames:
        return pd.DataFrame()
    table = pd.concat(frames, ignore_index=True)
    first = ["true", "pred", "images", "non_unanimous", "strongly_divided"]
    return table[first + [c for c in table.columns if c not in first]]
