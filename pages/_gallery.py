"""The image grid used by the confusion page (Streamlit glue, not a page)."""
from __future__ import annotations

import pandas as pd
import streamlit as st

from emotion_core.labels import display_name
from emotion_core.runs import RunInfo
from emotion_core.votes import NO_VOTES, STRONGLY_DIVIDED, UNANIMOUS
from pages import _ui as ui

BADGE = {UNANIMOUS: "🟢 unanimous", STRONGLY_DIVIDED: "🔴 strongly divided", NO_VOTES: "⚪ no votes"}


def badge(level: str) -> str:
    return BADGE.get(level, "🟠 non-unanimous")


def votes_text(row: pd.Series) -> str:
    if pd.isna(row["agree"]):
        return "no votes"
    return f"votes {int(row['agree'])} agree / {int(row['disagree'])} disagree · {badge(row['agreement_level'])}"


def grid(run: RunInfo, rows: pd.DataFrame, show_cams: bool, columns: int = 4) -> None:
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
            if row.get("demo_trait"):
                st.caption(f"planted: {row['demo_trait']}")
            if st.button("Inspect", key=f"inspect_{row['image_id']}"):
                st.session_state[ui.INSPECT] = row["image_id"]
                st.switch_page("pages/inspector.py")
