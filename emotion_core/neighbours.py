"""Exact cosine nearest neighbours over a run's embeddings (embeddings.npy: the pooled features that
enter the head, one row per prediction, row i for cam_index i).

Exact, with numpy: the embeddings are L2-normalised once (float32), a query is one matrix-vector
product and an argpartition. Measured with bench/neighbours_latency.py at 118,000 x 512 on 2 cores: about
6 ms per query (25 ms while other jobs loaded the machine), against 75 ms for scikit-learn's brute-force
NearestNeighbors(metric="cosine"), which computes the cosine distances afresh on every query; about 11 ms
through neighbours_of, the pages' path (the id lookup and split mask over the whole predictions table). numpy
only: the dashboard's pages import this module without torch, scipy or scikit-learn.
"""
from __future__ import annotations

import os
import shlex
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import pandas as pd

from emotion_core.labels import ClassSet
from emotion_core.runs import EMBEDDINGS_FILE, PREDICTIONS_FILE, is_imported_predictions, load_metrics

SPLITS = ("train", "dev", "test")
SPLIT_NOUNS = {"train": "training images", "dev": "dev images", "test": "test images"}
ZERO_EMBEDDING_NOTE = ("Its embedding is all zeros (none of the features the head reads responds to it), so no "
                       "image is more similar to it than another: no neighbours.")


class NeighbourIndex:
    """Build once per run (the normalised copy: N x d float32); query with one or many vectors."""

    def __init__(self, embeddings: np.ndarray):
        vectors = np.asarray(embeddings, dtype=np.float32)
        if vectors.ndim != 2:
            raise ValueError(f"embeddings of shape {vectors.shape}; expected (N, d)")
        if not np.isfinite(vectors).all():
            bad = np.flatnonzero(~np.isfinite(vectors).all(axis=1))
            raise ValueError(f"{len(bad)} embeddings hold NaN or infinite values (first: row {bad[0]})")
        self.unit = unit_rows(vectors)  # (N, d) float32, rows of length 1 (0 for an all-zero row)

    def __len__(self) -> int:
        return len(self.unit)

    @property
    def dim(self) -> int:
        return self.unit.shape[1]

    def query(self, vectors: np.ndarray, k: int, *, candidates: np.ndarray | None = None,
              exclude: Iterable[int] | None = None) -> tuple[np.ndarray, np.ndarray]:
        """The k most cosine-similar rows for each query vector, most similar first (ties: lower row first).

        vectors: (d,) or (q, d). candidates: the rows to search (indices or a boolean mask over all rows;
        None: all). exclude: rows never returned (the image itself). Returns (rows (q, k'), similarities
        (q, k')) with k' = min(k, rows left to search): fewer than asked is not an error."""
        if k < 1:
            raise ValueError(f"k must be at least 1, not {k}")
        queries = np.asarray(vectors, dtype=np.float32)
        queries = queries[None] if queries.ndim == 1 else queries
        if queries.ndim != 2 or queries.shape[1] != self.dim:
            raise ValueError(f"query vectors of shape {np.shape(vectors)}; the index holds {self.dim}-d embeddings")
        searched = self._searched_rows(candidates, exclude)
        similarities = unit_rows(queries) @ self.unit.T  # (q, N): one pass over the index
        if searched is not None:
            similarities = similarities[:, searched]
        kept = min(k, similarities.shape[1])
        if kept == 0:
            return np.empty((len(queries), 0), dtype=np.int64), np.empty((len(queries), 0), dtype=np.float32)
        top = np.argpartition(-similarities, kept - 1, axis=1)[:, :kept]  # the kept largest, unordered
        top_similarities = np.take_along_axis(similarities, top, axis=1)
        rows = top if searched is None else searched[top]
        order = np.lexsort((rows, -top_similarities), axis=1)  # by similarity, then row: deterministic ties
        return np.take_along_axis(rows, order, axis=1).astype(np.int64), np.take_along_axis(top_similarities, order, 1)

    def _searched_rows(self, candidates, exclude) -> np.ndarray | None:
        """Row indices to search, in increasing order (None: every row)."""
        if candidates is None and exclude is None:
            return None
        mask = np.ones(len(self), dtype=bool) if candidates is None else _as_mask(candidates, len(self))
        if exclude is not None:
            excluded = np.asarray(list(exclude), dtype=np.int64)
            mask[excluded[(excluded >= 0) & (excluded < len(self))]] = False
        return np.flatnonzero(mask)


def unit_rows(vectors: np.ndarray) -> np.ndarray:
    """float32 rows of length 1 (all-zero rows stay zero): Euclidean distance then ranks as cosine does."""
    vectors = np.asarray(vectors, dtype=np.float32)
    return vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), np.finfo(np.float32).tiny)


def _as_mask(candidates: np.ndarray, size: int) -> np.ndarray:
    candidates = np.asarray(candidates)
    if candidates.dtype == bool:
        if candidates.shape != (size,):
            raise ValueError(f"a candidate mask of {candidates.shape[0]} rows for {size} embeddings")
        return candidates.copy()
    mask = np.zeros(size, dtype=bool)
    mask[candidates.astype(np.int64)] = True
    return mask


def rows_in_embedding_order(predictions: pd.DataFrame, embeddings: np.ndarray | NeighbourIndex) -> pd.DataFrame:
    """The predictions reordered so that position i is the row with cam_index i, embeddings row i's image
    (as they are already after an evaluation); a one-line ValueError when the two cannot belong together."""
    if len(embeddings) != len(predictions):
        raise ValueError(f"{EMBEDDINGS_FILE} has {len(embeddings)} rows but {PREDICTIONS_FILE} has "
                         f"{len(predictions)}: they are from different evaluations; evaluate the run again")
    if "cam_index" not in predictions:
        raise ValueError(f"{PREDICTIONS_FILE} has no cam_index column to match the embeddings' rows")
    cam_index = predictions["cam_index"].to_numpy()
    in_order = np.arange(len(predictions))
    if np.array_equal(cam_index, in_order):
        return predictions
    order = np.argsort(cam_index, kind="stable")
    if not np.array_equal(cam_index[order], in_order):
        raise ValueError(f"{PREDICTIONS_FILE}'s cam_index is not 0..{len(predictions) - 1} once each, so the "
                         f"embeddings' rows cannot be matched; evaluate the run again")
    return predictions.iloc[order]


def neighbours_of(predictions: pd.DataFrame, embeddings: np.ndarray | NeighbourIndex, *, image_id: str | None = None,
                  vector: np.ndarray | None = None, k: int = 10, splits: Iterable[str] | None = None) -> pd.DataFrame:
    """The k evaluated images most similar to one image of the run (image_id; itself left out) or to an
    embedding (vector: an upload), as their prediction rows, most similar first, with a `similarity`
    column (cosine, 1 = same direction). predictions: the run's whole table; splits: where to look
    (None: every evaluated split). Fewer than k rows when fewer images are there; attrs["searched"]
    holds how many were searched. An all-zero embedding has no direction to compare: no rows, and
    attrs["note"] says so (shortfall_note returns it)."""
    if (image_id is None) == (vector is None):
        raise ValueError("give exactly one of image_id and vector")
    index = embeddings if isinstance(embeddings, NeighbourIndex) else NeighbourIndex(embeddings)
    by_row = rows_in_embedding_order(predictions, index)
    searched = np.ones(len(by_row), dtype=bool)
    if splits is not None:
        searched = by_row["split"].isin(_valid_splits(splits)).to_numpy(copy=True)
    if image_id is not None:
        own = np.flatnonzero(by_row["image_id"].to_numpy() == image_id)
        if not len(own):
            raise ValueError(f"image {image_id!r} is not among the run's evaluated images")
        vector, searched[own] = index.unit[own[0]], False
    if not np.any(np.asarray(vector, dtype=np.float32)):  # cosine similarity 0 to every image: no order
        found = by_row.iloc[:0].reset_index(drop=True).assign(similarity=np.float64(0))
        found.attrs.update(searched=int(searched.sum()), note=ZERO_EMBEDDING_NOTE)
        return found
    rows, similarities = index.query(vector, k, candidates=searched)
    found = by_row.iloc[rows[0]].reset_index(drop=True)
    found["similarity"] = similarities[0].astype(np.float64)
    found.attrs["searched"] = int(searched.sum())
    return found


def _valid_splits(splits: Iterable[str]) -> list[str]:
    splits = [splits] if isinstance(splits, str) else list(splits)
    unknown = [s for s in splits if s not in SPLITS]
    if unknown:
        raise ValueError(f"unknown split {unknown[0]!r}; valid: {', '.join(SPLITS)}")
    return splits


def shortfall_note(neighbours: pd.DataFrame, k: int, splits: Iterable[str] | None = None) -> str | None:
    """One line when fewer than k neighbours came back (None otherwise): how many there were to search, or
    neighbours_of's note (an all-zero embedding)."""
    if neighbours.attrs.get("note"):
        return neighbours.attrs["note"]
    if len(neighbours) >= k:
        return None
    where = _where(splits)
    if len(neighbours) == 0:
        return f"No other evaluated {where} in this run to compare with."
    return f"Only {len(neighbours)} other evaluated {where} in this run: showing all of them (asked for {k})."


def _where(splits: Iterable[str] | None) -> str:
    splits = [splits] if isinstance(splits, str) else list(splits or [])
    return SPLIT_NOUNS[splits[0]] if len(splits) == 1 and splits[0] in SPLIT_NOUNS else "images"


def label_summary(neighbours: pd.DataFrame, classes: ClassSet, given_label: str | None = None) -> str:
    """'7 of its 10 nearest training images are labelled Sadness' (the most common label, ties in class
    order), then how many share given_label (the image's own) when that is another class."""
    if neighbours.empty:
        return "It has no neighbours to compare with."
    counts = neighbours["label"].astype(str).value_counts()
    order = {name: i for i, name in enumerate(classes.names)}
    common = min(counts.index, key=lambda label: (-counts[label], order.get(label, len(order))))
    splits = neighbours["split"].dropna().unique() if "split" in neighbours else []
    noun = SPLIT_NOUNS.get(splits[0], "images") if len(splits) == 1 else "evaluated images"
    text = (f"{counts[common]} of its {len(neighbours)} nearest {noun} "
            f"{'is' if counts[common] == 1 else 'are'} labelled {classes.display_name(common)}")
    if given_label is not None and given_label != common:
        same = int(counts.get(given_label, 0))
        text += f"; {same} {'shares' if same == 1 else 'share'} its own label, {classes.display_name(given_label)}"
    return text + "."


def evaluate_command(run_dir: str | os.PathLike, dataset_dir: str | os.PathLike | None = None) -> str:
    """The command that evaluates every split of the run, embeddings included (dataset: metrics.json's)."""
    dataset = dataset_dir or load_metrics(run_dir).get("dataset") or "DATASET_DIR"
    return (f"python -m training.evaluate --run {shlex.quote(str(run_dir))} --dataset {shlex.quote(str(dataset))} "
            f"--split train,dev,test")


def missing_embeddings_message(run_dir: str | os.PathLike, dataset_dir: str | os.PathLike | None = None,
                               what: str = "neighbours") -> str:
    """One line for a run without embeddings.npy (so no `what`: neighbours, map), with the one command that
    adds them."""
    run_dir = Path(run_dir)
    dataset = dataset_dir or load_metrics(run_dir).get("dataset") or "DATASET_DIR"
    if is_imported_predictions(run_dir):
        return (f"This run (imported predictions) has no embeddings, so no {what}: import it again with "
                f"--embeddings: `python -m training.import_predictions --dataset {shlex.quote(str(dataset))} "
                f"--predictions YOUR_PREDICTIONS --embeddings YOUR_EMBEDDINGS.npy --out {shlex.quote(str(run_dir))} "
                f"--overwrite`")
    return (f"This run has no embeddings (evaluated before they were stored), so no {what}; add them with "
            f"`{evaluate_command(run_dir, dataset)}`")
