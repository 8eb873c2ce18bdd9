"""Vote agreement: how much of the error is label ambiguity."""
import streamlit as st

from emotion_core.confusion import (
    VOTE_GROUP_COLUMNS,
    accuracy_by_agreement,
    accuracy_by_vote_group,
    matrix,
    unanimous_only,
)
from emotion_core.plots import accuracy_by_agreement_figure, confusion_figure
from emotion_core.votes import has_distribution, missing_votes_note
from pages.shared import frame, ui

frame.setup_if_run_directly()
run = ui.require_run()
predictions = ui.predictions(run)
st.title("Vote agreement")
note = missing_votes_note(predictions)
if note:
    st.info(note)
    st.stop()

distribution = has_distribution(predictions)  # LDL, Emotion6: votes over every class, not agree/disagree
overall = predictions["correct"].mean()
unanimous = unanimous_only(predictions)
left, right = st.columns(2)
left.metric("Accuracy, all images", f"{overall:.1%}", help=f"{len(predictions)} images")
right.metric("Accuracy, unanimous votes only",
             f"{unanimous['correct'].mean():.1%}" if len(unanimous) else "n/a",
             delta=f"{unanimous['correct'].mean() - overall:+.1%}" if len(unanimous) else None,
             help=f"{len(unanimous)} images")
st.subheader("Accuracy by vote agreement")
st.plotly_chart(accuracy_by_agreement_figure(
    accuracy_by_agreement(predictions),
    x_title="share of the votes for the label" if distribution else "agree/total votes for the label"))
ui.show_table(accuracy_by_vote_group(predictions), VOTE_GROUP_COLUMNS)
if distribution:
    st.caption("Agreement is the share of an image's votes that went to its label. The groups overlap: "
               "non-unanimous counts every image with a vote for another class, the strongly divided ones "
               "(label at most one vote ahead of the runner-up class; for shares without counts, 10 points) "
               "included (the same definition as the cell summary and the gallery filter).")
else:
    st.caption("The groups overlap: non-unanimous counts every image with a disagree vote, the strongly divided "
               "ones included (the same definition as the cell summary and the gallery filter).")
st.subheader("Confusion matrix, unanimous images only")
if len(unanimous):
    classes = ui.classes(run)
    counts = matrix(unanimous, classes=classes)
    st.plotly_chart(confusion_figure(counts, counts, normalised=False, classes=classes), key="unanimous_matrix")
else:
    st.caption("No image here has unanimous votes.")
