"""Overview: accuracy, the paper-style per-class table, bars, emotion-aware metrics and learning curves."""
import pandas as pd
import streamlit as st

from emotion_core.emotion_metrics import LEVEL_NAMES, split_emotion_metrics
from emotion_core.labels import ClassSet
from emotion_core.plots import learning_curves, per_class_bars, reliability_figure
from emotion_core.report import PAPER_COLUMNS, Column, display_value, paper_table
from pages.shared import frame, reports, ui

AGREEMENT_COLUMNS = {"votes": Column("Votes"), "images": Column("Images", "count"),
                     "accuracy": Column("Accuracy", "percent"), "mean_confidence": Column("Mean confidence", "percent")}

frame.setup_if_run_directly()
run = ui.require_run()
metrics = ui.metrics(run)
classes = ui.classes(run)
split = st.session_state[ui.SPLIT]
split_metrics = metrics["splits"][split]
st.title(f"Run {run.name}")
st.caption(f"Dataset: `{metrics.get('dataset', '?')}` · split **{split}**")

left, middle, right = st.columns(3)
left.metric("Accuracy", f"{split_metrics['accuracy']:.1%}")
middle.metric("Macro F1", f"{split_metrics['macro_f1']:.1%}")
right.metric("Images", f"{split_metrics['n_images']:,}")


report_args = (run.path, split, ui.tag_store_url(), ui.dataset_key(run))
html_button, markdown_button, _ = st.columns([1, 1, 2])
html_button.download_button("Download the report (HTML)", lambda: reports.report_document("html", *report_args),
                            file_name=f"emolens_{run.name}_{split}.html", mime="text/html", icon=":material/download:",
                            help="One self-contained file (tables, confusion matrix, emotion-aware metrics, trends, "
                                 "top errors with votes and Grad-CAM): opens offline, prints to PDF")
markdown_button.download_button("Download the report (Markdown)",
                                lambda: reports.report_document("markdown", *report_args),
                                file_name=f"emolens_{run.name}_{split}.md", mime="text/markdown",
                                icon=":material/download:", help="The same text and tables, without the images")

st.subheader("Per-class results")
ui.show_table(paper_table(split_metrics, metrics.get("split_counts", {}), classes=classes), PAPER_COLUMNS)
st.plotly_chart(per_class_bars(pd.DataFrame(split_metrics["per_class"]), classes=classes))



@st.cache_data(show_spinner=False, max_entries=8)
def _computed_emotion_metrics(run_path: str, mtime: float, split: str, _predictions: pd.DataFrame,
                              _classes: ClassSet) -> dict:
    """For a run evaluated before metrics.json held them: computed once per run, file version and split."""
    return split_emotion_metrics({}, _predictions, _classes)


def emotion_aware_section() -> None:
    """Polarity, ECC/EMC, calibration and confidence vs votes: what metrics.json holds, or computed."""
    aware = split_emotion_metrics(split_metrics, None, classes)
    if not aware:
        aware = _computed_emotion_metrics(*ui.predictions_version(run), split, ui.predictions(run), classes)
    st.subheader("Emotion-aware evaluation")
    polarity, calibration = aware.get("polarity"), aware.get("calibration")
    tracking = aware.get("confidence_vs_agreement")
    shown = [
        ("Polarity accuracy", polarity and display_value(polarity["accuracy"], "percent"),
         "Predicted class of the same polarity (positive / negative) as the label"),
        ("Errors crossing polarity", polarity and display_value(polarity["cross_polarity_error_share"], "percent"),
         "Share of the errors that go from a positive emotion to a negative one or back"),
        ("ECC", aware.get("ecc") is not None and f"{aware['ecc']:.3f}",
         "Emotion Confusion Confidence (Zhao et al., NeurIPS 2024): every image weighted by 1 / its emotional "
         "distance on Mikels' wheel (1 when right); higher is better"),
        ("EMC", aware.get("emc") is not None and f"{aware['emc']:.3f}",
         "Emotional Misclassification Confidence: the errors only, 1 for a wheel neighbour of the same polarity, "
         "1/7 for the far side of the other polarity; higher means milder errors"),
        ("ECE (15 bins)", calibration and f"{calibration['ece']:.3f}",
         "Expected calibration error: how far confidence is from accuracy, averaged over 15 confidence bins"),
        ("Confidence vs agreement (Spearman ρ)", tracking and tracking["spearman"] is not None
         and f"{tracking['spearman']:.2f}",
         "Rank correlation of the model's confidence with the share of votes for the label"),
    ]
    available = [(label, value, help_text) for label, value, help_text in shown if value]
    for column, (label, value, help_text) in zip(st.columns(max(len(available), 1)), available):
        column.metric(label, value, help=help_text)
    missing = [label for label, value, _ in shown if not value]
    if missing:
        st.caption(f"Not defined for this run: {', '.join(missing)} (polarity needs a polarity for every class, "
                   "ECC/EMC Mikels' eight emotions, calibration a confidence per image, agreement votes).")
    left, right = st.columns(2)
    if calibration:
        left.markdown("**Reliability diagram**")
        left.plotly_chart(reliability_figure(calibration["reliability"]))
    if tracking and tracking["levels"]:
        right.markdown("**Confidence and accuracy by vote agreement**")
        levels = pd.DataFrame(tracking["levels"]).assign(votes=lambda t: t["level"].map(LEVEL_NAMES))
        with right:
            ui.show_table(levels, AGREEMENT_COLUMNS)


emotion_aware_section()

history = ui.history(run)
if history is not None and len(history):
    st.subheader("Learning curves")
    st.plotly_chart(learning_curves(history))
