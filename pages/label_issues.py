"""Label issues: the images whose label a model that never saw them doubts (confident learning), beside
their annotator votes. Is it the model's fault or the label's?"""
import streamlit as st

from emotion_core.fileio import first_line
from emotion_core.label_issues import (ALL_OUT_OF_SAMPLE, CROSS_VALIDATION, PROBABILITIES_FROM, crossval_hint,
                                       export_csv, filter_issues, flagged_by_agreement, flagged_vs_unanimous)
from emotion_core.neighbours import missing_embeddings_message
from emotion_core.report import Column, display_value
from emotion_core.votes import AGREEMENT_LEVELS
from pages.shared import frame, gallery, ui

DEFAULT_TAG = "label ambiguous"
NEIGHBOURS_K = 10
STUDY_COLUMNS = {"row": Column("Label issue"), "unanimous": Column("Unanimous", "count"),
                 "non-unanimous": Column("Non-unanimous (not strongly divided)", "count"),
                 "strongly divided": Column("Strongly divided", "count"), "no votes": Column("No votes", "count"),
                 "all": Column("All", "count")}

frame.setup_if_run_directly()
run = ui.require_run()
classes = ui.classes(run)
st.title("Label issues")
st.caption("Confident learning (cleanlab's find_label_issues and label quality scores) on out-of-sample "
           "probabilities: the evaluated dev and test predictions, and the training images' cross-validated ones. "
           "Score: the out-of-sample probability of the given label (low = likely a label error). "
           "Suggested: the class the model finds most probable.")
if not ui.has_out_of_sample_train(run):
    st.info(crossval_hint(run.path))
scopes = ui.label_issue_scopes(run)
if not scopes:
    st.info("This run has no out-of-sample predictions to rank (only training images were evaluated).")
    st.stop()
if st.session_state.get("issue_scope") not in scopes:
    split = st.session_state.get(ui.SPLIT)
    st.session_state["issue_scope"] = split if split in scopes else scopes[0]
scope = st.selectbox("Images", scopes, key="issue_scope",
                     format_func=lambda s: s if s == ALL_OUT_OF_SAMPLE else f"{s} split")
try:
    ranking = ui.label_issues(run, scope)
except ValueError as err:
    st.warning(f"Cannot rank the {scope} images: {first_line(err)}")
    st.stop()
for note in ranking.notes:
    st.caption(note)
ranked = ranking.table
left, right = st.columns(2)
left.metric("Images ranked", f"{len(ranked):,}")
right.metric("Flagged as likely label errors", f"{int(ranked['flagged'].sum()):,}",
             help=f"{ranked['flagged'].mean():.1%} of the ranked images")

st.subheader("Are the flagged images the divided ones?")
ui.show_table(flagged_by_agreement(ranked).rename_axis("row").reset_index(), STUDY_COLUMNS)
st.markdown(flagged_vs_unanimous(ranked).answer)


def neighbour_counts(rows):
    """For the cards on screen: how many of each image's nearest evaluated images share its given label (None,
    with the reason and the command shown, for a run without embeddings; a bad embeddings file: its line)."""
    try:
        counts = ui.label_issue_neighbours(run, rows, NEIGHBOURS_K)
    except ValueError as err:
        st.caption(f"No neighbours: {first_line(err)}")
        return None
    if counts is None:
        st.caption(missing_embeddings_message(run.path))
    return counts


def level_name(level: str) -> str:
    return gallery.badge(level) + (" (not strongly divided)" if level == "non-unanimous" else "")


def card_text(row: dict, tags: list[str], neighbours) -> str:
    given, suggested = classes.display_name(row["label"]), classes.display_name(row["suggested"])
    flag = " · ⚑ flagged" if row["flagged"] else ""
    lines = [f"**{row['image_id']}** · #{row['issue_rank']}{flag}",
             f"given **{gallery.escape_markdown(given)}** → suggested **{gallery.escape_markdown(suggested)}** · "
             f"score {display_value(row['score'], 'p')}", gallery.votes_text(row, classes, ui.vote_shares(run))]
    if neighbours is not None and row["image_id"] in neighbours.index:
        lines.append(f"{neighbours[row['image_id']]} of its {NEIGHBOURS_K} nearest evaluated images share its label")
    source = "cross-validated" if row.get(PROBABILITIES_FROM) == CROSS_VALIDATION else "evaluated"
    details = f"🏷 {', '.join(tags) if tags else 'no tags'} · {row['split']} ({source})"
    return "  \n".join(lines + [f":gray[:small[{gallery.escape_markdown(details)}]]"])


def inspect_link_or_command(image_id: str) -> None:
    """The inspector opens evaluated images only (a link to another would show another image): a
    cross-validated training image of a run that did not evaluate train gets the command that adds it."""
    if ui.is_evaluated(run, image_id):
        gallery.inspect_link(image_id)
    else:
        st.caption(f"Not evaluated by this run, so not in the inspector: "
                   f"`{ui.evaluate_command(run)}` adds it")


def tag_all(store, dataset: str, image_ids: list[str]) -> None:
    """Button callback: the chosen tag on every image the filters keep."""
    tag = st.session_state.get("issue_bulk_tag", DEFAULT_TAG)
    gallery.act(lambda: store.add(dataset, image_ids, tag, ui.author()), f"tagged {len(image_ids)} with “{tag}”")


st.subheader("Ranked images")
with st.container(horizontal=True, vertical_alignment="bottom"):
    given = st.multiselect("Given label", classes.names, key="issue_given", format_func=classes.display_name)
    suggested = st.multiselect("Suggested label", classes.names, key="issue_suggested",
                               format_func=classes.display_name)
    levels = st.multiselect("Vote agreement", AGREEMENT_LEVELS, key="issue_levels", format_func=level_name,
                            help="Each image in its most specific group: non-unanimous here excludes the strongly "
                                 "divided ones")
    flagged_only = st.toggle("Flagged only", value=True, key="issue_flagged_only")
shown = filter_issues(ranked, given=given, suggested=suggested, levels=levels, flagged_only=flagged_only)
store, dataset = ui.tag_store(), ui.dataset_key(run)
with st.container(horizontal=True, vertical_alignment="bottom", gap="small"):
    st.download_button(f"Download these {len(shown):,} as CSV", lambda: export_csv(shown, classes.names),
                       file_name=f"{run.name}-label-issues-{scope.replace(' ', '-')}.csv", mime="text/csv",
                       on_click="ignore", key="issue_csv", disabled=shown.empty)
    if store is not None:
        vocabulary = store.vocabulary()
        st.selectbox("Tag", vocabulary, key="issue_bulk_tag", width=240,
                     index=vocabulary.index(DEFAULT_TAG) if DEFAULT_TAG in vocabulary else 0)
        st.button(f"Tag all {len(shown):,} shown", disabled=shown.empty, on_click=tag_all,
                  args=(store, dataset, shown["image_id"].tolist()), key="issue_tag_all")
        st.button("Undo", key="issue_undo", help="Undo your last tagging action on this dataset",
                  on_click=lambda: gallery.act(lambda: store.undo(ui.author(), dataset) or "nothing to undo", None))
gallery.show_tag_message()
if shown.empty:
    st.info("No ranked image with these filters.")
    st.stop()
on_page = gallery.page_picker(shown, f"issue_page_{scope}_{len(shown)}")
tag_table = store.tags_of(dataset) if store else None
tags = gallery.tags_of_images(tag_table, on_page["image_id"]) if tag_table is not None else {}
neighbours = neighbour_counts(on_page)
cards = on_page.to_dict("records")
cells = st.columns(gallery.COLUMNS)
for n, (row, picture) in enumerate(zip(cards, gallery.card_pictures(run, cards, show_cams=False))):
    with cells[n % gallery.COLUMNS].container(border=True):
        ui.show_jpeg(picture)
        st.markdown(card_text(row, tags.get(row["image_id"], []), neighbours))
        inspect_link_or_command(row["image_id"])
