"""The image grid and the tagging bar used by the confusion page (Streamlit glue, not a page)."""
from __future__ import annotations

import pandas as pd
import streamlit as st

from emotion_core.attributes import SUGGESTED_TAGS
from emotion_core.confusion import ALL_VOTES, VOTE_FILTERS
from emotion_core.labels import display_name
from emotion_core.runs import RunInfo
from emotion_core.tags import TagStore
from emotion_core.votes import GROUP_LABELS, NO_VOTES, STRONGLY_DIVIDED, UNANIMOUS, votes_description
from pages.shared import ui

BADGE = {UNANIMOUS: "🟢 unanimous", STRONGLY_DIVIDED: "🔴 strongly divided", NO_VOTES: "⚪ no votes"}
NEW_TAG = "+ new tag…"


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
    if attributes is None or image_id not in attributes.index:
        return ""
    row = attributes.loc[image_id]
    flags = [tag for column, tag in SUGGESTED_TAGS.items() if bool(row.get(column, False))]
    concentration = row.get("cam_concentration")
    focus = "n/a" if pd.isna(concentration) else f"{concentration:.0%}"
    return (f"auto: {', '.join(flags) or '—'} · brightness {row['brightness']:.2f} · "
            f"colourfulness {row['colorfulness']:.0f} · CAM mass in top 10%: {focus}")


def select_key(image_id: str) -> str:
    return f"select|{image_id}"


def grid(run: RunInfo, rows: pd.DataFrame, show_cams: bool, tags: dict[str, list[str]],
         attributes: pd.DataFrame | None, columns: int = 4) -> None:
    cams = ui.cams(run) if show_cams else None
    cells = st.columns(columns)
    for n, (_, row) in enumerate(rows.iterrows()):
        with cells[n % columns].container(border=True):
            caption = (f"{display_name(row['label'])} → {display_name(row['pred'])} · "
                       f"confidence {row['confidence']:.0%}")
            if cams is None:
                ui.show_image(ui.thumbnail(run, row["path"]))
            else:
                cam_pred, cam_true = cams[int(row["cam_index"])].astype("float32")
                left, right = st.columns(2)
                with left:
                    ui.show_image(ui.cam_overlay(run, row["path"], cam_pred, f"{run.name}|pred"),
                                  caption=f"CAM {display_name(row['pred'])}")
                with right:
                    ui.show_image(ui.cam_overlay(run, row["path"], cam_true, f"{run.name}|true"),
                                  caption=f"CAM {display_name(row['label'])}")
            st.markdown(f"**{row['image_id']}**  \n{caption}  \n{votes_text(row)}", help=row["path"])
            image_tags = tags.get(row["image_id"], [])
            st.caption(f"🏷 {', '.join(image_tags)}" if image_tags else "🏷 no tags")
            details = attributes_text(attributes, row["image_id"])
            if details:
                st.caption(details)
            if row.get("demo_trait"):
                st.caption(f"planted: {row['demo_trait']}")
            pick, inspect = st.columns(2)
            pick.checkbox("select", key=select_key(row["image_id"]))
            if inspect.button("Inspect", key=f"inspect_{row['image_id']}"):
                st.session_state[ui.INSPECT] = row["image_id"]
                st.switch_page("pages/inspector.py")


def tag_bar(store: TagStore, dataset: str, page_ids: list[str]) -> None:
    """Tag or untag the selected images, select the page, undo the last action."""
    selected = [i for i in page_ids if st.session_state.get(select_key(i))]
    choose, new, add, remove, everything, undo = st.columns([3, 3, 2, 2, 2, 2], vertical_alignment="bottom")
    tag = choose.selectbox("Tag", store.vocabulary() + [NEW_TAG], key="tag_choice")
    if tag == NEW_TAG:
        tag = new.text_input("New tag", key="new_tag", max_chars=60)
    if add.button(f"Tag selected ({len(selected)})", disabled=not selected):
        act(lambda: store.add(dataset, selected, tag, ui.author()), f"tagged {len(selected)} with “{tag}”")
    if remove.button("Untag selected", disabled=not selected):
        act(lambda: store.remove(dataset, selected, tag, ui.author()), f"removed “{tag}”")
    if everything.button("Select page"):
        for image_id in page_ids:
            st.session_state[select_key(image_id)] = not all(st.session_state.get(select_key(i)) for i in page_ids)
        st.rerun()
    if undo.button("Undo", help="Undo your last tagging action on this dataset"):
        act(lambda: store.undo(ui.author(), dataset) or "nothing to undo", None)


def act(change, message: str | None) -> None:
    """Run a tag change; a bad tag name or missing author is a message, not a traceback."""
    try:
        result = change()
    except ValueError as err:
        st.session_state["tag_message"] = ("error", str(err))
    else:
        st.session_state["tag_message"] = ("success", message or str(result))
    st.rerun()


def show_tag_message() -> None:
    kind, text = st.session_state.pop("tag_message", (None, None))
    if kind == "error":
        st.error(text)
    elif kind == "success":
        st.success(text)
