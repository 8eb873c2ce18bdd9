"""Plotly figures for the dashboard (figures only: no Streamlit here)."""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from emotion_core.labels import FI_CLASSES, ClassSet
from emotion_core.votes import distribution_holds_shares


def confusion_figure(values: np.ndarray, counts: np.ndarray, *, normalised: bool,
                     selected: tuple[str, str] | None = None, classes: ClassSet = FI_CLASSES,
                     order: Sequence[str] | None = None,
                     hover_extras: Sequence[Sequence[str]] | None = None) -> go.Figure:
    """Heatmap plus a transparent marker per cell: clicking a go.Heatmap cell returns no
    selection in Streamlit, clicking a scatter marker does (customdata = [true, pred]).

    values / counts are in model order; `order` (class ids, e.g. Mikels' wheel) sets the rows' and
    columns' order on screen; hover_extras[i][j] (model order) adds a line to cell (i, j)'s hover."""
    ids = tuple(order) if order is not None else classes.names
    position = [classes.names.index(c) for c in ids]  # screen position -> model index
    values, counts = values[np.ix_(position, position)], counts[np.ix_(position, position)]
    names, n = [classes.display_name(c) for c in ids], len(ids)
    text = [[(f"{values[i, j]:.0%}" if normalised else f"{int(counts[i, j])}") for j in range(n)] for i in range(n)]
    figure = go.Figure(go.Heatmap(z=values, x=names, y=names, text=text, texttemplate="%{text}",
                                  colorscale="Blues", showscale=False, hoverinfo="skip"))
    cells = [(i, j) for i in range(n) for j in range(n)]
    customdata = [[ids[i], ids[j]] for i, j in cells]
    hover = "true %{y} → predicted %{x}<br>%{text} images"
    if hover_extras is not None:
        customdata = [[ids[i], ids[j], hover_extras[position[i]][position[j]]] for i, j in cells]
        hover += "<br>%{customdata[2]}"
    return _clickable_cells(figure, names, ids, cells, customdata, [int(counts[i, j]) for i, j in cells],
                            hover, selected, "#e4572e")


def _clickable_cells(figure: go.Figure, names: list[str], ids: Sequence[str], cells: list[tuple[int, int]],
                     customdata: list, text: list, hover: str, selected: tuple[str, str] | None,
                     outline: str) -> go.Figure:
    """A matrix heatmap made clickable: a transparent square marker per cell (customdata starts with
    [true, pred]), the selected cell outlined, the true classes down and the predicted ones across."""
    n = len(ids)
    figure.add_trace(go.Scatter(
        x=[names[j] for _, j in cells], y=[names[i] for i, _ in cells], mode="markers",
        marker={"symbol": "square", "size": 44, "opacity": 0.01, "color": "black"},
        customdata=customdata, hovertemplate=hover + "<extra></extra>", text=text, showlegend=False))
    if selected and selected[0] in ids and selected[1] in ids:
        row, column = ids.index(selected[0]), ids.index(selected[1])
        figure.add_shape(type="rect", x0=column - 0.5, x1=column + 0.5, y0=row - 0.5, y1=row + 0.5,
                         line={"color": outline, "width": 3})
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


def vote_bars(distribution: dict[str, float], label: str, *, classes: ClassSet = FI_CLASSES,
              shares: bool | None = None) -> go.Figure:
    """One image's annotator votes per class (counts, or Emotion6's shares), the label's bar highlighted.
    shares: whether the run's table holds shares (votes.holds_shares); None: guessed from this image
    alone (a one-hot share then reads as a count)."""
    values = list(distribution.values())
    total = sum(values)
    counted = not (distribution_holds_shares(distribution) if shares is None else shares)
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


def reliability_figure(reliability: list[dict]) -> go.Figure:
    """The reliability diagram: accuracy against mean confidence per confidence bin (bar width: the
    bin), the diagonal of perfect calibration, each bar's image count on hover."""
    table = pd.DataFrame(reliability)
    figure = go.Figure(go.Bar(x=(table["lower"] + table["upper"]) / 2, y=table["accuracy"],
                              width=table["upper"] - table["lower"], name="accuracy",
                              customdata=np.column_stack([table["mean_confidence"], table["images"]]),
                              hovertemplate="confidence %{customdata[0]:.1%}: accuracy %{y:.1%}"
                                            "<br>%{customdata[1]:,.0f} images<extra></extra>",
                              marker={"color": "#9bb7d4", "line": {"color": "#4a6d8c", "width": 1}}))
    figure.add_trace(go.Scatter(x=table["mean_confidence"], y=table["accuracy"], mode="markers",
                                name="mean confidence", marker={"color": "#e4572e", "size": 7}, hoverinfo="skip"))
    figure.add_trace(go.Scatter(x=[0, 1], y=[0, 1], mode="lines", name="perfect calibration",
                                line={"dash": "dash", "color": "gray"}, hoverinfo="skip"))
    figure.update_layout(xaxis={"title": "confidence", "range": [0, 1], "tickformat": ".0%"},
                         yaxis={"title": "accuracy", "range": [0, 1], "tickformat": ".0%"}, height=340,
                         margin={"l": 10, "r": 10, "t": 20, "b": 10}, legend={"orientation": "h", "y": -0.25})
    return figure


def difference_figure(difference: np.ndarray, *, selected: tuple[str, str] | None = None,
                      classes: ClassSet = FI_CLASSES) -> go.Figure:
    """Run B's confusion counts minus run A's, diverging colours centred on 0 (blue: more in B, red:
    more in A), clickable like confusion_figure: a transparent marker per cell, customdata [true, pred]."""
    ids, n = classes.names, len(classes)
    names = [classes.display_name(c) for c in ids]
    limit = max(int(np.abs(difference).max()), 1)
    text = [[f"{int(v):+d}" if v else "0" for v in row] for row in difference]
    figure = go.Figure(go.Heatmap(z=difference, x=names, y=names, text=text, texttemplate="%{text}",
                                  colorscale="RdBu", zmin=-limit, zmax=limit, zmid=0, showscale=True,
                                  colorbar={"title": "B − A", "thickness": 12}, hoverinfo="skip"))
    cells = [(i, j) for i in range(n) for j in range(n)]
    return _clickable_cells(figure, names, ids, cells, [[ids[i], ids[j]] for i, j in cells],
                            [text[i][j] for i, j in cells],
                            "true %{y} → predicted %{x}<br>run B − run A: %{text} images", selected, "#222222")
