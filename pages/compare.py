"""Compare runs: two runs on the same images, side by side: metrics, is the gain real, which images flipped."""
import pandas as pd
import streamlit as st

from emotion_core.compare import (FLIP_COLUMNS, METRIC_COLUMNS, PER_CLASS_COLUMNS, Comparison, nearness_columns,
                                  signed)
from emotion_core.confusion import cell_from_selection
from emotion_core.plots import difference_figure
from emotion_core.report import display_value
from emotion_core.runs import RunInfo, has_probabilities
from emotion_core.votes import missing_votes_note
from pages.shared import compare_gallery as cg
from pages.shared import frame, reports, ui

frame.setup_if_run_directly()
st.title("Compare runs")
every_run = ui.available_runs()
if len(every_run) < 2:
    st.info("Comparing needs two evaluated runs; this workspace has one. Train, evaluate or import another run "
            "on the same dataset.")
    st.stop()
run_a, run_b = cg.run_pickers(every_run)
try:
    split = cg.split_picker(run_a, run_b)
    comparison, stats = cg.comparison(run_a, run_b, split)
except (ValueError, OSError) as err:  # different datasets or classes, no shared image, a run deleted meanwhile
    st.error(str(err).splitlines()[0] if str(err) else type(err).__name__)
    st.stop()
ui.sync_query_params(run_a=run_a.name, run_b=run_b.name, compare_split=split)
classes = comparison.classes
table = comparison.table

for note in (comparison.note,
             "Run A and run B are the same run: every image is concordant." if run_a == run_b else None,
             f"The {split} split holds images of one class only ({classes.display_name(table['label'].iloc[0])}): "
             "the per-class table has one tested row and macro F1 averages over classes without images."
             if table["label"].nunique() == 1 else None):
    if note:
        st.info(note)

st.caption(f"{len(table):,} images of the {split} split, evaluated by both · A: {cg.run_name(run_a)} · "
           f"B: {cg.run_name(run_b)}")
ci, test = stats["ci"], stats["mcnemar"]
interval = ("no interval (too few images)" if pd.isna(ci["low"]) else
            f"{ci['confidence_level']:.0%} paired bootstrap interval {signed(ci['low'] * 100, '{:.1f}')} to "
            f"{signed(ci['high'] * 100, '{:.1f}')} pp, {ci['n_resamples']:,} resamples")
st.markdown(f"**Accuracy difference B − A: {signed(ci['difference'] * 100, '{:.1f}')} pp** ({interval})")
st.markdown(f"**Exact McNemar test:** {test['only_a']:,} images only A got right, {test['only_b']:,} only B: "
            f"p = {display_value(test['p_value'], 'p')}")
if test["note"]:
    st.caption(test["note"][0].upper() + test["note"][1:])

report_args = (run_a.path, split, ui.tag_store_url(), ui.dataset_key(run_a), run_b.path)
st.download_button("Download the comparison report (HTML)", lambda: reports.report_document("html", *report_args),
                   file_name=f"emolens_{run_a.name}_vs_{run_b.name}_{split}.html", mime="text/html",
                   icon=":material/download:",
                   help="Run A's whole report and how run B differs (metrics, per-class McNemar with q-values, "
                        "flips, difference matrix) in one self-contained file: opens offline, prints to PDF")

metrics_tab, classes_tab, flips_tab = st.tabs(["Metrics", "Per class", "Flips by vote agreement"])
with metrics_tab:
    st.caption("Recomputed on the images both runs evaluated; emotion-aware metrics where the class set has them, "
               "LDL distances (Chebyshev, Clark, Canberra, KL: lower is better; cosine, intersection: higher) where "
               "the dataset has vote distributions.")
    ui.show_table(stats["metrics"], METRIC_COLUMNS)
    labels_only = [name for name, run in (("A", run_a), ("B", run_b)) if not has_probabilities(ui.metrics(run))]
    if labels_only:
        who = f"Run {labels_only[0]} was" if len(labels_only) == 1 else "Both runs were"
        st.caption(f"{who} imported with labels only: no LDL metric, p(label) or KL is compared (one-hot stand-ins "
                   "are not a predicted distribution).")
with classes_tab:
    st.caption("Recall is the class's accuracy; the exact McNemar test on each true class's images, "
               "q-values by Benjamini-Hochberg across the classes.")
    ui.show_table(stats["classes"], PER_CLASS_COLUMNS)
with flips_tab:
    st.markdown(stats["flips_sentence"])
    ui.show_table(stats["flips"], FLIP_COLUMNS)
    no_votes = missing_votes_note(table)
    if no_votes:
        st.caption(f"{no_votes} Every flip is counted under “no votes”.")
    st.markdown("**Are the errors nearer?**")
    st.caption("Per vote level and run: its errors, their mean steps on Mikels' wheel from the label, the mean "
               "share of the votes that went to the class it wrongly chose (datasets with vote distributions), and "
               "the mean KL divergence from the votes to the predicted distribution over all the level's images.")
    if stats["nearness_sentence"]:
        st.markdown(stats["nearness_sentence"])
    ui.show_table(stats["nearness"], nearness_columns(stats["nearness"]))


def apply_click() -> None:
    """Chart callback, before the rerun: the clicked cell is drawn and shown in that one run. A click on
    the chosen cell clears plotly's selection (None here): the choice stays."""
    clicked = cell_from_selection(st.session_state.get("difference_chart"), classes=classes)
    if clicked is not None:
        st.session_state[cg.CHOICE] = ("cell", *clicked)


def copy_cell() -> None:
    st.session_state[cg.CHOICE] = ("cell", st.session_state["diff_true_box"], st.session_state["diff_pred_box"])


@frame.fragment
def matrix_and_images(run_a: RunInfo, run_b: RunInfo, comparison: Comparison, stats: dict) -> None:
    """The difference matrix, the cell pickers, the flip buckets and the chosen images: a click reruns
    this part only."""
    cg.ensure_choice(classes)
    choice = st.session_state[cg.CHOICE]
    if choice[0] == "cell" and not (choice[1] in classes and choice[2] in classes):
        choice = st.session_state[cg.CHOICE] = ("bucket", "only_b")  # a cell of another class set
    st.subheader("Difference matrix (run B − run A)")
    st.caption("Each cell: images run B put there minus images run A put there (blue: more in B). On the "
               "diagonal more is better for B; off it, more is worse. Click a cell to see its images.")
    selected = tuple(choice[1:]) if choice[0] == "cell" else None
    st.plotly_chart(difference_figure(stats["difference"], selected=selected, classes=classes),
                    on_select=apply_click, selection_mode="points", key="difference_chart")
    if choice[0] == "cell":
        st.session_state["diff_true_box"], st.session_state["diff_pred_box"] = choice[1], choice[2]
    left, right = st.columns(2)
    left.selectbox("True class", classes.names, key="diff_true_box", format_func=classes.display_name,
                   on_change=copy_cell)
    right.selectbox("Predicted class", classes.names, key="diff_pred_box", format_func=classes.display_name,
                    on_change=copy_cell)
    st.subheader("Flip buckets")
    cg.bucket_buttons(stats["buckets"])
    cg.sync_choice()
    rows, heading = cg.chosen_rows(comparison)
    st.subheader(heading)
    cg.compare_gallery(run_a, run_b, rows, st.session_state[cg.CHOICE])


matrix_and_images(run_a, run_b, comparison, stats)
