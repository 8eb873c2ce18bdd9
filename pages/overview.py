"""Overview: accuracy, the paper-style per-class table, bars, emotion-aware metrics and learning curves."""
import pandas as pd
import streamlit as st

from emotion_core.emotion_metrics import LABELS_ONLY_NOTE, LEVEL_NAMES, lacks_ldl_entries, split_emotion_metrics
from emotion_core.html_report import AGREEMENT_COLUMNS
from emotion_core.labels import ClassSet
from emotion_core.ldl_metrics import AGREEMENT_KEY, LDL_KEY, MEASURES, measure_label
from emotion_core.plots import learning_curves, per_class_bars, reliability_figure
from emotion_core.report import PAPER_COLUMNS, Column, display_value, paper_table
from emotion_core.runs import has_probabilities
from pages.shared import frame, reports, ui

# accuracy and confidence per level are in the emotion-aware section's table already
LABEL_PROBABILITY_COLUMNS = {"votes": Column("Votes"), "images": Column("Images", "count"),
                             "mean_label_probability": Column("Mean predicted p(label)", "percent")}
MEASURE_HELP = {"chebyshev": "max over classes of |predicted − voted|", "clark": "sqrt(Σ (p − q)² / (p + q)²)",
                "canberra": "Σ |p − q| / (p + q)", "kl": "KL(votes ‖ predicted) = Σ q ln(q / p)",
                "cosine": "Σ p q / (‖p‖ ‖q‖)",
                "intersection": "Σ min(p, q): the share both distributions have in common"}

frame.setup_if_run_directly()
run = ui.require_run()
metrics = ui.metrics(run)
classes = ui.classes(run)
split = st.session_state[ui.SPLIT]
split_metrics = metrics["splits"][split]
with_probabilities = has_probabilities(metrics)  # False: a labels-only import, no distribution to measure
st.title(f"Run {run.name}")
trained = ui.training_target(run)
st.caption(f"Dataset: `{metrics.get('dataset', '?')}` · split **{split}**"
           + (f" · trained on: {trained}" if trained else ""))

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
def _computed_emotion_metrics(run_path: str, mtime: float, split: str, with_probabilities: bool, _split_metrics: dict,
                              _predictions: pd.DataFrame, _classes: ClassSet) -> dict:
    """For a run evaluated before metrics.json held them (all, or the LDL entries only): computed once per
    run, file version (re-evaluating rewrites metrics.json and the predictions together) and split."""
    return split_emotion_metrics(_split_metrics, _predictions, _classes, has_probabilities=with_probabilities)


def emotion_aware_section() -> dict:
    """Polarity, ECC/EMC, calibration and confidence vs votes: what metrics.json holds, or computed.
    Returns the split's emotion-aware metrics (split_emotion_metrics) for the sections below."""
    aware = split_emotion_metrics(split_metrics, None, classes)
    if lacks_ldl_entries(split_metrics, with_probabilities):
        aware = _computed_emotion_metrics(*ui.predictions_version(run), split, with_probabilities, split_metrics,
                                          ui.predictions(run), classes)
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
    return aware


def ldl_section(aware: dict) -> None:
    """How the predicted distribution meets the votes: the LDL measures where the dataset has per-class
    vote distributions, p(label) against the agree share on FI-style votes (computed from the predictions for a
    run whose metrics.json predates them); a one-line note instead for a labels-only import."""
    ldl, tracking = aware.get(LDL_KEY), aware.get(AGREEMENT_KEY)
    if not with_probabilities:
        st.caption(LABELS_ONLY_NOTE)
    if ldl:
        st.subheader("LDL metrics")
        st.caption(f"Predicted distribution against the annotators' vote distribution, mean over "
                   f"{ldl['images']:,} images with votes (↓ lower is better, ↑ higher is better; Geng's LDL "
                   "survey)" + (f"; {ldl['without_distribution']:,} images without a distribution left out"
                                if ldl["without_distribution"] else "") + ".")
        for column, measure in zip(st.columns(len(MEASURES)), MEASURES):
            column.metric(measure_label(measure), f"{ldl[measure]:.3f}", help=MEASURE_HELP[measure])
    if tracking:
        st.subheader("Predicted p(label) and the agree share")
        rho = tracking["spearman"]
        st.metric("p(label) vs agree share (Spearman ρ) ↑", "—" if rho is None else f"{rho:.2f}",
                  help=f"Rank correlation over {tracking['images']:,} images of the model's probability for the "
                       "label with the share of annotators who agreed with it (FI's votes confirm or reject the "
                       "label only, so there is no vote distribution to measure against)")
        if tracking["levels"]:
            levels = pd.DataFrame(tracking["levels"]).assign(votes=lambda t: t["level"].map(LEVEL_NAMES))
            ui.show_table(levels, LABEL_PROBABILITY_COLUMNS)


ldl_section(emotion_aware_section())

history = ui.history(run)
if history is not None and len(history):
    st.subheader("Learning curves")
    st.plotly_chart(learning_curves(history))
