"""A run's whole analysis (or two runs') as one self-contained document: HTML and Markdown.

The document is a list of blocks (headings, paragraphs, tables, a heatmap table, a chart, images)
rendered twice: as one HTML file that opens offline (inline CSS, inline SVG, JPEG thumbnails as data
URLs, no script, nothing fetched: plotly.js alone would be 4.7 MB) and prints to PDF from a browser,
and as Markdown with the same text and tables (images left out).
"""
from __future__ import annotations

import base64
import datetime as dt
import html
import io
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from emotion_core.confusion import VOTE_GROUP_COLUMNS, accuracy_by_agreement, accuracy_by_vote_group
from emotion_core.emotion_metrics import LABELS_ONLY_NOTE, LEVEL_NAMES, split_emotion_metrics
from emotion_core.labels import ClassSet, run_classes
from emotion_core.ldl_metrics import AGREEMENT_KEY, LDL_KEY, MEASURES, measure_label
from emotion_core.report import PAPER_COLUMNS, Column, display_value, format_table, paper_table
from emotion_core.runs import (demo_note, has_cams, has_probabilities, load_cams, load_metrics, load_predictions,
                               predictions_of_split)
from emotion_core.votes import votes_description

TOP_CELLS = 3         # the largest confusions shown with their images
IMAGES_PER_CELL = 6   # their most confident errors
PARAGRAPH_CELLS = 8   # trend paragraphs for this many of the largest confusions
THUMBNAIL = 160       # pixels, the longer side of each image (a CAM pair is two of them)
AGREEMENT_COLUMNS = {"votes": Column("Votes"), "images": Column("Images", "count"),
                     "accuracy": Column("Accuracy", "percent"), "mean_confidence": Column("Mean confidence", "percent")}
BY_VOTES_COLUMNS = {"votes": Column("Votes for the label"), "images": Column("Images", "count"),
                    "accuracy": Column("Accuracy", "percent")}
RELIABILITY_COLUMNS = {"range": Column("Confidence"), "images": Column("Images", "count"),
                       "mean_confidence": Column("Mean confidence", "percent"), "accuracy": Column("Accuracy", "percent")}


# ---- blocks ---------------------------------------------------------------------------------------

@dataclass
class Heading:
    text: str
    level: int = 2


@dataclass
class Paragraph:
    text: str  # **bold** is the only markup


@dataclass
class Table:
    frame: pd.DataFrame  # every cell a string for people (emotion_core.report.format_table)
    caption: str = ""


@dataclass
class Heatmap:
    counts: np.ndarray
    rows: list[str]
    columns: list[str]
    caption: str = ""
    diverging: bool = False  # a difference matrix: blue for more, red for fewer


@dataclass
class Chart:
    svg: str
    caption: str = ""


@dataclass
class Images:
    items: list[tuple[bytes, str]] = field(default_factory=list)  # (JPEG, caption)


Block = Heading | Paragraph | Table | Heatmap | Chart | Images


@dataclass
class Report:
    title: str
    blocks: list[Block]

    def to_html(self) -> str:
        body = "\n".join(_html_block(block) for block in self.blocks)
        return (f"<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
                f"<title>{html.escape(self.title)}</title><style>{CSS}</style></head>\n"
                f"<body>\n<h1>{html.escape(self.title)}</h1>\n{body}\n</body></html>\n")

    def to_markdown(self) -> str:
        parts = [f"# {self.title}"] + [_markdown_block(block) for block in self.blocks]
        return "\n\n".join(p for p in parts if p).rstrip() + "\n"


CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;
color:#1d2733;line-height:1.45}
h1{font-size:1.6em;border-bottom:2px solid #4a6d8c}h2{font-size:1.25em;margin-top:1.8em;color:#2c4a66}
h3{font-size:1.05em}
table{border-collapse:collapse;margin:.6em 0 1.2em;font-size:.85em}
th,td{border:1px solid #c9d3dd;padding:3px 7px;text-align:left}th{background:#eef2f6}
td.n{text-align:right;font-variant-numeric:tabular-nums}
caption{caption-side:bottom;font-size:.85em;color:#56606b;text-align:left;padding-top:3px}
table.heatmap td{min-width:3.2em;text-align:center}
.images{display:flex;flex-wrap:wrap;gap:10px}
figure{margin:0;width:340px;font-size:.78em;color:#333}figure img{max-width:100%;display:block}
@media print{body{max-width:none;margin:0}h2{break-after:avoid}table,figure,svg{break-inside:avoid}}
"""


NUMBER = re.compile(r"^([−+-]?[\d.,]+%?|< ?0\.\d+|—)$")


def _inline(text: str) -> str:
    """Escaped text with **bold** as <strong>."""
    return re.sub(r"\*\*(.+?)\*\*", r"<strong>\1</strong>", html.escape(text))


def _html_table(frame: pd.DataFrame, caption: str = "", cell_styles: list[list[str]] | None = None,
                css_class: str = "") -> str:
    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in frame.columns)
    rows = []
    for r, values in enumerate(frame.itertuples(index=False)):
        cells = []
        for c, value in enumerate(values):
            style = f' style="{cell_styles[r][c]}"' if cell_styles and cell_styles[r][c] else ""
            number = ' class="n"' if c and NUMBER.match(str(value)) else ""  # numbers right, words left
            cells.append(f"<td{number}{style}>{_inline(str(value))}</td>")
        rows.append("<tr>" + "".join(cells) + "</tr>")
    caption = f"<caption>{_inline(caption)}</caption>" if caption else ""
    klass = f' class="{css_class}"' if css_class else ""
    return f"<table{klass}>{caption}<thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>"


def _heatmap_frame(block: Heatmap) -> pd.DataFrame:
    frame = pd.DataFrame([[f"{int(v):+d}" if block.diverging and v else f"{int(v)}" for v in row]
                          for row in block.counts], columns=block.columns)
    frame.insert(0, "true ↓ / predicted →", block.rows)
    return frame


def _heatmap_styles(block: Heatmap) -> list[list[str]]:
    counts = np.asarray(block.counts, dtype=float)
    scale = np.abs(counts).max() or 1.0
    styles = []
    for row in counts:
        line = [""]
        for value in row:
            strength = abs(value) / scale
            if block.diverging:
                colour = (f"rgba(33,102,172,{strength:.2f})" if value > 0 else f"rgba(178,24,43,{strength:.2f})")
            else:
                colour = f"rgba(33,102,172,{0.85 * strength:.2f})"
            text = "#fff" if strength > 0.55 else "#1d2733"
            line.append(f"background:{colour};color:{text};-webkit-print-color-adjust:exact;print-color-adjust:exact")
        styles.append(line)
    return styles


def _html_block(block: Block) -> str:
    if isinstance(block, Heading):
        return f"<h{block.level}>{html.escape(block.text)}</h{block.level}>"
    if isinstance(block, Paragraph):
        return f"<p>{_inline(block.text)}</p>"
    if isinstance(block, Table):
        return _html_table(block.frame, block.caption)
    if isinstance(block, Heatmap):
        return _html_table(_heatmap_frame(block), block.caption, _heatmap_styles(block), "heatmap")
    if isinstance(block, Chart):
        caption = f"<p><small>{_inline(block.caption)}</small></p>" if block.caption else ""
        return f"<div>{block.svg}{caption}</div>"
    figures = [f'<figure><img alt="{html.escape(text)}" src="data:image/jpeg;base64,{base64.b64encode(jpeg).decode()}">'
               f"<figcaption>{_inline(text)}</figcaption></figure>" for jpeg, text in block.items]
    return f'<div class="images">{"".join(figures)}</div>'


def _markdown_table(frame: pd.DataFrame, caption: str = "") -> str:
    def cell(value) -> str:
        return str(value).replace("|", "\\|").replace("\n", " ")

    lines = ["| " + " | ".join(cell(c) for c in frame.columns) + " |", "|" + "---|" * len(frame.columns)]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in frame.itertuples(index=False)]
    return "\n".join(lines) + (f"\n\n*{caption}*" if caption else "")


def _markdown_block(block: Block) -> str:
    if isinstance(block, Heading):
        return "#" * block.level + " " + block.text
    if isinstance(block, Paragraph):
        return block.text
    if isinstance(block, Table):
        return _markdown_table(block.frame, block.caption)
    if isinstance(block, Heatmap):
        return _markdown_table(_heatmap_frame(block), block.caption)
    if isinstance(block, Chart):
        return ""  # its numbers are in a table next to it
    return "\n".join(f"- {text}" for _, text in block.items)


# ---- charts and images -----------------------------------------------------------------------------

def reliability_svg(reliability: list[dict], size: int = 260) -> str:
    """The reliability diagram as inline SVG: a bar per confidence bin at its accuracy, the diagonal."""
    pad, inner = 34, size - 44
    def x(v: float) -> float:
        return pad + v * inner

    def y(v: float) -> float:
        return 10 + (1 - v) * inner

    bars = "".join(f'<rect x="{x(b["lower"]):.1f}" y="{y(b["accuracy"]):.1f}" width="{(b["upper"] - b["lower"]) * inner:.1f}" '
                   f'height="{b["accuracy"] * inner:.1f}" fill="#9bb7d4" stroke="#4a6d8c"/>' for b in reliability)
    dots = "".join(f'<circle cx="{x(b["mean_confidence"]):.1f}" cy="{y(b["accuracy"]):.1f}" r="2.5" fill="#e4572e"/>'
                   for b in reliability)
    ticks = "".join(f'<text x="{x(t):.1f}" y="{size - 18}" font-size="9" text-anchor="middle">{t:.0%}</text>'
                    f'<text x="{pad - 4}" y="{y(t) + 3:.1f}" font-size="9" text-anchor="end">{t:.0%}</text>'
                    for t in (0, 0.5, 1))
    return (f'<svg width="{size}" height="{size}" viewBox="0 0 {size} {size}" role="img" '
            f'aria-label="reliability diagram">'
            f'<rect x="{pad}" y="10" width="{inner}" height="{inner}" fill="none" stroke="#888"/>{bars}{dots}'
            f'<line x1="{x(0)}" y1="{y(0)}" x2="{x(1)}" y2="{y(1)}" stroke="#666" stroke-dasharray="4 3"/>{ticks}'
            f'<text x="{pad + inner / 2}" y="{size - 4}" font-size="10" text-anchor="middle">confidence</text>'
            f'<text x="10" y="{10 + inner / 2}" font-size="10" text-anchor="middle" '
            f'transform="rotate(-90 10 {10 + inner / 2})">accuracy</text></svg>')


def _jpeg(image) -> bytes:
    buffer = io.BytesIO()
    image.convert("RGB").save(buffer, format="JPEG", quality=80)
    return buffer.getvalue()


def error_thumbnail(path: str, cams: np.ndarray | None) -> bytes | None:
    """The image small, with its Grad-CAM for the predicted and the true class side by side when the run
    has them; None when the image cannot be read."""
    from emotion_core.images import ImageLoadError, load_image
    from emotion_core.overlay import overlay, side_by_side

    try:
        image = load_image(path)
    except (ImageLoadError, OSError):
        return None
    image.thumbnail((THUMBNAIL, THUMBNAIL))
    if cams is None:
        return _jpeg(image)
    return _jpeg(side_by_side(overlay(image, np.asarray(cams[0], dtype=np.float32)),
                              overlay(image, np.asarray(cams[1], dtype=np.float32))))


# ---- the analysis --------------------------------------------------------------------------------

@dataclass
class RunData:
    path: Path
    metrics: dict
    classes: ClassSet
    split: str
    predictions: pd.DataFrame  # the split's

    @property
    def split_metrics(self) -> dict:
        return self.metrics["splits"][self.split]

    @property
    def has_probabilities(self) -> bool:
        """False for a labels-only import (its p_<class> are one-hot stand-ins)."""
        return has_probabilities(self.metrics)


def read_run(run_dir: str | os.PathLike, split: str | None = None) -> RunData:
    """A run's metrics, class set and one split's predictions; a one-line ValueError when it is not an
    evaluated run or lacks the split."""
    path = Path(run_dir)
    metrics = load_metrics(path)
    if not metrics.get("splits"):
        raise ValueError(f"{path} is not an evaluated run (no metrics.json): run python -m training.evaluate first")
    splits = list(metrics["splits"])
    split = split or ("test" if "test" in splits else splits[0])
    if split not in splits:
        raise ValueError(f"run {path.name} has no evaluated split {split!r}; it has: {', '.join(splits)}")
    # no row of the split is an error: reporting every split under the split's name would mislabel the numbers
    rows = predictions_of_split(load_predictions(path), split, lambda present: (
        f"run {path.name} has no predictions on split {split!r}; it has: {present}"))
    return RunData(path, metrics, run_classes(path), split, rows)


def build_report(run_dir: str | os.PathLike, *, split: str | None = None, compare: str | os.PathLike | None = None,
                 tags: pd.DataFrame | None = None) -> Report:
    """The whole analysis of one run (and, with compare, how a second run differs from it)."""
    run = read_run(run_dir, split)
    blocks: list[Block] = []
    blocks += _overview(run)
    blocks += _search_table(run)
    blocks += _confusion(run)
    blocks += _agreement(run)
    blocks += _emotion_aware(run)
    blocks += _trends(run, tags)
    blocks += _top_errors(run)
    if compare is not None:
        blocks += _comparison(run, read_run(compare, run.split))
    title = f"EmoLens report: run {run.path.name}" + (f" vs {Path(compare).name}" if compare is not None else "")
    return Report(title, blocks)


def _overview(run: RunData) -> list[Block]:
    values = run.split_metrics
    note = demo_note(run.path)
    text = (f"Dataset **{Path(run.metrics.get('dataset', '?')).name}**, split **{run.split}**, "
            f"{values['n_images']:,} images, {len(run.classes)} classes ({', '.join(run.classes.display)}). "
            f"Accuracy **{values['accuracy']:.1%}**, macro F1 **{values['macro_f1']:.1%}**. "
            f"Made {dt.datetime.now().strftime('%Y-%m-%d %H:%M')} by EmoLens.")
    blocks: list[Block] = [Paragraph(text)]
    if note:
        blocks.append(Paragraph(f"**Synthetic demo:** {note}"))
    blocks += [Heading("Per-class results"),
               Table(format_table(paper_table(values, run.metrics.get("split_counts", {}), classes=run.classes),
                                  PAPER_COLUMNS), f"Precision, recall and F1 on the {run.split} split; "
                                                  "image counts per split")]
    return blocks


def _search_table(run: RunData) -> list[Block]:
    """The architecture-search table when the run is one of a training.search folder's configs."""
    results = run.path.parent / "results.csv"
    if not results.is_file():
        return []
    table = pd.read_csv(results)
    if "Run" not in table or run.path.name not in set(table["Run"].astype(str)):
        return []
    columns = {c: Column(c, "percent" if "Accuracy" in c else "count" if c == "Parameters" else "text")
               for c in table.columns}
    shown = format_table(table.astype({c: str for c in table.columns if columns[c].kind == "text"}), columns)
    return [Heading("Architecture search"),
            Table(shown, f"Every configuration of the search this run belongs to ({run.path.name}); "
                         "accuracies at the best dev epoch")]


def _confusion(run: RunData) -> list[Block]:
    counts = np.asarray(run.split_metrics["confusion_matrix"])
    names = list(run.classes.display)
    return [Heading("Confusion matrix"),
            Heatmap(counts, names, names, "Images per true (row) and predicted (column) class")]


def _agreement(run: RunData) -> list[Block]:
    blocks: list[Block] = [Heading("Vote agreement")]
    groups = accuracy_by_vote_group(run.predictions)
    blocks.append(Table(format_table(groups, VOTE_GROUP_COLUMNS), "Accuracy per vote group (the groups overlap: "
                                                                  "non-unanimous includes strongly divided)"))
    by_votes = accuracy_by_agreement(run.predictions)
    if len(by_votes):
        blocks.append(Table(format_table(by_votes, BY_VOTES_COLUMNS), "Accuracy by the share of votes for the label"))
    return blocks


def _emotion_aware(run: RunData) -> list[Block]:
    aware = split_emotion_metrics(run.split_metrics, run.predictions, run.classes,
                                  has_probabilities=run.has_probabilities)
    if not aware:
        return []
    rows = emotion_metric_rows(aware)
    blocks: list[Block] = [Heading("Emotion-aware evaluation"),
                           Table(pd.DataFrame(rows, columns=["Metric", "Value", "What it measures"]))]
    if not run.has_probabilities:
        blocks.append(Paragraph(LABELS_ONLY_NOTE))
    calibration = aware.get("calibration")
    if calibration:
        bins = pd.DataFrame(calibration["reliability"])
        bins["range"] = [f"{lo:.0%}–{hi:.0%}" for lo, hi in zip(bins["lower"], bins["upper"])]
        blocks += [Chart(reliability_svg(calibration["reliability"]),
                         "Reliability diagram: accuracy per confidence bin (bars), the bin's mean confidence (dots), "
                         "perfect calibration (dashed)"),
                   Table(format_table(bins, RELIABILITY_COLUMNS), "Reliability diagram data (15 equal-width bins)")]
    tracking = aware.get("confidence_vs_agreement")
    if tracking and tracking["levels"]:
        levels = pd.DataFrame(tracking["levels"]).assign(votes=lambda t: t["level"].map(LEVEL_NAMES))
        blocks.append(Table(format_table(levels, AGREEMENT_COLUMNS), "Confidence and accuracy by vote agreement"))
    return blocks


def emotion_metric_rows(aware: dict) -> list[list[str]]:
    """[metric, value, meaning] for each emotion-aware metric the run has."""
    rows = []
    polarity = aware.get("polarity")
    if polarity:
        rows.append(["Polarity accuracy", display_value(polarity["accuracy"], "percent"),
                     "predicted class of the label's polarity (positive / negative)"])
        rows.append(["Errors crossing polarity", display_value(polarity["cross_polarity_error_share"], "percent"),
                     f"{polarity['cross_polarity_errors']:,} of {polarity['errors']:,} errors go from positive to "
                     "negative or back"])
    if aware.get("ecc") is not None:
        rows.append(["ECC", f"{aware['ecc']:.3f}", "Emotion Confusion Confidence (Zhao et al., NeurIPS 2024): each "
                                                   "image weighted by 1 / its emotional distance on Mikels' wheel"])
    if "emc" in aware:
        rows.append(["EMC", display_value(None) if aware["emc"] is None else f"{aware['emc']:.3f}",
                     "Emotional Misclassification Confidence: the errors only; 1 = all to a same-polarity neighbour"])
    if aware.get("calibration"):
        rows.append(["Expected calibration error", f"{aware['calibration']['ece']:.3f}",
                     "15 equal-width confidence bins; 0 = confidence matches accuracy"])
    tracking = aware.get("confidence_vs_agreement")
    if tracking:
        rho = "—" if tracking["spearman"] is None else f"{tracking['spearman']:.3f}"
        p_value = "" if tracking["p_value"] is None else f", p {display_value(tracking['p_value'], 'p')}"
        rows.append(["Confidence vs vote agreement (Spearman ρ)", rho,
                     f"over {tracking['images']:,} images with votes{p_value}"])
    label_tracking, ldl = aware.get(AGREEMENT_KEY), aware.get(LDL_KEY)
    if label_tracking:
        rho = "—" if label_tracking["spearman"] is None else f"{label_tracking['spearman']:.3f}"
        rows.append(["p(label) vs agree share (Spearman ρ)", rho,
                     f"the predicted probability of the label against the agree share, {label_tracking['images']:,} "
                     "images"])
    for measure in MEASURES if ldl else ():
        rows.append([f"LDL {measure_label(measure)}", f"{ldl[measure]:.3f}",
                     f"predicted vs voted distribution, mean over {ldl['images']:,} images (Geng's LDL survey)"])
    return rows


def _trends(run: RunData, tags: pd.DataFrame | None) -> list[Block]:
    from emotion_core.attributes import read_attributes
    from emotion_core.trends import cell_paragraph, discover, error_cells, image_features, short_name, standouts

    cells = error_cells(run.predictions, classes=run.classes)[:PARAGRAPH_CELLS]
    if not cells:
        return []
    attributes = read_attributes(run.path)
    features = image_features(run.predictions, attributes, tags)
    discovered = discover(run.predictions, features, attributes)
    blocks: list[Block] = [Heading("Trends in the largest confusions")]
    for true, pred in cells:
        blocks.append(Paragraph(cell_paragraph(run.predictions, features, true, pred, classes=run.classes)))
        found = standouts(discovered, true, pred)
        if len(found):
            names = ", ".join(f"{short_name(r.feature)} (q = {r.q_value:.2g})" for r in found.itertuples())
            blocks.append(Paragraph(f"What stands out (Benjamini-Hochberg q ≤ 0.1): {names}."))
    return blocks


def _top_errors(run: RunData) -> list[Block]:
    from emotion_core.trends import error_cells

    cells = error_cells(run.predictions, classes=run.classes)[:TOP_CELLS]
    if not cells:
        return []
    cams = load_cams(run.path) if has_cams(run.path) else None
    dataset = Path(run.metrics.get("dataset", ""))
    blocks: list[Block] = [Heading("Top errors of the largest confusions"),
                           Paragraph("The most confident mistakes of each cell, with their votes"
                                     + (" and Grad-CAM (predicted class left, true class right)." if cams is not None
                                        else " (this run holds no Grad-CAM maps)."))]
    for true, pred in cells:
        rows = run.predictions[(run.predictions["label"] == true) & (run.predictions["pred"] == pred)]
        rows = rows.sort_values(["confidence", "image_id"], ascending=[False, True]).head(IMAGES_PER_CELL)
        items = []
        for row in rows.itertuples():
            path = row.path if Path(row.path).is_absolute() else str(dataset / row.path)
            cam = cams[int(row.cam_index)] if cams is not None and hasattr(row, "cam_index") else None
            jpeg = error_thumbnail(path, cam)
            caption = (f"{row.image_id}: {row.confidence:.0%} confident · "
                       f"{votes_description(getattr(row, 'agree', None), getattr(row, 'disagree', None))}")
            items.append((jpeg or b"", caption if jpeg else caption + " (image unavailable)"))
        blocks.append(Heading(f"{run.classes.display_name(true)} → {run.classes.display_name(pred)}", 3))
        shown = [item for item in items if item[0]]
        blocks.append(Images(shown))
        missing = [text for jpeg, text in items if not jpeg]
        if missing:
            blocks.append(Paragraph("Not shown: " + "; ".join(missing)))
    return blocks


def _comparison(a: RunData, b: RunData) -> list[Block]:
    from emotion_core import compare

    compare.check_comparable(a.metrics.get("dataset"), b.metrics.get("dataset"), a.classes, b.classes)
    comparison = compare.align(a.predictions, b.predictions, classes=a.classes, split=a.split,
                               with_probabilities=(a.has_probabilities, b.has_probabilities))
    blocks: list[Block] = [Heading(f"Comparison: A = {a.path.name}, B = {b.path.name}")]
    if comparison.note:
        blocks.append(Paragraph(comparison.note))
    stats = compare.statistics(comparison)
    blocks.append(Table(format_table(stats["metrics"], compare.METRIC_COLUMNS),
                        "Both runs on the images both evaluated"))
    blocks.append(Table(format_table(stats["classes"], compare.PER_CLASS_COLUMNS),
                        "Per true class: recall is the class's accuracy; exact McNemar test on the class's images, "
                        "q-values by Benjamini-Hochberg across the classes"))
    difference, test = stats["ci"], stats["mcnemar"]
    interval = ("" if np.isnan(difference["low"]) else
                f" (paired bootstrap 95% interval {difference['low']:+.1%} to {difference['high']:+.1%})")
    blocks.append(Paragraph(f"Accuracy B − A: **{difference['difference']:+.1%}**{interval}. Exact McNemar test: "
                            f"{test['only_a']:,} images only A got right, {test['only_b']:,} only B, "
                            f"p = {display_value(test['p_value'], 'p')}" + (f" ({test['note']})" if test["note"] else "")
                            + "."))
    blocks += [Paragraph(stats["flips_sentence"]),
               Table(format_table(stats["flips"], compare.FLIP_COLUMNS), "Flips by vote agreement"),
               *([Paragraph(stats["nearness_sentence"])] if stats["nearness_sentence"] else []),
               Table(format_table(stats["nearness"], compare.nearness_columns(stats["nearness"])),
                     "Are the errors nearer? Per vote level and run: errors, their wheel steps from the label, the "
                     "votes the wrongly chosen class got, KL to the votes (what the dataset allows)"),
               Heatmap(stats["difference"], list(a.classes.display), list(a.classes.display),
                       "Difference matrix: B's images minus A's per cell (blue: more in B, red: fewer)",
                       diverging=True)]
    return blocks


def write_report(report: Report, out: str | os.PathLike) -> tuple[Path, Path]:
    """The HTML at `out` and the Markdown beside it (same name, .md), each written atomically."""
    from emotion_core.fileio import write_text

    out = Path(out)
    markdown = out.with_suffix(".md") if out.suffix.lower() != ".md" else out.with_name(out.stem + ".report.md")
    write_text(out, report.to_html())
    write_text(markdown, report.to_markdown())
    return out, markdown
