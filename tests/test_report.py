"""Tables for people: emotion_core.report's formatting (no None, NaN or Infinity on screen)."""
import math

import numpy as np
import pandas as pd
import pytest

from emotion_core.report import MISSING, Column, display_value, format_table, paper_table

TREND = {"feature": Column("Feature"), "cell_share": Column("Share of the cell", "percent"),
         "lift": Column("Lift", "ratio", infinite="only in errors"), "p_value": Column("p-value", "p"),
         "in_cell": Column("In the cell", "count")}


def trend_rows() -> pd.DataFrame:
    return pd.DataFrame({"feature": ["auto: monochrome", "tag: graveyard", "auto: warm"],
                         "cell_share": [0.6875, float("nan"), 1.0], "lift": [math.inf, float("nan"), 2.3456],
                         "p_value": [0.00004, None, 0.0412], "in_cell": [11, 0, 1234],
                         "not shown": ["x", "y", "z"]})


def test_values_are_written_for_people():
    assert display_value(0.6012, "percent") == "60.1%"   # one decimal, like the paper's tables
    assert display_value(1.0, "percent") == "100.0%"
    assert display_value(2.3456, "ratio") == "2.35"
    assert display_value(0.0412, "p") == "0.041" and display_value(4e-5, "p") == "< 0.001"
    assert display_value(1234, "count") == "1,234" and display_value(np.int64(7), "count") == "7"
    for missing in (None, float("nan"), np.nan, pd.NA):
        assert display_value(missing, "percent") == MISSING == "—"
    assert display_value(math.inf, "ratio", infinite="only in errors") == "only in errors"
    assert display_value(math.inf, "ratio") == MISSING and display_value(-math.inf, "ratio") == MISSING
    assert display_value("Anger", "text") == "Anger"


def test_a_table_gets_word_headers_and_no_none_nan_or_infinity():
    shown = format_table(trend_rows(), TREND)
    assert list(shown.columns) == ["Feature", "Share of the cell", "Lift", "p-value", "In the cell"]
    assert shown.to_dict("records") == [
        {"Feature": "auto: monochrome", "Share of the cell": "68.8%", "Lift": "only in errors", "p-value": "< 0.001",
         "In the cell": "11"},
        {"Feature": "tag: graveyard", "Share of the cell": "—", "Lift": "—", "p-value": "—", "In the cell": "0"},
        {"Feature": "auto: warm", "Share of the cell": "100.0%", "Lift": "2.35", "p-value": "0.041",
         "In the cell": "1,234"}]


def test_bad_columns_and_kinds_are_one_clear_error():
    with pytest.raises(ValueError, match="no column 'lift_ratio'; it has: feature"):
        format_table(trend_rows(), {"lift_ratio": Column("Lift", "ratio")})
    with pytest.raises(ValueError, match="valid: text, count, percent, ratio, p"):
        Column("Lift", "fraction")


def test_the_paper_table_overall_row_has_empty_recall_and_f1():
    per_class = [{"emotion": "anger", "precision": 0.5, "recall": 0.25, "f1": 1 / 3, "support": 4}]
    table = paper_table({"per_class": per_class, "accuracy": 0.6012}, {"anger": {"train": 80, "dev": 5, "test": 4}})
    from emotion_core.report import PAPER_COLUMNS

    shown = format_table(table, PAPER_COLUMNS)
    assert shown.iloc[-1].tolist() == ["Overall (accuracy)", "60.1%", "—", "—", "4", "80", "5", "4"]
    assert shown.iloc[0].tolist() == ["Anger", "50.0%", "25.0%", "33.3%", "4", "80", "5", "4"]
