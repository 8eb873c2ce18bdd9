"""A 2-D map of one split's embeddings (embeddings.npy), computed once per run and split and cached in
the run dir; the map's figure, and the selection on it turned back into image ids.

Method: rows scaled to unit length (Euclidean distance then ranks neighbours as cosine similarity does),
PCA to 50 dimensions, then UMAP (umap-learn, 15 neighbours); under SMALL_MAP points PCA to 2-D alone.
Chosen by bench/embedding_map.py on synthetic clustered 512-d float16 embeddings (8 classes, a 10-NN
class agreement of 0.61 in 512-d), CPU seconds on 2 threads (the wall clock was stretched by other work
on the shared cores), trustworthiness (10 neighbours, 2,000-point subsample) and the 10-NN class agreement
in 2-D over that in 512-d:

    22,000 points:  PCA 4 s, 0.66, 0.28 | UMAP 45 s, 0.860, 1.00 | openTSNE 48 s, 0.867, 1.02
                    | scikit-learn t-SNE 180 s, 0.870, 1.02
    118,000 points: PCA 3 s, 0.67, 0.28 | UMAP 98 s, 0.867, 0.99 | openTSNE 176 s, 0.871, 0.99

PCA is instant but mixes the classes the embedding keeps apart (0.28 of the agreement kept); the three
neighbour-graph layouts keep them equally well, and UMAP is the fastest at 118,000 (1.8x openTSNE).

The cache is run_dir/map_<split>.parquet (image_id, cam_index, x, y), written atomically, with the
versions of embeddings.npy and predictions.parquet it was made from (mtime in ns and size) in its
Parquet metadata: a re-evaluated run's map is computed again, an unchanged one never.
"""
from __future__ import annotations

import io
import json
import os
import re
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from emotion_core.fileio import atomic_path
from emotion_core.labels import ClassSet
from emotion_core.neighbours import rows_in_embedding_order, unit_rows
from emotion_core.runs import EMBEDDINGS_FILE, PREDICTIONS_FILE, load_embeddings
from emotion_core.votes import AGREEMENT_LEVELS, NO_VOTES, NON_UNANIMOUS, STRONGLY_DIVIDED, UNANIMOUS

METHOD = "pca50+umap"
MAP_VERSION = 1  # bump when the projection changes: maps cached by an older version are computed again
METADATA_KEY = b"emolens_map"
PCA_DIMENSIONS = 50  # PCA first: the layout's neighbour search is faster in 50-d and keeps the same neighbours
UMAP_NEIGHBOURS = 15  # umap-learn's default
SMALL_MAP = 100  # fewer points: PCA to 2-D alone (a neighbour-graph layout of so few points shows nothing more)
Progress = Callable[[float, str], None]  # (fraction done 0..1, what is being done)

TRUE_CLASS, PREDICTED_CLASS, CORRECTNESS, AGREEMENT = "true class", "predicted class", "correct / incorrect", \
    "agreement level"
COLOUR_BY = (TRUE_CLASS, PREDICTED_CLASS, CORRECTNESS, AGREEMENT)
# Tableau 10 (then more): a class has the same colour whether the map shows true or predicted classes.
CLASS_COLOURS = ("#4e79a7", "#f28e2b", "#e15759", "#76b7b2", "#59a14f", "#edc948", "#b07aa1", "#ff9da7",
                 "#9c755f", "#bab0ac", "#17becf", "#bcbd22", "#7f7f7f", "#8c564b", "#e377c2", "#1f77b4")
CORRECTNESS_COLOURS = {"correct": "#9ab6d1", "incorrect": "#d62728"}
AGREEMENT_COLOURS = {UNANIMOUS: "#2ca02c", NON_UNANIMOUS: "#ff9f1c", STRONGLY_DIVIDED: "#d62728", NO_VOTES: "#b0b0b0"}


def method_description(points: int) -> str:
    """How a map of this many points is made, in words for the page."""
    return "PCA" if points < SMALL_MAP else f"UMAP after PCA to {PCA_DIMENSIONS} dimensions"


def map_path(run_dir: str | os.PathLike, split: str) -> Path:
    return Path(run_dir) / f"map_{re.sub(r'[^A-Za-z0-9_-]', '_', split)}.parquet"


def _file_version(path: Path) -> str:
    stat = path.stat()
    return f"{stat.st_mtime_ns}:{stat.st_size}"


def _sources(run_dir: Path, split: str) -> dict:
    """What a cached map must have been made from to be used: both files' versions, the method, the split."""
    return {"version": MAP_VERSION, "method": METHOD, "split": split,
            "embeddings": _file_version(run_dir / EMBEDDINGS_FILE),
            "predictions": _file_version(run_dir / PREDICTIONS_FILE)}


def cached_map(run_dir: str | os.PathLike, split: str) -> pd.DataFrame | None:
    """The split's cached map if it was made from the run's current files by this version, else None."""
    import pyarrow.parquet as pq

    run_dir, path = Path(run_dir), map_path(run_dir, split)
    if not path.exists() or not (run_dir / EMBEDDINGS_FILE).exists():
        return None
    try:
        metadata = pq.read_schema(path).metadata or {}
        if json.loads(metadata.get(METADATA_KEY, b"{}")) != _sources(run_dir, split):
            return None
        return pd.read_parquet(path)
    except (OSError, ValueError):  # a damaged cache file is computed again, not an error
        return None


def split_map(run_dir: str | os.PathLike, split: str, *, progress: Progress | None = None) -> pd.DataFrame:
    """The split's map (image_id, cam_index, x, y; one row per prediction of the split, in the predictions'
    order): the cached one, else computed (progress called on the way) and cached. ValueError (one line)
    when the run has no embeddings, they do not match the predictions, or the split has no predictions."""
    cached = cached_map(run_dir, split)
    return cached if cached is not None else compute_map(run_dir, split, progress=progress)


def compute_map(run_dir: str | os.PathLike, split: str, *, progress: Progress | None = None) -> pd.DataFrame:
    """Compute the split's map and cache it (see split_map)."""
    run_dir = Path(run_dir)
    report = progress or (lambda fraction, text: None)
    if not (run_dir / EMBEDDINGS_FILE).exists():
        raise ValueError(f"the run has no {EMBEDDINGS_FILE}")
    sources = _sources(run_dir, split)  # before reading: a file replaced meanwhile leaves a stale cache, not a wrong one
    embeddings = load_embeddings(run_dir)
    predictions = _map_columns(run_dir / PREDICTIONS_FILE)
    if embeddings.ndim != 2:
        raise ValueError(f"{EMBEDDINGS_FILE} holds an array of shape {embeddings.shape}, not (N, d); evaluate the run again")
    rows_in_embedding_order(predictions, embeddings)  # only its checks: row i of the embeddings is cam_index i's
    rows = predictions.loc[predictions["split"] == split, ["image_id", "cam_index"]].reset_index(drop=True)
    if rows.empty:
        raise ValueError(f"the run has no predictions for split {split!r}")
    report(0.0, f"reading {len(rows):,} embeddings")
    xy = project(np.asarray(embeddings[rows["cam_index"].to_numpy()]), progress=report)
    table = rows.assign(x=xy[:, 0].astype(np.float32), y=xy[:, 1].astype(np.float32))
    _write_map(map_path(run_dir, split), table, sources)
    report(1.0, "done")
    return table


def _map_columns(path: Path) -> pd.DataFrame:
    """The predictions' image_id, split and cam_index (those present): all a map reads of a table that can
    hold a hundred columns."""
    import pyarrow.parquet as pq

    present = set(pq.read_schema(path).names)
    return pd.read_parquet(path, columns=[c for c in ("image_id", "split", "cam_index") if c in present])


def _write_map(path: Path, table: pd.DataFrame, sources: dict) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    arrow = pa.Table.from_pandas(table, preserve_index=False)
    arrow = arrow.replace_schema_metadata({**(arrow.schema.metadata or {}), METADATA_KEY: json.dumps(sources)})
    with atomic_path(path) as tmp:
        pq.write_table(arrow, tmp)


def project(embeddings: np.ndarray, *, progress: Progress | None = None, seed: int = 0) -> np.ndarray:
    """(n, 2) float32 coordinates of (n, d) embeddings (the method: see the module docstring). Any n >= 1 works: fewer than
    SMALL_MAP points are laid out by PCA alone."""
    from sklearn.decomposition import PCA

    report = progress or (lambda fraction, text: None)
    vectors = unit_rows(embeddings)
    if not np.isfinite(vectors).all():
        raise ValueError(f"{EMBEDDINGS_FILE} holds NaN or infinite values; evaluate the run again")
    n, dim = vectors.shape
    if n == 0:
        return np.zeros((0, 2), dtype=np.float32)
    if not np.any(vectors != vectors[0]):  # one point, or every row the same: one spot
        return np.zeros((n, 2), dtype=np.float32)
    if n < 3:  # two different points: apart on a line
        return np.column_stack([np.linspace(-1, 1, n), np.zeros(n)]).astype(np.float32)
    if n < SMALL_MAP:
        return PCA(n_components=2, random_state=seed).fit_transform(vectors).astype(np.float32)
    report(0.02, f"PCA to {PCA_DIMENSIONS} dimensions")
    components = min(PCA_DIMENSIONS, dim, n - 1)
    reduced = PCA(n_components=components, random_state=seed).fit_transform(vectors).astype(np.float32)
    return _layout(reduced, report, seed)


def _layout(reduced: np.ndarray, report: Progress, seed: int) -> np.ndarray:
    """UMAP of the PCA-reduced rows. No random_state: a seeded UMAP runs on one thread (the map is computed
    once and cached, so a second computation's different but equivalent layout matters less than time)."""
    global _umap_compiled
    # A process's first UMAP compiles its numba code (about 15 s on 2 cores) before the neighbour search:
    # say so, or the bar looks stuck.
    first = "compiling UMAP (first map on this server, ~20 s), then " if not _umap_compiled else ""
    report(0.1, f"{first}nearest neighbours of {len(reduced):,} points")
    import umap  # numba and pynndescent: seconds to import, imported only when a map is computed

    epochs = _EpochProgress(report, 0.5, 0.98)
    model = umap.UMAP(n_neighbors=min(UMAP_NEIGHBOURS, len(reduced) - 1), min_dist=0.1, n_components=2,
                      tqdm_kwds={"disable": False, "file": epochs, "bar_format": "{n}/{total}", "mininterval": 0.5})
    xy = np.asarray(model.fit_transform(reduced), dtype=np.float32)
    _umap_compiled = True
    return xy


_umap_compiled = False  # whether this process has run UMAP (compiled its numba code) yet


class _EpochProgress(io.TextIOBase):
    """The file umap's epoch bar (tqdm, bar_format '{n}/{total}') writes to: each line reports its fraction."""

    def __init__(self, report: Progress, start: float, end: float):
        super().__init__()
        self.report, self.start, self.end = report, start, end

    def write(self, text: str) -> int:
        found = re.search(r"(\d+)/(\d+)", text)
        if found and int(found.group(2)) > 0:
            done, total = int(found.group(1)), int(found.group(2))
            self.report(self.start + (self.end - self.start) * done / total, f"layout: epoch {done} of {total}")
        return len(text)


# ---- the figure and its selection


def colour_groups(table: pd.DataFrame, colour_by: str, classes: ClassSet) -> list[tuple[str, np.ndarray, str]]:
    """(legend name, row mask, colour) per non-empty group of the map's rows (table: the map joined with
    its predictions: label, pred, correct, agreement_level), in the class or level order."""
    if colour_by in (TRUE_CLASS, PREDICTED_CLASS):
        column = table["label" if colour_by == TRUE_CLASS else "pred"].astype(str).to_numpy()
        groups = [(classes.display_name(name), column == name, CLASS_COLOURS[i % len(CLASS_COLOURS)])
                  for i, name in enumerate(classes.names)]
        unknown = ~np.isin(column, classes.names)  # a class the run's set lacks: still drawn
        groups.append(("other", unknown, "#7f7f7f"))
    elif colour_by == CORRECTNESS:
        correct = (table["label"].astype(str) == table["pred"].astype(str)).to_numpy()
        groups = [("correct", correct, CORRECTNESS_COLOURS["correct"]),
                  ("incorrect", ~correct, CORRECTNESS_COLOURS["incorrect"])]
    elif colour_by == AGREEMENT:
        levels = table["agreement_level"].astype(str).to_numpy() if "agreement_level" in table else \
            np.full(len(table), NO_VOTES)
        groups = [(level, levels == level, AGREEMENT_COLOURS[level]) for level in AGREEMENT_LEVELS]
    else:
        raise ValueError(f"unknown colouring {colour_by!r}; valid: {', '.join(COLOUR_BY)}")
    return [group for group in groups if group[1].any()]


def with_predictions(points: pd.DataFrame, predictions: pd.DataFrame) -> pd.DataFrame:
    """The map's points joined with their prediction rows (by cam_index: unique even where an image id is
    not), in the map's order; points without a prediction row are left out."""
    columns = [c for c in ("cam_index", "label", "pred", "correct", "agreement_level", "confidence") if c in predictions]
    return points[["image_id", "cam_index", "x", "y"]].merge(predictions[columns], on="cam_index", how="inner")


def marker_size(points: int) -> float:
    """Smaller markers for more points: 118,000 points of 7 px would be one blot."""
    return 7.0 if points <= 2_000 else 5.0 if points <= 20_000 else 3.0


def map_figure(table: pd.DataFrame, colour_by: str, classes: ClassSet):
    """One WebGL scatter (go.Scattergl) per colour group, customdata = image_id (what a box or lasso
    selection returns), axes without units (a map's coordinates mean nothing on their own)."""
    import plotly.graph_objects as go

    figure = go.Figure()
    size = marker_size(len(table))
    for name, mask, colour in colour_groups(table, colour_by, classes):
        rows = table[mask]
        figure.add_trace(go.Scattergl(
            x=rows["x"].to_numpy(), y=rows["y"].to_numpy(), mode="markers", name=f"{name} ({len(rows):,})",
            customdata=rows["image_id"].astype(str).to_numpy(),
            marker={"size": size, "color": colour, "opacity": 0.75, "line": {"width": 0}},
            hovertemplate=f"%{{customdata}}<br>{name}<extra></extra>"))
    hidden = {"showticklabels": False, "showgrid": False, "zeroline": False, "title": None}
    figure.update_layout(xaxis=hidden, yaxis=hidden, height=640, dragmode="select", uirevision="map",
                         legend={"title": colour_by, "itemsizing": "constant"},
                         margin={"l": 10, "r": 10, "t": 30, "b": 10})
    return figure


def selection_summary(rows: pd.DataFrame, classes: ClassSet) -> str:
    """'37 images selected: 21 errors (57%) · most labelled Sadness (12) · most predicted Fear (15)'."""
    count = len(rows)
    if count == 0:
        return "No images selected"
    errors = int((rows["label"].astype(str) != rows["pred"].astype(str)).sum())
    parts = [f"{count:,} image{'s' if count != 1 else ''} selected: {errors:,} error{'s' if errors != 1 else ''} "
             f"({errors / count:.0%})"]
    for column, verb in (("label", "labelled"), ("pred", "predicted")):
        counts = rows[column].astype(str).value_counts()
        parts.append(f"most {verb} {classes.display_name(counts.index[0])} ({counts.iloc[0]:,})")
    return " · ".join(parts)


def image_ids_from_selection(selection, point_ids: Sequence[Sequence[str]] | None = None) -> list[str]:
    """The image ids of a plotly selection as st.plotly_chart returns it ({"selection": {"points": [...]}}
    or the inner {"points": [...]}), each once, in selection order. A point's id is its customdata (a
    string, or the first item of a list); without customdata, point_ids[curve_number][point_index].
    None or an empty selection: []."""
    if not selection:
        return []
    inner = selection.get("selection", selection)
    points = (inner or {}).get("points") or []
    ids: dict[str, None] = {}
    for point in points:
        image_id = _point_id(point, point_ids)
        if image_id is not None:
            ids[image_id] = None
    return list(ids)


def _point_id(point: dict, point_ids: Sequence[Sequence[str]] | None) -> str | None:
    custom = point.get("customdata")
    if isinstance(custom, (list, tuple)):
        custom = custom[0] if custom else None
    if custom is not None:
        return str(custom)
    curve, index = point.get("curve_number"), point.get("point_index", point.get("point_number"))
    if point_ids is None or curve is None or index is None or not 0 <= curve < len(point_ids) \
            or not 0 <= index < len(point_ids[curve]):
        return None
    return str(point_ids[curve][index])
