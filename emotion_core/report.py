"""Tables in the paper's layout."""
from __future__ import annotations

import pandas as pd

from emotion_core.labels import display_name


def paper_table(split_metrics: dict, split_counts: dict) -> pd.DataFrame:
    """Emotion | Prec. | Recall | F1 | Train/Dev/Test Count, with an Overall row (accuracy)."""
    rows = []
    for entry in split_metrics["per_class"]:
        counts = split_counts.get(entry["emotion"], {})
        rows.append({"Emotion": display_name(entry["emotion"]), "Prec.": entry["precision"], "Recall": entry["recall"],
                     "F1": entry["f1"], "Support": entry["support"], "Train Count": counts.get("train", 0),
                     "Dev Count": counts.get("dev", 0), "Test Count": counts.get("test", 0)})
    table = pd.DataFrame(rows)
    overall = {"Emotion": "Overall (accuracy)", "Prec.": split_metrics["accuracy"], "Recall": None, "F1": None,
               "Support": int(table["Support"].sum())}
    overall.update({c: int(table[c].sum()) for c in ("Train Count", "Dev Count", "Test Count")})
    return pd.concat([table, pd.DataFrame([overall])], ignore_index=True)
