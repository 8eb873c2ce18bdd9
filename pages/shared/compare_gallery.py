"""Streamlit glue of the Compare page: the run and split pickers, the cached comparison, and the gallery of
a flip bucket or a difference-matrix cell with both runs' predictions and Grad-CAM side by side (not a page).

The gallery reuses the confusion gallery's pieces (vote filter, votes text and badge, tag bar, image cache)
rather than cell_gallery itself: a card here shows two runs' predictions and two runs' maps.
"""
from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pandas as pd
import streamlit as st

from emotion_core import compare, runs
from emotion_core.compare import BUCKET_TITLES, BUCKETS, Comparison
from emotion_core.confusion import ALL_VOTES
from emotion_core.dataset_attributes import describe
from emotion_core.runs import RunInfo
from emotion_core.votes import images_in_group
from pages.shared import frame, gallery, ui

# Plain session keys (widget keys are dropped when another page is shown): the choice survives page switches.
RUN_A, RUN_B, SPLIT, CHOICE = "compare_run_a", "compare_run_b", "compare_split", "compare_choice"
PREDICTED, TRUE_CLASS = "each run's predicted class", "the true class"
PER_PAGE, COLUMNS = 12, 4


def run_label(run: RunInfo) -> str:
    badge = " (synthetic demo)" if run.is_demo else f" ({ui.IMPORTED_BADGE})" if run.imported else ""
    target = ui.training_target(run)
    return f"{run.name}{badge} · dataset {ui.dataset_key(run)}" + (f" · trained on: {target}" if target else "")


def run_name(run: RunInfo) -> str:
    """'vote_run (trained on: votes (wheel spread))'; the name alone for an imported run."""
    target = ui.training_target(run)
    return f"{run.name} (trained on: {target})" if target else run.name


def run_pickers(every_run: list[RunInfo]) -> tuple[RunInfo, RunInfo]:
    """Run A (default: the link's run_a, else the sidebar's run) and run B (the link's run_b, else another
    run of the same dataset). A run that vanished from the workspace is said in one line and replaced."""
    by_name = {r.name: r for r in every_run}
    names = list(by_name)
    for key, param in ((RUN_A, "run_a"), (RUN_B, "run_b")):
        kept = st.session_state.get(key)
        if kept is not None and kept not in by_name:
            st.warning(f"Run {kept} is no longer in the workspace (deleted or moved): pick another run.")
            st.session_state.pop(key)
        if key not in st.session_state and st.query_params.get(param) in by_name:
            st.session_state[key] = st.query_params[param]
    if RUN_A not in st.session_state:
        st.session_state[RUN_A] = st.session_state.get(ui.RUN) if st.session_state.get(ui.RUN) in by_name else names[0]
    if RUN_B not in st.session_state:
        first = by_name[st.session_state[RUN_A]]
        others = [r for r in every_run if r.name != first.name]
        same = [r for r in others if ui.dataset_key(r) == ui.dataset_key(first)]
        st.session_state[RUN_B] = (same or others)[0].name
    left, right = st.columns(2)
    labels = {name: run_label(run) for name, run in by_name.items()}
    st.session_state[RUN_A] = left.selectbox("Run A", names, index=names.index(st.session_state[RUN_A]),
                                             format_func=labels.get, key="compare_a_picker")
    st.session_state[RUN_B] = right.selectbox("Run B", names, index=names.index(st.session_state[RUN_B]),
                                              format_func=labels.get, key="compare_b_picker")
    return by_name[st.session_state[RUN_A]], by_name[st.session_state[RUN_B]]


def split_picker(run_a: RunInfo, run_b: RunInfo) -> str:
    """The splits both runs evaluated; one line and a stop when they share none."""
    splits_a, splits_b = (list(ui.metrics(r).get("splits", {})) for r in (run_a, run_b))
    common = [s for s in splits_a if s in splits_b]
    if not common:
        st.error(f"Run A ({', '.join(splits_a) or 'no split'}) and run B ({', '.join(splits_b) or 'no split'}) "
                 "have no evaluated split in common.")
        st.stop()
    if st.session_state.get(SPLIT) not in common:
        wanted = st.query_params.get("compare_split")
        sidebar = st.session_state.get(ui.SPLIT)
        st.session_state[SPLIT] = (wanted if wanted in common else sidebar if sidebar in common
                                   else "test" if "test" in common else common[0])
    st.session_state[SPLIT] = st.selectbox("Split", common, index=common.index(st.session_state[SPLIT]),
                                           key="compare_split_picker", help="Splits both runs evaluated")
    return st.session_state[SPLIT]


@st.cache_resource(show_spinner="Comparing the runs…", max_entries=4)
def _comparison(key_a: tuple[str, float], key_b: tuple[str, float], split: str) -> Comparison:
    # ui's cached split tables: the pages share one copy of each run's predictions
    table_a, table_b = (ui.split_predictions(*key, split) for key in (key_a, key_b))
    # a labels-only import's p_ are one-hot stand-ins: no LDL metric or KL on them
    real = tuple(runs.has_probabilities(runs.load_metrics(key[0])) for key in (key_a, key_b))
    return compare.align(table_a, table_b, classes=ui.classes_of_path(key_a[0]), split=split, with_probabilities=real)


@st.cache_resource(show_spinner="Testing the difference…", max_entries=4)
def _statistics(key_a: tuple[str, float], key_b: tuple[str, float], split: str) -> dict:
    return compare.statistics(_comparison(key_a, key_b, split))


def comparison(run_a: RunInfo, run_b: RunInfo, split: str) -> tuple[Comparison, dict]:
    """The aligned runs and their statistics, computed once per pair of prediction files and split.
    Raises ValueError (one line) when the runs cannot be compared, FileNotFoundError when a run's files
    are gone."""
    compare.check_comparable(ui.metrics(run_a).get("dataset"), ui.metrics(run_b).get("dataset"),
                             ui.classes(run_a), ui.classes(run_b))
    for run in (run_a, run_b):
        if not (run.path / runs.PREDICTIONS_FILE).exists():
            raise FileNotFoundError(f"Run {run.name} has no {runs.PREDICTIONS_FILE} any more (deleted or moved "
                                    "while the page was open?): pick another run.")
    key_a, key_b = ui.predictions_version(run_a), ui.predictions_version(run_b)
    return _comparison(key_a, key_b, split), _statistics(key_a, key_b, split)


def ensure_choice(classes) -> None:
    """First visit: the bucket or cell of the link, else the images only B got right."""
    if CHOICE in st.session_state:
        return
    bucket, true, pred = (st.query_params.get(k) for k in ("bucket", "diff_true", "diff_pred"))
    if bucket in BUCKETS:
        st.session_state[CHOICE] = ("bucket", bucket)
    elif true in classes and pred in classes:
        st.session_state[CHOICE] = ("cell", true, pred)
    else:
        st.session_state[CHOICE] = ("bucket", compare.ONLY_B)


def choose(choice: tuple) -> None:
    """Button and select-box callback: what the gallery shows next."""
    st.session_state[CHOICE] = choice


def sync_choice() -> None:
    choice = st.session_state[CHOICE]
    bucket = choice[1] if choice[0] == "bucket" else None
    cell = choice[1:] if choice[0] == "cell" else (None, None)
    ui.sync_query_params(bucket=bucket, diff_true=cell[0], diff_pred=cell[1])


def bucket_buttons(counts: dict[str, int]) -> None:
    """The four flip buckets as buttons, the chosen one highlighted."""
    chosen = st.session_state[CHOICE]
    with st.container(horizontal=True, gap="small"):
        for bucket in BUCKETS:
            st.button(f"{BUCKET_TITLES[bucket]} ({counts[bucket]:,})", key=f"bucket_{bucket}",
                      type="primary" if chosen == ("bucket", bucket) else "secondary",
                      on_click=choose, args=(("bucket", bucket),))


def chosen_rows(comparison: Comparison) -> tuple[pd.DataFrame, str]:
    """The chosen bucket's or cell's images and the heading above them."""
    choice, classes = st.session_state[CHOICE], comparison.classes
    if choice[0] == "bucket":
        rows = compare.bucket_rows(comparison, choice[1])
        return rows, f"{BUCKET_TITLES[choice[1]]}: {len(rows):,} image{'s' * (len(rows) != 1)}"
    rows = compare.cell_rows(comparison, choice[1], choice[2])
    return rows, compare.cell_sentence(rows, choice[1], choice[2], classes)


@frame.fragment
def compare_gallery(run_a: RunInfo, run_b: RunInfo, rows: pd.DataFrame, choice: tuple) -> None:
    """Vote filter and sort, the Grad-CAM and tagging toggles, one page of cards, the tagging bar."""
    classes, shares = ui.classes(run_a), ui.vote_shares(run_a)
    store, dataset = ui.tag_store(), ui.dataset_key(run_a)
    tag_table = store.tags_of(dataset) if store else pd.DataFrame(columns=["image_id", "tag"])
    with st.expander("Filter and sort", expanded=False):
        votes = gallery.vote_filter(rows)
        keys = compare.sort_keys(rows)
        if st.session_state.get("compare_sort") not in (None, *keys):  # a confidence sort kept from runs that had one
            st.session_state.pop("compare_sort")
        sort = st.selectbox("Sort by", keys, key="compare_sort")
    sides = (("A", run_a), ("B", run_b))
    with_maps = [side for side, r in sides if ui.has_cams(r) and f"cam_index_{side.lower()}" in rows]
    with st.container(horizontal=True, gap="medium"):
        show_cams = bool(with_maps) and st.toggle("Show Grad-CAM (run A | run B)", key="compare_cams")
        tagging = st.toggle("Select images to tag", key="compare_tagging")
    missing = [f"run {side} ({r.name})" for side, r in sides if side not in with_maps]
    if missing:
        st.caption(f"No Grad-CAM maps in {' and '.join(missing)}" + ("." if with_maps else ": the toggle is hidden."))
    target = PREDICTED
    if show_cams and all(ui.has_true_class_cams(r) for side, r in sides if side in with_maps):
        target = st.radio("Grad-CAM of", (PREDICTED, TRUE_CLASS), horizontal=True, key="compare_cam_target")
    shown = compare.sort_rows(rows if votes == ALL_VOTES else rows[images_in_group(rows, votes)], sort)
    gallery.show_tag_message()
    if shown.empty:
        st.info("No images here with these filters.")
        return
    on_page = gallery.page_picker(shown, f"compare_page_{'_'.join(choice)}", per_page=PER_PAGE)
    if tagging and store is not None:
        gallery.tag_bar(store, dataset, on_page["image_id"].tolist())
    if show_cams:
        st.caption(cam_caption(run_a, run_b, with_maps, target))
    cards = on_page.to_dict("records")
    pictures = card_pictures(run_a, run_b, cards, with_maps if show_cams else [], target)
    tags = gallery.tags_of_images(tag_table, on_page["image_id"])
    cells = st.columns(COLUMNS)
    for n, (row, picture) in enumerate(zip(cards, pictures)):
        with cells[n % COLUMNS].container(border=True):
            ui.show_jpeg(picture)
            st.markdown(card_text(row, tags.get(row["image_id"], []), classes, shares))
            if tagging and store is not None:
                st.checkbox("select", key=gallery.select_key(row["image_id"]))


def cam_caption(run_a: RunInfo, run_b: RunInfo, with_maps: list[str], target: str) -> str:
    of = "its predicted class" if target == PREDICTED else "the true class"
    if len(with_maps) == 2:
        return f"Left: run A's ({run_a.name}) Grad-CAM of {of} · right: run B's ({run_b.name})"
    only = run_a if with_maps[0] == "A" else run_b
    return f"Grad-CAM of {of} from run {with_maps[0]} ({only.name}) only"


def card_pictures(run_a: RunInfo, run_b: RunInfo, cards: list[dict], with_maps: list[str], target: str) -> list:
    """Thumbnails, or each run's Grad-CAM overlay side by side in one picture (one run's when only one has
    maps: with_maps names the sides, 'A' / 'B'), from run A's image cache; made two at a time."""
    chosen = [(side.lower(), run) for side, run in (("A", run_a), ("B", run_b)) if side in with_maps]
    maps = {side: ui.cams(run) for side, run in chosen}
    plane = 0 if target == PREDICTED else 1  # cams.npy holds (predicted, true class) per row

    def picture(row: dict):
        if not maps:
            return ui.thumbnail(run_a, row["path"])
        overlays = [np.asarray(maps[side][int(row[f"cam_index_{side}"])][plane], dtype=np.float32)
                    for side, _ in chosen]
        key = "|".join(f"{run.name}:{int(row[f'cam_index_{side}'])}" for side, run in chosen) + f"|{plane}"
        if len(overlays) == 2:
            return ui.cam_pair(run_a, row["path"], overlays, f"compare|{key}")
        return ui.cam_overlay(run_a, row["path"], overlays[0], f"compare|{key}")

    with ThreadPoolExecutor(max_workers=2) as pool:
        return list(pool.map(picture, cards))


def card_text(row: dict, image_tags: list[str], classes, shares: bool | None = None) -> str:
    """'**img000123** · true Anger', each run's prediction and confidence (✓ / ✗; '—' when the runs do not
    both have confidences), the votes with their badge (shares: ui.vote_shares of run A, whose table holds
    the votes), and in small grey type the tags and the dataset's attributes."""
    runs_line = "  \n".join(
        f"{side.upper()}: {gallery.escape_markdown(classes.display_name(row[f'pred_{side}']))} "
        f"{confidence_text(row.get(f'confidence_{side}'))} {'✓' if row[f'correct_{side}'] else '✗'}"
        for side in ("a", "b"))
    details = [f"🏷 {', '.join(image_tags)}" if image_tags else "🏷 no tags"]
    dataset_attributes = describe(row)
    if dataset_attributes:
        details.append(f"dataset: {dataset_attributes}")
    if row.get("change"):
        details.insert(0, f"cell: {row['change']}")
    small = "  \n".join(f":gray[:small[{gallery.escape_markdown(line)}]]" for line in details)
    return (f"**{row['image_id']}** · true {gallery.escape_markdown(classes.display_name(row['label']))}  \n"
            f"{runs_line}  \n{gallery.votes_text(row, classes, shares)}  \n{small}")


def confidence_text(confidence) -> str:
    """'87%', or '—' when the run has no confidence for the image."""
    return "—" if confidence is None or pd.isna(confidence) else f"{confidence:.0%}"
