"""The gallery of one confusion cell: filters, pages of image cards, the tagging bar (Streamlit glue,
not a page).

The gallery is a fragment: its own widgets (filters, Grad-CAM toggle, page, selections, tag
buttons) rerun only the gallery, not the matrix and the sidebar above it. Buttons act in
callbacks, before that rerun, so that one click costs one run.
"""
from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pandas as pd
import streamlit as st

from emotion_core.attributes import SUGGESTED_TAGS
from emotion_core.confusion import ALL_VOTES, SORT_KEYS, VOTE_FILTERS, filter_and_sort, page_of
from emotion_core.runs import RunInfo
from emotion_core.tags import TagStore, images_with_all
from emotion_core.votes import GROUP_LABELS, NO_VOTES, STRONGLY_DIVIDED, UNANIMOUS, votes_description
from pages.shared import ui

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


def votes_text(row: pd.Series) -> str:
    """'votes 3 agree / 2 disagree · 🔴 strongly divided'; works when a vote column is missing."""
    described = votes_description(row.get("agree"), row.get("disagree"))
    if described == NO_VOTES:
        return badge(NO_VOTES)
    return f"votes {described} · {badge(row.get('agreement_level', NO_VOTES))}"


def vote_filter() -> str:
    """The gallery's vote filter: all images or one vote group (non-unanimous includes strongly divided)."""
    return st.selectbox("Vote agreement", VOTE_FILTERS, key="vote_filter",
                        format_func=lambda group: group if group == ALL_VOTES else GROUP_LABELS[group],
                        help="Unanimous: no disagree vote. Non-unanimous: at least one disagree vote, "
                             "strongly divided images included. Strongly divided: agree − disagree ≤ 1.")


def attributes_text(attributes: pd.DataFrame | None, image_id: str) -> str:
    """'auto: monochrome · brightness 0.52 · colourfulness 40 · CAM mass in top 10%: 35%' ('' without attributes)."""
    if attributes is None or image_id not in attributes.index:
        return ""
    row = attributes.loc[image_id]
    flags = [tag for column, tag in SUGGESTED_TAGS.items() if bool(row.get(column, False))]
    concentration = row.get("cam_concentration")
    focus = "—" if pd.isna(concentration) else f"{concentration:.0%}"
    return (f"auto: {', '.join(flags) or '—'} · brightness {row['brightness']:.2f} · "
            f"colourfulness {row['colorfulness']:.0f} · CAM mass in top 10%: {focus}")


def select_key(image_id: str) -> str:
    return f"select|{image_id}"


@st.fragment
def cell_gallery(run: RunInfo, rows: pd.DataFrame, true: str, pred: str) -> None:
    """Filters, the Grad-CAM toggle, one page of the cell's images and the tagging bar."""
    store, dataset = ui.tag_store(), ui.dataset_key(run)
    tag_table = store.tags_of(dataset) if store else pd.DataFrame(columns=["image_id", "tag"])
    with st.expander("Filter and sort", expanded=False):
        votes = vote_filter()
        confidence = st.slider("Confidence", 0.0, 1.0, (0.0, 1.0), step=0.05, key="confidence")
        wanted_tags = st.multiselect("Has all these tags", sorted(tag_table["tag"].unique()), key="tag_filter")
        sort = st.selectbox("Sort by", SORT_KEYS, key="sort")
    with st.container(horizontal=True, gap="medium"):
        show_cams = st.toggle("Show Grad-CAM (predicted | true class)", key="show_cams")
        tagging = st.toggle("Select images to tag", key="tagging",
                            help="A select box on every image and the bar to tag, untag and undo")
    shown = filter_and_sort(rows, votes=votes, confidence=confidence, sort=sort,
                            only_ids=images_with_all(tag_table, wanted_tags) if wanted_tags else None)
    st.session_state[CELL_IDS] = shown["image_id"].tolist()  # the inspector's previous / next
    st.session_state[CELL_OF_IDS] = shown_cell(run, true, pred)
    show_tag_message()
    if shown.empty:
        st.info("No images in this cell with these filters.")
        return
    pages = max(1, -(-len(shown) // PER_PAGE))
    page = st.number_input(f"Page (of {pages})", 1, pages, 1, key=f"page_{true}_{pred}", width=220)
    on_page = page_of(shown, int(page), PER_PAGE)
    tagging = tagging and store is not None
    if tagging:
        tag_bar(store, dataset, on_page["image_id"].tolist())
    grid(run, on_page, show_cams, tagging, tags_of_images(tag_table, on_page["image_id"]), ui.attributes_by_id(run))


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
         attributes: pd.DataFrame | None) -> None:
    """One card per image: the picture (or its two Grad-CAM overlays in one picture, the predicted
    class's on the left); its id, confidence, votes, tags and attributes in one text; a link to the
    inspector; when tagging, a select box. The cell's name is the heading above the gallery, not
    repeated on every card.

    Every element and widget costs the browser a redraw of its share of the page on every run: a card
    has as few as it can, and everything it shows is made before the first card is drawn, so that the
    cards reach the browser in one burst."""
    cards = rows.to_dict("records")
    pictures = card_pictures(run, cards, show_cams)
    texts = [card_text(row, tags.get(row["image_id"], []), attributes_text(attributes, row["image_id"]))
             for row in cards]
    if show_cams:  # said once: every image of the gallery is of the same cell
        classes = ui.classes(run)
        st.caption(f"Left: CAM {classes.display_name(cards[0]['pred'])} (the predicted class) · "
                   f"right: CAM {classes.display_name(cards[0]['label'])} (the true class)")
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


def card_text(row: dict, image_tags: list[str], attributes: str) -> str:
    """'**img000123** · confidence 87%', the votes, and in small grey type the tags, the automatic
    attributes and (demo) the planted trait."""
    details = [f"🏷 {', '.join(image_tags)}" if image_tags else "🏷 no tags"]
    if attributes:
        details.append(attributes)
    planted = row.get("demo_trait")
    if isinstance(planted, str) and planted:
        details.append(f"planted: {planted}")
    small = "  \n".join(f":gray[:small[{escape_markdown(line)}]]" for line in details)
    return f"**{row['image_id']}** · confidence {row['confidence']:.0%}  \n{votes_text(row)}  \n{small}"


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
    """Run a tag change from a button callback (so that the run that follows shows it); a bad tag name
    or missing author is a message, not a traceback."""
    try:
        result = change()
    except ValueError as err:
        st.session_state["tag_message"] = ("error", str(err))
    else:
        st.session_state["tag_message"] = ("success", message or str(result))


def show_tag_message() -> None:
    kind, text = st.session_state.pop("tag_message", (None, None))
    if kind == "error":
        st.error(text)
    elif kind == "success":
        st.success(text)
