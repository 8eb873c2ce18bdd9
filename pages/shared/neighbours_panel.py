"""The nearest-neighbours section of the inspector and the live page (Streamlit glue, not a page): the k
evaluated images most similar to one image or to an upload, as small cards linking to the inspector."""
from __future__ import annotations

import numpy as np
import pandas as pd
import streamlit as st

from emotion_core.neighbours import (SPLIT_NOUNS, label_summary, missing_embeddings_message, neighbours_of,
                                     shortfall_note)
from emotion_core.runs import RunInfo
from pages.shared import gallery, ui

ALL, SAME = "all evaluated images", "its own split"
COLUMNS = 5


def show(run: RunInfo, *, image_id: str | None = None, vector: np.ndarray | None = None,
         own_split: str | None = None, given_label: str | None = None) -> None:
    """Neighbours of image_id (an evaluated image, itself left out) or of vector (an upload's embedding);
    a run without embeddings, or with embeddings that do not match its predictions, gets one line."""
    st.subheader("Nearest neighbours")
    try:
        index = ui.neighbour_index(run)
    except ValueError as err:
        st.error(f"Cannot search this run's embeddings: {err}")
        return
    if index is None:
        st.info(missing_embeddings_message(run.path, ui.metrics(run).get("dataset")))
        return
    table = ui.all_predictions(run)
    among, k = _controls(table, own_split)
    splits = None if among == ALL else [own_split if among == SAME else among]
    present = set(table["split"].astype(str))
    if splits and splits[0] not in present:
        st.info(f"This run has no evaluated {SPLIT_NOUNS.get(splits[0], splits[0])}; add them with "
                f"`{ui.evaluate_command(run)}`")
        return
    try:
        found = neighbours_of(table, index, image_id=image_id, vector=vector, k=k, splits=splits)
    except ValueError as err:
        st.error(f"Cannot search this run's embeddings: {err}")
        return
    classes = ui.classes(run)
    if not found.empty:
        st.markdown(f"**{label_summary(found, classes, given_label)}**")
    note = shortfall_note(found, k, splits)
    if note:
        st.caption(note)
    if not found.empty:
        _cards(run, found)


def _controls(table: pd.DataFrame, own_split: str | None) -> tuple[str, int]:
    """Where to look (every evaluated image, the training images, the image's own split) and how many."""
    choices = [ALL, "train"] + ([SAME] if own_split else [])
    default = "train" if (table["split"] == "train").any() else ALL  # what the model learnt from, when evaluated
    names = {**SPLIT_NOUNS, SAME: f"its own split ({own_split})"}
    left, right = st.columns([3, 1])
    among = left.radio("Among", choices, index=choices.index(default), horizontal=True, key="neighbours_among",
                       format_func=lambda choice: names.get(choice, choice),
                       help="Cosine similarity of the pooled features that enter the model's head")
    k = right.number_input("How many", 1, 50, 10, key="neighbours_k")
    return among, int(k)


def _cards(run: RunInfo, found: pd.DataFrame) -> None:
    """One small card each: thumbnail, similarity, label → prediction, votes, a link to the inspector."""
    classes, shares = ui.classes(run), ui.vote_shares(run)
    rows = found.to_dict("records")
    pictures = gallery.card_pictures(run, rows, show_cams=False)
    cells = st.columns(COLUMNS)
    for n, (row, picture) in enumerate(zip(rows, pictures)):
        with cells[n % COLUMNS].container(border=True):
            ui.show_jpeg(picture)
            mark = "✅" if row["label"] == row["pred"] else "❌"
            st.markdown(f"**{row['image_id']}** · similarity {row['similarity']:.2f}  \n"
                        f"{mark} {classes.display_name(row['label'])} → {classes.display_name(row['pred'])} "
                        f"({row['confidence']:.0%}) · {row['split']}  \n"
                        f"{gallery.votes_text(row, classes, shares)}")
            gallery.inspect_link(row["image_id"])
