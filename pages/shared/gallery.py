"""The gallery of one confusion cell: filters, pages of image cards, the tagging bar (Streamlit glue,
not a page).

The gallery is a fragment: its own widgets (filters, Grad-CAM toggle, page, selections, tag
buttons) rerun only the gallery, not the matrix and the sidebar above it. Buttons act in
callbacks, before that rerun, so that one click costs one run.
"""
from __future__ import annotations

import logging
import math
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
import streamlit as st

from emotion_core.attributes import SUGGESTED_TAGS
from emotion_core.confusion import ALL_VOTES, VOTE_FILTERS, filter_and_sort, page_of
from emotion_core.dataset_attributes import (attribute_name, categorical_columns, describe, filters_text,
                                             numeric_bounds, numeric_columns, values_by_frequency)
from emotion_core.labels import ClassSet
from emotion_core.runs import RunInfo
from emotion_core.votes import (NO_VOTES, STRONGLY_DIVIDED, UNANIMOUS, distribution_holds_shares, group_labels,
                                 vote_distribution, votes_description)
from pages.shared import frame, multilabel_view, ui

if TYPE_CHECKING:  # emotion_core.tags imports SQLAlchemy (0.1-0.3 s here): loaded where a tag store is used
    from emotion_core.tags import TagStore


def images_with_all(tag_table: pd.DataFrame, wanted: list[str]) -> set[str]:
    """emotion_core.tags.images_with_all, imported when a tag filter is used (see TYPE_CHECKING above)."""
    from emotion_core.tags import images_with_all as of_tags

    return of_tags(tag_table, wanted)


BAR_BLOCKS = "▁▂▃▄▅▆▇█"  # one to eight eighths: a class's share of an image's votes
BADGE = {UNANIMOUS: "🟢 unanimous", STRONGLY_DIVIDED: "🔴 strongly divided", NO_VOTES: "⚪ no votes"}
NEW_TAG = "+ new tag…"
PER_PAGE = 12
COLUMNS = 4
INSPECTOR = "pages/inspector.py"
MARKDOWN_SPECIALS = set("\\`*_{}[]()#+-.!|<>~:$")
# The gallery's images in order, and the run, split and cell they are of (the inspector's previous /
# next follow that list).
CELL_IDS, CELL_OF_IDS = "cell_image_ids", "cell_image_ids_cell"


def badge(level: str) -> str:
    return BADGE.get(level, "🟠 non-unanimous")


def votes_text(row: pd.Series | dict, classes: ClassSet | None = None, shares: bool | None = None) -> str:
    """'votes 3 agree / 2 disagree · 🔴 strongly divided'; works when a vote column is missing. An
    image with a vote distribution (LDL, Emotion6): 'votes 6 of 11 for Awe · 🟠 non-unanimous' (counts)
    or 'votes 70% for Disgust' (shares) and below it the whole distribution as a text bar (vote_bar).
    shares: whether the run's table holds shares (ui.vote_shares); None: guessed from the row alone."""
    distribution = vote_distribution(row)
    total = sum(distribution.values()) if distribution else 0.0
    if total > 0:
        label = row["label"]
        shares = distribution_holds_shares(distribution) if shares is None else shares
        name = escape_markdown(classes.display_name(label) if classes else str(label).capitalize())
        votes = distribution[label]
        share = f"{votes / total:.0%}" if shares else f"{votes:.0f} of {total:.0f}"
        return (f"votes {share} for {name} · {badge(row.get('agreement_level', NO_VOTES))}  \n"
                f":small[{vote_bar(distribution, label, classes, shares)}]")
    described = votes_description(row.get("agree"), row.get("disagree"))
    if described == NO_VOTES:
        return badge(NO_VOTES)
    return f"votes {described} · {badge(row.get('agreement_level', NO_VOTES))}"


def vote_bar(distribution: dict[str, float], label: str, classes: ClassSet | None = None,
             shares: bool | None = None) -> str:
    """'Amu▁1 Ang· **Awe▅6** Con▁1 Dis· Exc· Fea▂2 Sad▁1': every class in the run's order with a block
    one to eight eighths high for its share of all votes ('·': none) and its count (Emotion6's
    probabilities: its share in %; shares as in votes_text), the label's class in bold. Markdown text,
    not a chart: a card stays one text, one picture and one link (issue 9)."""
    total = sum(distribution.values())
    counted = not (distribution_holds_shares(distribution) if shares is None else shares)
    names = [classes.display_name(c) if classes else c.capitalize() for c in distribution]
    short = [name[:3] for name in names]
    short = short if len(set(short)) == len(short) else names  # 'Sad' twice: whole names
    parts = []
    for emotion, name in zip(distribution, short):
        votes = distribution[emotion]
        if votes > 0:
            height = min(max(math.ceil(votes / total * len(BAR_BLOCKS) - 1e-9), 1), len(BAR_BLOCKS))
            part = f"{name}{BAR_BLOCKS[height - 1]}{f'{votes:.0f}' if counted else f'{votes / total:.0%}'}"
        else:
            part = f"{name}·"
        part = escape_markdown(part)
        parts.append(f"**{part}**" if emotion == label else part)
    return " ".join(parts)


def vote_filter(rows: pd.DataFrame, prefix: str = "") -> str:
    """The gallery's vote filter: all images or one vote group (non-unanimous includes strongly divided),
    named in the words of the cell's votes (FI's agree/disagree or a distribution over the classes).
    prefix: the gallery's widget-key prefix (see image_gallery)."""
    labels = group_labels(rows)
    return st.selectbox("Vote agreement", VOTE_FILTERS, key=f"{prefix}vote_filter",
                        format_func=lambda group: group if group == ALL_VOTES else labels[group],
                        help="Unanimous: every vote for the label. Non-unanimous: at least one vote against it, "
                             "strongly divided images included. Strongly divided: the label at most one vote "
                             "ahead (FI: agree − disagree ≤ 1).")


def attributes_text(attributes: pd.DataFrame | None, image_id: str) -> str:
    """'auto: monochrome · brightness 0.52 · colourfulness 40 · CAM mass in top 10%: 35%' ('' without attributes)."""
    if attributes is None or image_id not in attributes.index:
        return ""
    row = attributes.loc[image_id]
    flags = [tag for column, tag in SUGGESTED_TAGS.items() if bool(row.get(column, False))]
    concentration, brightness, colourfulness = (row.get(c) for c in ("cam_concentration", "brightness",
                                                                        "colorfulness"))
    focus = "—" if pd.isna(concentration) else f"{concentration:.0%}"
    brightness = "—" if pd.isna(brightness) else f"{brightness:.2f}"  # NaN: the image could not be read
    colourfulness = "—" if pd.isna(colourfulness) else f"{colourfulness:.0f}"
    return (f"auto: {', '.join(flags) or '—'} · brightness {brightness} · "
            f"colourfulness {colourfulness} · CAM mass in top 10%: {focus}")


def dataset_attribute_filters(rows: pd.DataFrame, table: pd.DataFrame | None = None, prefix: str = ""
                              ) -> tuple[dict[str, list[str]], dict[str, tuple[float, float]]]:
    """One multiselect per categorical dataset attribute of the run (EmoSet's scene, object, ...): the
    cell's values, most frequent first, after the values already chosen (kept when another cell lacks
    them, like every other filter: the empty-cell message names them). One range slider per numeric
    one (EmoSet's brightness, colorfulness; Emotion6's valence, arousal) over the values of `table`
    (the run's split, so that a range kept across cells fits every cell's slider). Returns the chosen
    values per categorical column and the narrowed ranges per numeric column (a slider left at its
    full range filters nothing: images without the value stay)."""
    chosen = {}
    for column in categorical_columns(rows):
        key = f"{prefix}attr_filter|{column}"
        counts = values_by_frequency(rows[column])
        options = list(dict.fromkeys(list(st.session_state.get(key, [])) + counts.index.tolist()))
        chosen[column] = st.multiselect(
            f"{attribute_name(column).capitalize()} (dataset; any of these)", options, key=key,
            format_func=lambda value, counts=counts: f"{value} ({counts.get(value, 0)})")
    table = rows if table is None else table
    ranges = {}
    for column in numeric_columns(table):
        bounds = numeric_bounds(table[column])
        if bounds is None or column not in rows or rows[column].isna().all():  # none to filter in this cell
            continue
        key = f"{prefix}attr_range|{column}"
        kept = st.session_state.get(key)
        if kept is not None and not bounds[0] <= min(kept) <= max(kept) <= bounds[1]:
            del st.session_state[key]  # another run's or split's range, outside this slider: start afresh
        chosen_range = st.slider(f"{attribute_name(column).capitalize()} (dataset)", bounds[0], bounds[1], bounds,
                                 step=0.01, key=key)
        if tuple(chosen_range) != bounds:
            ranges[column] = (float(chosen_range[0]), float(chosen_range[1]))
    return chosen, ranges


def select_key(image_id: str) -> str:
    return f"select|{image_id}"


@frame.fragment
def cell_gallery(run: RunInfo, rows: pd.DataFrame, true: str, pred: str) -> None:
    """Filters, the Grad-CAM toggle, one page of the cell's images and the tagging bar."""
    def remember(shown_ids: list[str]) -> None:  # the inspector's previous / next
        st.session_state[CELL_IDS] = shown_ids
        st.session_state[CELL_OF_IDS] = shown_cell(run, true, pred)

    image_gallery(run, rows, page_key=f"page_{true}_{pred}", where="in this cell", on_shown=remember)


@frame.fragment
def selection_gallery(run: RunInfo, rows: pd.DataFrame, prefix: str, page_key: str) -> None:
    """The same gallery for any set of images (an embedding-map selection), its widgets keyed by prefix."""
    image_gallery(run, rows, prefix=prefix, page_key=page_key, where="in this selection")


def image_gallery(run: RunInfo, rows: pd.DataFrame, *, prefix: str = "", page_key: str, where: str,
                  on_shown: Callable[[list[str]], None] | None = None) -> None:
    """The gallery's body: filters, the Grad-CAM toggle, one page of rows' images and the tagging bar.
    prefix: before every filter, sort, toggle and page widget's key (the confusion page's is "": its
    keys are the plain names); page_key: the page number's key (one per image set, so that a smaller
    set starts at page 1); where: 'in this cell' (the empty-set message); on_shown: called with the
    filtered and sorted image ids."""
    store, dataset = ui.tag_store(), ui.dataset_key(run)
    tag_table = store.tags_of(dataset) if store else pd.DataFrame(columns=["image_id", "tag"])
    with st.expander("Filter and sort", expanded=False):
        votes = vote_filter(rows, prefix)
        confidence = st.slider("Confidence", 0.0, 1.0, (0.0, 1.0), step=0.05, key=f"{prefix}confidence")
        wanted_tags = st.multiselect("Has all these tags", sorted(tag_table["tag"].unique()), key=f"{prefix}tag_filter")
        wanted_attributes, ranges = dataset_attribute_filters(rows, ui.predictions(run), prefix)
        sort = st.selectbox("Sort by", multilabel_view.sort_keys(run, f"{prefix}sort"), key=f"{prefix}sort")
    with st.container(horizontal=True, gap="medium"):
        show_cams = ui.has_cams(run) and st.toggle("Show Grad-CAM (predicted | true class)", key=f"{prefix}show_cams")
        if not ui.has_cams(run):  # imported predictions without maps
            st.caption("This run has no Grad-CAM maps.")
        tagging = st.toggle("Select images to tag", key=f"{prefix}tagging",
                            help="A select box on every image and the bar to tag, untag and undo")
    shown = filter_and_sort(rows, votes=votes, confidence=confidence, sort=sort,
                            only_ids=images_with_all(tag_table, wanted_tags) if wanted_tags else None,
                            attributes=wanted_attributes, ranges=ranges)
    if on_shown is not None:
        on_shown(shown["image_id"].tolist())
    show_tag_message()
    if shown.empty:
        chosen = filters_text(wanted_attributes, ranges)  # kept from another cell, maybe: say which
        st.info(f"No images {where} with these filters{f' ({chosen} selected)' if chosen else ''}.")
        return
    on_page = multilabel_view.with_sets(run, page_picker(shown, page_key))  # sets: multi-label view on
    tagging = tagging and store is not None
    if tagging:
        tag_bar(store, dataset, on_page["image_id"].tolist())
    grid(run, on_page, show_cams, tagging, tags_of_images(tag_table, on_page["image_id"]), ui.attributes_by_id(run),
         ui.vote_shares(run))


def page_picker(shown: pd.DataFrame, key: str, per_page: int = PER_PAGE) -> pd.DataFrame:
    """A "Page (of N)" number input under key, and the rows of shown on the chosen page."""
    pages = max(1, -(-len(shown) // per_page))
    page = st.number_input(f"Page (of {pages})", 1, pages, 1, key=key, width=220)
    return page_of(shown, int(page), per_page)


def cell_image_ids(run: RunInfo, predictions: pd.DataFrame) -> list[str]:
    """The selected cell's images in the gallery's order: the list the gallery showed last when it showed
    this cell (its filters and sort), else all the cell's images in the default order."""
    ui.ensure_cell(predictions, ui.classes(run))
    true, pred = st.session_state[ui.TRUE], st.session_state[ui.PRED]
    if st.session_state.get(CELL_OF_IDS) == shown_cell(run, true, pred) and st.session_state.get(CELL_IDS):
        return st.session_state[CELL_IDS]
    return filter_and_sort(ui.cell_rows(run, true, pred))["image_id"].tolist()


def shown_cell(run: RunInfo, true: str, pred: str) -> tuple[str, str | None, str, str]:
    return run.name, st.session_state.get(ui.SPLIT), true, pred


def tags_of_images(tag_table: pd.DataFrame, image_ids: pd.Series) -> dict[str, list[str]]:
    """The sorted tags of the given images only (the whole dataset's tags can be many)."""
    shown = tag_table[tag_table["image_id"].isin(set(image_ids))]
    return {image_id: sorted(group["tag"]) for image_id, group in shown.groupby("image_id")}


def grid(run: RunInfo, rows: pd.DataFrame, show_cams: bool, tagging: bool, tags: dict[str, list[str]],
         attributes: pd.DataFrame | None, shares: bool | None = None) -> None:
    """One card per image: the picture (or its two Grad-CAM overlays in one picture, the predicted
    class's on the left); its id, confidence, votes, tags and attributes in one text; a link to the
    inspector; when tagging, a select box. The cell's name is the heading above the gallery, not
    repeated on every card.

    Every element and widget costs the browser a redraw of its share of the page on every run: a card
    has as few as it can, and everything it shows is made before the first card is drawn, so that the
    cards reach the browser in one burst."""
    cards = rows.to_dict("records")
    pictures = card_pictures(run, cards, show_cams)
    classes = ui.classes(run)
    one_cell = len({(row["label"], row["pred"]) for row in cards}) == 1  # a map selection mixes cells
    texts = [card_text(row, tags.get(row["image_id"], []), attributes_text(attributes, row["image_id"]), shares,
                       cell="" if one_cell else cell_name(row, classes))
             for row in cards]
    if show_cams and not one_cell:
        st.caption("Left: CAM of the predicted class · right: CAM of the true class"
                   f"{'' if ui.has_true_class_cams(run) else ' (not imported: left empty)'}")
    elif show_cams:  # said once: every image of the gallery is of the same cell
        true_maps = ui.has_true_class_cams(run) or cards[0]["pred"] == cards[0]["label"]
        st.caption(f"Left: CAM {classes.display_name(cards[0]['pred'])} (the predicted class) · "
                   f"right: CAM {classes.display_name(cards[0]['label'])} (the true class"
                   f"{')' if true_maps else ': not imported, left empty)'}")
    cells = st.columns(COLUMNS)
    for n, (row, picture, text) in enumerate(zip(cards, pictures, texts)):
        with cells[n % COLUMNS].container(border=True):
            ui.show_jpeg(picture)
            st.markdown(text)
            if tagging:
                with st.container(horizontal=True, vertical_alignment="center", gap="small"):
                    st.checkbox("select", key=select_key(row["image_id"]))
                    inspect_link(row["image_id"])
            else:
                inspect_link(row["image_id"])


def inspect_link(image_id: str) -> None:
    st.page_link(INSPECTOR, label="Inspect", icon="🔎", query_params={"image": image_id})


def card_pictures(run: RunInfo, cards: list[dict], show_cams: bool) -> list:
    """The cards' thumbnails, or their Grad-CAM pairs (predicted | true class), from the image cache;
    the missing ones made two at a time (decoding and resizing release the GIL)."""
    cams = ui.cams(run) if show_cams else None

    def picture(row: dict):
        if cams is None:
            return ui.thumbnail(run, row["path"])
        pair = np.asarray(cams[int(row["cam_index"])], dtype=np.float32)  # (2, h, w): predicted, true class
        return ui.cam_pair(run, row["path"], pair, f"{run.name}|{int(row['cam_index'])}")

    with ThreadPoolExecutor(max_workers=2) as pool:
        return list(pool.map(picture, cards))


def cell_name(row: dict, classes: ClassSet) -> str:
    """'Anger → Awe' (true → predicted), on the cards of a gallery whose images are of several cells."""
    return f"{escape_markdown(classes.display_name(row['label']))} → {escape_markdown(classes.display_name(row['pred']))}"


def card_text(row: dict, image_tags: list[str], attributes: str, shares: bool | None = None, cell: str = "") -> str:
    """'**img000123** · confidence 87%', (cell: its 'Anger → Awe' line), the votes, and in small grey type
    the tags, the automatic attributes, the dataset's attributes (EmoSet's scene, objects, ...) and (demo)
    the planted trait."""
    details = [f"🏷 {', '.join(image_tags)}" if image_tags else "🏷 no tags"]
    if row.get(multilabel_view.SET_COLUMN):
        details.insert(0, f"set: {row[multilabel_view.SET_COLUMN]}")
    if attributes:
        details.append(attributes)
    dataset_attributes = describe(row)
    if dataset_attributes:
        details.append(f"dataset: {dataset_attributes}")
    planted = row.get("demo_trait")
    if isinstance(planted, str) and planted:
        details.append(f"planted: {planted}")
    small = "  \n".join(f":gray[:small[{escape_markdown(line)}]]" for line in details)
    cell = f"{cell}  \n" if cell else ""
    return f"**{row['image_id']}** · confidence {row['confidence']:.0%}  \n{cell}{votes_text(row, shares=shares)}  \n{small}"


def escape_markdown(text: str) -> str:
    """Text (a user's tag name, say) shown as it is inside Markdown and Streamlit's :directive[...]."""
    return "".join(f"\\{c}" if c in MARKDOWN_SPECIALS else c for c in text)


def chosen_tag() -> str:
    tag = st.session_state.get("tag_choice", "")
    return st.session_state.get("new_tag", "") if tag == NEW_TAG else tag


def selected_of(page_ids: list[str]) -> list[str]:
    return [i for i in page_ids if st.session_state.get(select_key(i))]


def tag_bar(store: TagStore, dataset: str, page_ids: list[str]) -> None:
    """Tag or untag the selected images, select the page, undo the last action; buttons as wide as
    their labels."""
    selected = selected_of(page_ids)
    with st.container(horizontal=True, vertical_alignment="bottom", gap="small"):
        tag = st.selectbox("Tag", store.vocabulary() + [NEW_TAG], key="tag_choice", width=240)
        if tag == NEW_TAG:
            st.text_input("New tag", key="new_tag", max_chars=60, width=200)
        st.button(f"Tag selected ({len(selected)})", disabled=not selected, on_click=_tag_selected,
                  args=(store, dataset, page_ids, True))
        st.button("Untag selected", disabled=not selected, on_click=_tag_selected,
                  args=(store, dataset, page_ids, False))
        st.button("Select page", on_click=_select_page, args=(page_ids,),
                  help="Select every image of this page (again: select none)")
        st.button("Undo", on_click=lambda: act(lambda: store.undo(ui.author(), dataset) or "nothing to undo", None),
                  help="Undo your last tagging action on this dataset")


def _tag_selected(store: TagStore, dataset: str, page_ids: list[str], add: bool) -> None:
    """Button callback: the tag and the selection as they are when the button is clicked."""
    selected, tag = selected_of(page_ids), chosen_tag()
    if add:
        act(lambda: store.add(dataset, selected, tag, ui.author()), f"tagged {len(selected)} with “{tag}”")
    else:
        act(lambda: store.remove(dataset, selected, tag, ui.author()), f"removed “{tag}”")


def _select_page(page_ids: list[str]) -> None:
    everything = not all(st.session_state.get(select_key(i)) for i in page_ids)
    for image_id in page_ids:
        st.session_state[select_key(image_id)] = everything


def act(change, message: str | None) -> None:
    """Run a tag change from a button callback (so that the run that follows shows it); a bad tag name,
    a missing author or a failing database is a one-line message, not a traceback."""
    from sqlalchemy.exc import SQLAlchemyError  # loaded already: a tag button has a tag store behind it

    from emotion_core.tags import TagStoreError

    try:
        result = change()
    except ValueError as err:
        st.session_state["tag_message"] = ("error", str(err))
    except (TagStoreError, SQLAlchemyError) as err:  # the write's transaction was rolled back
        logging.getLogger("emolens").exception("tag change failed")
        reason = (str(err).strip().splitlines() or [type(err).__name__])[0][:200]
        st.session_state["tag_message"] = ("error", f"The tag database failed ({reason}); nothing was changed. "
                                                    "Try again, or check EMOLENS_DB_URL.")
    else:
        st.session_state["tag_message"] = ("success", message or str(result))


def show_tag_message() -> None:
    kind, text = st.session_state.pop("tag_message", (None, None))
    if kind == "error":
        st.error(text)
    elif kind == "success":
        st.success(text)
