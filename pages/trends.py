"""Trends: the paper's per-cell analysis (counts, shares, lift, Fisher p) and what stands out."""
import streamlit as st

from emotion_core.attributes import compute_for_run
from emotion_core.confusion import cell_rows, cell_summary, summary_sentence
from emotion_core.trends import (
    DATA,
    STANDOUT_COLUMNS,
    TOP_VALUES,
    TREND_COLUMNS,
    cell_paragraph,
    cell_trend_table,
    cells_csv,
    error_cells,
    markdown_report,
    reference_rows,
    standouts,
)
from pages.shared import frame, ui

frame.setup_if_run_directly()
run = ui.require_run()
predictions = ui.predictions(run)
classes = ui.classes(run)
st.title("Trends")

attributes = ui.attributes(run)
if attributes is None:
    why = ("its predictions were imported without --attributes" if run.imported
           else "it was evaluated by an older EmoLens or with --no-attributes")
    st.warning(f"This run has no automatic image attributes ({why}). Tags still work; compute the "
               "attributes to test monochrome, warm tones, faces…")
    if st.button("Compute attributes for this run"):
        bar = st.progress(0.0, text="starting")
        compute_for_run(run.path, progress=lambda f, text: bar.progress(min(f, 1.0), text=text))
        st.rerun()
store = ui.tag_store()
tags = store.tags_of(ui.dataset_key(run)) if store else None
features = ui.trend_features(run, tags)

true, pred = ui.cell_pickers(predictions, classes)
rows = cell_rows(predictions, true, pred)
st.subheader(summary_sentence(true, pred, cell_summary(rows), classes=classes))
if true == pred:
    st.info("Pick an off-diagonal cell (a confusion) to compare it with the correctly classified images.")
    st.stop()

table = cell_trend_table(predictions, features, true, pred)
reference = len(reference_rows(predictions, true))
st.caption(f"Each feature in the {len(rows)} images of this cell against the {reference} correctly classified "
           f"{classes.display_name(true)} images: lift = share of the cell / share of the correct images (“only in errors”: "
           "never among the correct images); one-sided Fisher exact test.")
if table["feature"].str.startswith(DATA).any():
    st.caption(f"“data:” features are the dataset's own attributes; a categorical one (scene, object, …) is "
               f"tested for each of its {TOP_VALUES} most frequent values, its numbers (brightness, valence, …) "
               "below, in what stands out, like the automatic ones.")
ui.show_table(table, TREND_COLUMNS)
st.markdown(cell_paragraph(predictions, features, true, pred, table, classes=classes))

st.subheader("What stands out in this cell")
min_images = st.number_input("Cells tested: at least this many images", 2, 50, 3, key="min_images", width=220)
discovered = ui.discovery(run, tags, int(min_images))
found = standouts(discovered, true, pred)
if len(rows) < min_images:
    st.info(f"This cell has fewer than {min_images} images; it is not tested.")
elif found.empty:
    st.write("Nothing stands out at a false discovery rate of 10% (Benjamini-Hochberg over all cells and features).")
else:
    ui.show_table(found, STANDOUT_COLUMNS)

st.subheader("Export")
# Each file is made when its button is clicked (a callable): at 118,000 predictions the four take seconds.
cells = error_cells(predictions, classes=classes)
one, every = st.columns(2)
one.download_button("This cell: Markdown",
                    lambda: markdown_report(predictions, features, [(true, pred)], discovered, classes=classes),
                    file_name=f"emolens_{true}_to_{pred}.md", mime="text/markdown")
one.download_button("This cell: CSV", lambda: cells_csv(predictions, features, [(true, pred)]).to_csv(index=False),
                    file_name=f"emolens_{true}_to_{pred}.csv", mime="text/csv")
every.download_button("All cells: Markdown", lambda: markdown_report(predictions, features, cells, discovered,
                                                                     classes=classes),
                      file_name="emolens_trends.md", mime="text/markdown")
every.download_button("All cells: CSV", lambda: cells_csv(predictions, features, cells).to_csv(index=False),
                      file_name="emolens_trends.csv", mime="text/csv")
every.download_button("Discovery, all cells: CSV", lambda: discovered.to_csv(index=False),
                      file_name="emolens_discovery.csv", mime="text/csv",
                      help="Every test of every cell with its Benjamini-Hochberg q-value")
