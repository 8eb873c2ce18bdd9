"""Overview: accuracy, the paper-style per-class table, bars and learning curves."""
import pandas as pd
import streamlit as st

from emotion_core.plots import learning_curves, per_class_bars
from emotion_core.report import PAPER_COLUMNS, paper_table
from pages.shared import frame, ui

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

st.subheader("Per-class results")
ui.show_table(paper_table(split_metrics, metrics.get("split_counts", {}), classes=classes), PAPER_COLUMNS)
st.plotly_chart(per_class_bars(pd.DataFrame(split_metrics["per_class"]), classes=classes))

history = ui.history(run)
if history is not None and len(history):
    st.subheader("Learning curves")
    st.plotly_chart(learning_curves(history))
