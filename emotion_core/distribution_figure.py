"""The inspector's figure: one image's predicted distribution beside its votes (figures only: no Streamlit)."""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import plotly.graph_objects as go

from emotion_core.labels import FI_CLASSES, ClassSet

PREDICTED_COLOUR, VOTED_COLOUR, LABEL_COLOUR = "#4c78a8", "#9bb7d4", "#e4572e"


def predicted_vs_voted_figure(predicted: Sequence[float], voted: Sequence[float], label: str, *,
                              classes: ClassSet = FI_CLASSES, voted_name: str = "voted share") -> go.Figure:
    """Two bars per class in the class set's order (first at the top): the predicted probability and
    the voted share (NaN: no bar, e.g. FI, whose agree share is known for the label only). The label's
    class is marked in red on its voted bar; values as text on the bars."""
    predicted, voted = np.asarray(predicted, dtype=float), np.asarray(voted, dtype=float)
    if predicted.shape != (len(classes),) or voted.shape != (len(classes),):
        raise ValueError(f"need one value per class ({len(classes)}), got {predicted.shape} and {voted.shape}")
    names = [classes.display_name(n) for n in classes.names]
    voted_colours = [LABEL_COLOUR if n == label else VOTED_COLOUR for n in classes.names]
    figure = go.Figure([
        go.Bar(name="predicted", x=list(predicted), y=names, orientation="h", marker={"color": PREDICTED_COLOUR},
               text=[f"{p:.0%}" for p in predicted], textposition="auto"),
        go.Bar(name=voted_name, x=[None if np.isnan(v) else v for v in voted], y=names, orientation="h",
               marker={"color": voted_colours}, text=["" if np.isnan(v) else f"{v:.0%}" for v in voted],
               textposition="auto"),
    ])
    figure.update_layout(barmode="group", xaxis={"range": [0, 1], "tickformat": ".0%", "title": "probability · vote share"},
                         yaxis={"autorange": "reversed"}, height=80 + 34 * len(classes),
                         legend={"orientation": "h", "y": 1.02, "yanchor": "bottom", "x": 0},
                         margin={"l": 10, "r": 10, "t": 30, "b": 10})
    return figure
