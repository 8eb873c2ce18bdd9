"""Plotly figures for the dashboard (figures only: no Streamlit here)."""
from __future__ import annotations

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from emotion_core.labels import FI_CLASSES, ClassSet


def confusion_figure(values: np.ndarray, counts: np.ndarray, *, normalised: bool,
                     selected: tuple[str, str] | None = None, classes: ClassSet = FI_CLASSES) -> go.Figure:
    """Heatmap plus a transparent marker per cell: clicking a go.Heatmap cell returns no
    selection in Streamlit, clicking a scatter marker does (customdata = [true, pred])."""
    ids, names, n = classes.names, list(classes.display), len(classes)
    text = [[(f"{values[i, j]:.0%}" if normalised else f"{int(counts[i, j])}") for j in range(n)] for i in range(n)]
    figure = go.Figure(go.Heatmap(z=values, x=names, y=names, text=text, texttemplate="%{text}",
                                  colorscale="Blues", showscale=False, hoverinfo="skip"))
    true_ids = [ids[i] for i in range(n) for _ in range(n)]
    pred_ids = [ids[j] for _ in range(n) for j in range(n)]
    figure.add_trace(go.Scatter(
        x=[classes.display_name(p) for p in pred_ids], y=[classes.display_name(t) for t in true_ids], mode="markers",
        marker={"symbol": "square", "size": 44, "opacity": 0.01, "color": "black"},
        customdata=[[t, p] for t, p in zip(true_ids, pred_ids)],
        hovertemplate="true %{y} → predicted %{x}<br>%{text} images<extra></extra>",
        text=[int(counts[classes.names.index(t), classes.names.index(p)]) for t, p in zip(true_ids, pred_ids)],
        showlegend=False))
    if selected:
        figure.add_shape(type="rect", x0=classes.names.index(selected[1]) - 0.5, x1=classes.names.index(selected[1]) + 0.5,
                         y0=classes.names.index(selected[0]) - 0.5, y1=classes.names.index(selected[0]) + 0.5,
                         line={"color": "#e4572e", "width": 3})
    figure.update_layout(xaxis={"title": "predicted", "side": "top", "range": [-0.5, n - 0.5], "fixedrange": True},
                         yaxis={"title": "true", "autorange": False, "range": [n - 0.5, -0.5], "fixedrange": True},
                         height=520, margin={"l": 10, "r": 10, "t": 60, "b": 10}, clickmode="event+select",
                         dragmode=False)
    return figure


def per_class_bars(table: pd.DataFrame, *, classes: ClassSet = FI_CLASSES) -> go.Figure:
    figure = go.Figure()
    for column in ("precision", "recall", "f1"):
        figure.add_trace(go.Bar(name=column.capitalize() if column != "f1" else "F1",
                                x=[classes.display_name(e) for e in table["emotion"]], y=table[column]))
    figure.update_layout(barmode="group", yaxis={"tickformat": ".0%", "range": [0, 1]}, height=340,
                         margin={"l": 10, "r": 10, "t": 20, "b": 10})
    return figure


def learning_curves(history: pd.DataFrame) -> go.Figure:
    figure = go.Figure()
    for column, name in (("train_acc", "train accuracy"), ("dev_acc", "dev accuracy")):
        figure.add_trace(go.Scatter(x=history["epoch"], y=history[column], mode="lines+markers", name=name,
                                    text=history["stage"], hovertemplate="epoch %{x} (%{text}): %{y:.1%}"))
    figure.update_layout(xaxis={"title": "epoch"}, yaxis={"tickformat": ".0%"}, height=320,
                         margin={"l": 10, "r": 10, "t": 20, "b": 10})
    return figure


def probability_bars(probabilities: np.ndarray, *, classes: ClassSet = FI_CLASSES) -> go.Figure:
    figure = go.Figure(go.Bar(x=list(probabilities), y=list(classes.display), orientation="h",
                              text=[f"{p:.1%}" for p in probabilities], textposition="auto"))
    figure.update_layout(xaxis={"range": [0, 1], "tickformat": ".0%"}, yaxis={"autorange": "reversed"},
                         height=300, margin={"l": 10, "r": 10, "t": 10, "b": 10})
    return figure


def vote_bars(distribution: dict[str, float], label: str, *, classes: ClassSet = FI_CLASSES) -> go.Figure:
    """One image's annotator votes per class (counts, or Emotion6's shares), the label's bar highlighted."""
    values = list(distribution.values())
    total = sum(values)
    counted = all(float(v).is_integer() for v in values)
    text = [f"{v:.0f}" if counted else f"{v / total:.0%}" if total else "" for v in values]
    colours = ["#e4572e" if name == label else "#9bb7d4" for name in distribution]
    figure = go.Figure(go.Bar(x=values, y=[classes.display_name(name) for name in distribution], orientation="h",
                              text=text, textposition="auto", marker={"color": colours}, hoverinfo="skip"))
    figure.update_layout(xaxis={"title": "votes" if counted else "share of votes",
                                **({} if counted else {"tickformat": ".0%"})},
                         yaxis={"autorange": "reversed"}, height=60 + 22 * len(values),
                         margin={"l": 10, "r": 10, "t": 10, "b": 10})
    return figure


def accuracy_by_agreement_figure(table: pd.DataFrame, *, x_title: str = "agree/total votes for the label") -> go.Figure:
    figure = go.Figure(go.Bar(x=table["votes"], y=table["accuracy"], text=[f"n={n}" for n in table["images"]],
                              textposition="outside"))
    figure.update_layout(xaxis={"title": x_title, "type": "category"},
                         yaxis={"title": "accuracy", "tickformat": ".0%", "range": [0, 1.1]}, height=340,
                         margin={"l": 10, "r": 10, "t": 20, "b": 10})
    return figure
