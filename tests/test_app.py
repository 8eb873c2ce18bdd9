"""AppTest for every page, on the real demo run."""
import io
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image
from streamlit.testing.v1 import AppTest

from tests.conftest import APP
PAGES = ["pages/overview.py", "pages/confusion.py", "pages/inspector.py", "pages/agreement.py", "pages/live.py"]


def start(page: str | None = None) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=60).run()
    if page:
        at.switch_page(page).run()
    assert not at.exception, at.exception
    return at


@pytest.mark.parametrize("page", PAGES)
def test_every_page_runs_without_error(demo_env, page):
    at = start(page)
    assert not at.error, [e.value for e in at.error]


def test_overview_shows_the_run_metrics(demo_env):
    metrics = json.loads((demo_env / "runs" / "demo" / "metrics.json").read_text())["splits"]["test"]
    at = start()
    shown = {m.label: m.value for m in at.metric}
    assert shown["Accuracy"] == f"{metrics['accuracy']:.1%}"
    assert shown["Images"] == f"{metrics['n_images']:,}"
    table = at.dataframe[0].value
    assert table["Recall"].iloc[:8].tolist() == [f"{c['recall']:.1%}" for c in metrics["per_class"]]
    assert "SYNTHETIC" in " ".join(c.value for c in at.caption)


def test_select_boxes_show_exactly_that_cell(demo_env):
    predictions = pd.read_parquet(demo_env / "runs" / "demo" / "predictions.parquet")
    test = predictions[predictions["split"] == "test"]
    at = start("pages/confusion.py")
    at.selectbox(key="cell_true").set_value("anger").run()
    at.selectbox(key="cell_pred").set_value("sadness").run()
    cell = test[(test["label"] == "anger") & (test["pred"] == "sadness")]
    assert at.subheader[0].value.startswith(f"Anger → Sadness: {len(cell)} images")
    shown = {m.value.split("**")[1] for m in at.markdown if m.value.startswith("**")}
    assert shown == set(cell["image_id"])
    assert at.query_params["true"] in ("anger", ["anger"]) and at.query_params["pred"] in ("sadness", ["sadness"])


def png_bytes(image: Image.Image, fmt="PNG", **kwargs) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **kwargs)
    return buffer.getvalue()


def test_live_prediction_shows_probabilities(demo_env):
    at = start("pages/live.py")
    image = Image.fromarray(np.random.default_rng(0).integers(0, 255, (64, 64, 3), dtype=np.uint8))
    at.file_uploader[0].set_value(("photo.png", png_bytes(image), "image/png")).run()
    assert not at.exception and not at.error
    assert at.subheader[0].value.startswith("Predicted: ")


BAD_UPLOADS = {
    "not an image": (b"%PDF-1.4 hello", "not an image"),
    "zero bytes": (b"", "empty"),
    "truncated": (png_bytes(Image.new("RGB", (64, 64), (1, 2, 3)), "JPEG")[:200], "truncated"),
    "enormous": (png_bytes(Image.new("1", (12000, 12000))), "over the limit"),
}


@pytest.mark.parametrize("case", BAD_UPLOADS)
def test_bad_uploads_get_one_clear_message(demo_env, case):
    data, expected = BAD_UPLOADS[case]
    at = start("pages/live.py")
    at.file_uploader[0].set_value(("upload.png", data, "image/png")).run()
    assert not at.exception
    assert len(at.error) == 1 and expected in at.error[0].value


@pytest.mark.parametrize("image, fmt, note", [
    (Image.fromarray(np.full((32, 32), 30000, dtype=np.uint16)), "PNG", "converted"),
    (Image.new("CMYK", (32, 32), (0, 100, 100, 0)), "JPEG", "converted"),
])
def test_unusual_but_valid_uploads_work(demo_env, image, fmt, note):
    at = start("pages/live.py")
    at.file_uploader[0].set_value((f"x.{fmt.lower()}", png_bytes(image, fmt), "image/png")).run()
    assert not at.exception and not at.error
    assert any(note in i.value for i in at.info)
    assert at.subheader[0].value.startswith("Predicted: ")


def test_animated_upload_uses_first_frame(demo_env):
    frames = [Image.new("RGB", (16, 16), c) for c in ((255, 0, 0), (0, 0, 255))]
    data = png_bytes(frames[0], "GIF", save_all=True, append_images=frames[1:])
    at = start("pages/live.py")
    at.file_uploader[0].set_value(("anim.gif", data, "image/gif")).run()
    assert any("first frame" in i.value for i in at.info)
    assert at.subheader[0].value.startswith("Predicted: ")


def goto_cell(at: AppTest, true: str, pred: str) -> AppTest:
    at.selectbox(key="cell_true").set_value(true).run()
    return at.selectbox(key="cell_pred").set_value(pred).run()


def start_tagging(at: AppTest) -> AppTest:
    assert not [c for c in at.checkbox if c.key.startswith("select|")]  # browsing: no select boxes
    return at.toggle(key="tagging").set_value(True).run()


def test_tagging_in_the_gallery_and_undo(demo_env):
    from emotion_core.tags import TagStore

    at = start_tagging(goto_cell(start("pages/confusion.py"), "anger", "sadness"))
    at.text_input(key="author_input").set_value("ann").run()
    first, second = [c for c in at.checkbox if c.key.startswith("select|")][:2]
    first_id, second_id = first.key.split("|", 1)[1], second.key.split("|", 1)[1]
    first.check().run()
    at.checkbox(key=f"select|{second_id}").check().run()
    at.selectbox(key="tag_choice").set_value("monochrome").run()
    next(b for b in at.button if b.label.startswith("Tag selected")).click().run()
    assert not at.exception
    store = TagStore(f"sqlite:///{demo_env / 'tags.sqlite'}")
    tagged = store.tags_of("demo")
    assert set(tagged.loc[tagged["tag"] == "monochrome", "image_id"]) >= {first_id, second_id}
    assert set(tagged["author"]) == {"ann"}
    assert any("tagged 2" in s.value for s in at.success)
    assert sum("🏷 monochrome" in m.value for m in at.markdown if m.value.startswith("**")) >= 2
    # the tag filter keeps exactly the tagged images
    at.multiselect(key="tag_filter").set_value(["monochrome"]).run()
    shown = {m.value.split("**")[1] for m in at.markdown if m.value.startswith("**")}
    assert shown == {first_id, second_id}
    at.multiselect(key="tag_filter").set_value([]).run()
    next(b for b in at.button if b.label == "Undo").click().run()
    assert store.tags_of("demo").query("tag == 'monochrome'").empty
    assert any("undid" in s.value for s in at.success)


def test_empty_new_tag_is_a_message_not_a_traceback(demo_env):
    at = start_tagging(goto_cell(start("pages/confusion.py"), "anger", "sadness"))
    at.text_input(key="author_input").set_value("ann").run()
    at.checkbox(key=[c.key for c in at.checkbox if c.key.startswith("select|")][0]).check().run()
    at.selectbox(key="tag_choice").set_value("+ new tag…").run()
    at.text_input(key="new_tag").set_value("   ").run()
    next(b for b in at.button if b.label.startswith("Tag selected")).click().run()
    assert not at.exception
    assert [e.value for e in at.error] == ["a tag name cannot be empty"]


def test_trends_page_shows_the_cell_table(demo_env):
    at = goto_cell(start("pages/trends.py"), "anger", "sadness")
    assert not at.exception and not at.error
    table = at.dataframe[0].value
    assert table.iloc[0]["Feature"] == "auto: monochrome"
    assert any(m.value.startswith("**Anger misclassified as Sadness:**") for m in at.markdown)
    assert "auto: monochrome" in at.dataframe[1].value["Feature"].tolist()


def test_inspector_confirms_a_suggested_tag(demo_env):
    from emotion_core.tags import TagStore

    at = goto_cell(start("pages/confusion.py"), "anger", "sadness")
    at.switch_page("pages/inspector.py").run()
    at.text_input(key="author_input").set_value("ann").run()
    confirm = [b for b in at.button if b.key and b.key.startswith("confirm_")]
    assert confirm, "a monochrome image should get a suggestion"
    tag = confirm[0].key.removeprefix("confirm_")
    confirm[0].click().run()
    image_id = at.subheader[0].value.split(":")[0]
    tags = TagStore(f"sqlite:///{demo_env / 'tags.sqlite'}").tags_of("demo")
    row = tags[(tags["image_id"] == image_id) & (tags["tag"] == tag)]
    assert row["source"].tolist() == ["suggestion"]
    TagStore(f"sqlite:///{demo_env / 'tags.sqlite'}").undo("ann", "demo")


def test_run_without_attributes_offers_to_compute_them(demo_env):
    run = demo_env / "runs" / "demo"
    saved = (run / "attributes.parquet").read_bytes()
    (run / "attributes.parquet").unlink()
    try:
        at = start("pages/trends.py")
        assert any("no automatic image attributes" in w.value for w in at.warning)
        next(b for b in at.button if b.label == "Compute attributes for this run").click().run()
        assert not at.exception and not at.warning
        assert (run / "attributes.parquet").exists()
    finally:
        (run / "attributes.parquet").write_bytes(saved)


def test_empty_workspace_builds_the_demo_with_progress(tmp_path, monkeypatch):
    monkeypatch.setenv("EMOLENS_HOME", str(tmp_path))
    at = AppTest.from_file(APP, default_timeout=240).run()
    assert not at.exception and not at.error
    assert {m.label for m in at.metric} >= {"Accuracy", "Images"}
    assert (tmp_path / "runs" / "demo" / "metrics.json").exists()
    assert "demo ready" in (tmp_path / ".demo-progress.json").read_text()


def test_a_shared_link_opens_the_same_cell_and_view(demo_env):
    at = AppTest.from_file(APP, default_timeout=60)
    at.query_params.update({"run": "demo", "split": "dev", "true": "sadness", "pred": "contentment",
                            "matrix": "row-normalised"})
    at.run()
    at.switch_page("pages/confusion.py").run()
    assert not at.exception
    assert at.selectbox(key="split_picker").value == "dev"
    assert at.radio(key="matrix_view").value == "row-normalised"
    assert at.subheader[0].value.startswith("Sadness → Contentment: ")


# ---- votes mean the same everywhere (issue 8, point 7) -------------------------------------

def run_with_changed_votes(demo_env, tmp_path, monkeypatch, change) -> pd.DataFrame:
    """A copy of the demo run in a fresh workspace, its predictions' votes changed; returns them."""
    import shutil

    home = tmp_path / "workspace"
    shutil.copytree(demo_env / "runs" / "demo", home / "runs" / "demo", ignore=shutil.ignore_patterns("cache"))
    path = home / "runs" / "demo" / "predictions.parquet"
    predictions = change(pd.read_parquet(path))
    predictions.to_parquet(path)
    monkeypatch.setenv("EMOLENS_HOME", str(home))
    return predictions


ONE_VOTE_COLUMN = {
    "no disagree column": lambda p: p.drop(columns="disagree"),
    "disagree all missing": lambda p: p.assign(disagree=pd.array([pd.NA] * len(p), dtype="Int64")),
    "no agree column": lambda p: p.drop(columns="agree"),
}


@pytest.mark.parametrize("case", ONE_VOTE_COLUMN)
def test_a_run_with_only_one_vote_column_shows_every_page(demo_env, tmp_path, monkeypatch, case):
    run_with_changed_votes(demo_env, tmp_path, monkeypatch, ONE_VOTE_COLUMN[case])
    at = goto_cell(start("pages/confusion.py"), "anger", "sadness")
    assert not at.exception and not at.error, [e.value for e in at.error]
    gallery_text = [m.value for m in at.markdown if m.value.startswith("**")]
    assert gallery_text and all("⚪ no votes" in text and "unanimous" not in text for text in gallery_text)
    assert "0 non-unanimous votes" in at.subheader[0].value
    for page in ("pages/inspector.py", "pages/trends.py", "pages/agreement.py"):
        at.switch_page(page).run()
        assert not at.exception and not at.error, (page, [e.value for e in at.error])
    assert "agreement cannot be computed" in at.info[0].value or "no agree/disagree votes" in at.info[0].value


def test_zero_votes_are_no_votes_on_every_page(demo_env, tmp_path, monkeypatch):
    def zero_the_first_half(predictions: pd.DataFrame) -> pd.DataFrame:
        within_split = predictions.groupby("split").cumcount()  # the first half of each split (the demo has 3)
        half = (within_split < predictions.groupby("split")["split"].transform("size") // 2).to_numpy()
        predictions["agree"] = predictions["agree"].mask(half, 0)
        predictions["disagree"] = predictions["disagree"].mask(half, 0)
        predictions.loc[half, "agreement_level"] = "unanimous"  # what the old code wrote for 0/0
        return predictions

    predictions = run_with_changed_votes(demo_env, tmp_path, monkeypatch, zero_the_first_half)
    test = predictions[predictions["split"] == "test"]
    zero = test[(test["agree"] == 0) & (test["disagree"] == 0)]
    truly_unanimous = ((test["disagree"] == 0) & (test["agree"] > 0)).sum()
    rank = test.groupby(["label", "pred"])["confidence"].rank(ascending=False, method="first")
    shown = zero[rank[zero.index] <= 10].iloc[0]  # on its cell's first gallery page (12 cards, by confidence)
    at = goto_cell(start("pages/confusion.py"), shown["label"], shown["pred"])
    text = next(m.value for m in at.markdown if m.value.startswith(f"**{shown['image_id']}**"))
    assert "votes 0 agree / 0 disagree · ⚪ no votes" in text and "unanimous" not in text
    at.selectbox(key="vote_filter").set_value("unanimous").run()
    assert not set(at.session_state["cell_image_ids"]) & set(zero["image_id"])
    at.switch_page("pages/agreement.py").run()
    groups = at.dataframe[0].value.set_index("Votes")["Images"]
    assert groups["unanimous (no disagree votes)"] == f"{truly_unanimous:,}"
    assert groups["no votes"] == f"{len(zero) + test['agree'].isna().sum():,}"


def test_non_unanimous_means_the_same_in_summary_filter_and_agreement_page(demo_env):
    predictions = pd.read_parquet(demo_env / "runs" / "demo" / "predictions.parquet")
    test = predictions[predictions["split"] == "test"]
    non_unanimous = test["disagree"].fillna(0) > 0  # the definition: any disagree vote
    strongly_divided = non_unanimous & (test["agree"] - test["disagree"] <= 1)
    true, pred = test[strongly_divided].groupby(["label", "pred"]).size().idxmax()  # a cell where they differ
    cell = (test["label"] == true) & (test["pred"] == pred)
    expected = set(test.loc[cell & non_unanimous, "image_id"])
    assert (cell & strongly_divided).sum() > 0

    at = goto_cell(start("pages/confusion.py"), true, pred)
    assert f", {len(expected)} non-unanimous votes ({(cell & strongly_divided).sum()} of them strongly divided)" \
        in at.subheader[0].value
    at.selectbox(key="vote_filter").set_value("non-unanimous").run()
    assert set(at.session_state["cell_image_ids"]) == expected  # strongly divided images included
    at.selectbox(key="vote_filter").set_value("strongly divided").run()
    assert set(at.session_state["cell_image_ids"]) == set(test.loc[cell & strongly_divided, "image_id"])
    at.switch_page("pages/agreement.py").run()
    groups = at.dataframe[0].value.set_index("Votes")["Images"]
    label = next(name for name in groups.index if name.startswith("non-unanimous"))
    assert "includes strongly divided" in label and groups[label] == f"{non_unanimous.sum():,}"


# ---- the gallery and the inspector at scale (issue 9) ---------------------------------------

def independent_gallery_order(test: pd.DataFrame, true: str, pred: str, votes: str, sort: str) -> list[str]:
    """The gallery's order computed from the predictions file alone, as the dashboard has always
    ordered it: the vote group kept, then by the sort key, ties by image id, images without votes last."""
    cell = test[(test["label"] == true) & (test["pred"] == pred)].copy()
    agree, disagree = cell["agree"].astype("Float64"), cell["disagree"].astype("Float64")
    voted = (agree + disagree).fillna(0) > 0
    keep = {"all images": pd.Series(True, index=cell.index),
            "unanimous": voted & (disagree == 0).fillna(False),
            "non-unanimous": voted & (disagree > 0).fillna(False)}[votes]
    cell["agreement_value"] = (agree / (agree + disagree)).where(voted).astype(float)
    column = "confidence" if sort.startswith("confidence") else "agreement_value"
    cell = cell[keep.to_numpy()]
    return cell.sort_values([column, "image_id"], ascending=["low first" in sort, True],
                            na_position="last", kind="stable")["image_id"].tolist()


def gallery_in_reading_order(at: AppTest) -> list[str]:
    """The image ids of the shown page, left to right and top to bottom. Card n sits in column n % 4,
    so the page's element tree lists the cards column by column."""
    by_column = [m.value.split("**")[1] for m in at.markdown if m.value.startswith("**")]
    sizes = [len(range(column, len(by_column), 4)) for column in range(4)]
    starts = [sum(sizes[:column]) for column in range(4)]
    return [by_column[starts[n % 4] + n // 4] for n in range(len(by_column))]


@pytest.mark.parametrize("votes, sort", [("all images", "confidence (high first)"),
                                         ("non-unanimous", "agreement (low first)"),
                                         ("all images", "agreement (high first)"),
                                         ("unanimous", "confidence (low first)")])
def test_the_gallery_shows_a_cells_images_in_the_same_order(demo_env, votes, sort):
    predictions = pd.read_parquet(demo_env / "runs" / "demo" / "predictions.parquet")
    test = predictions[predictions["split"] == "test"]
    cells = test[["label", "pred"]].drop_duplicates()
    errors_first = [cells[cells["label"] != cells["pred"]], cells]  # the demo's errors are mostly planted images
    for candidates in errors_first:  # with divided votes: few error cells hold several unanimous ones
        expected, true, pred = max(((independent_gallery_order(test, t, p, votes, sort), t, p)
                                    for t, p in candidates.itertuples(index=False)),
                                   key=lambda found: len(found[0]))  # the cell with most such images
        if len(expected) > 1:
            break
    assert len(expected) > 1, "the demo should have a cell with several such images"
    at = goto_cell(start("pages/confusion.py"), true, pred)
    at.selectbox(key="vote_filter").set_value(votes).run()
    at.selectbox(key="sort").set_value(sort).run()
    assert at.session_state["cell_image_ids"] == expected
    shown = gallery_in_reading_order(at)
    for page in range(2, -(-len(expected) // 12) + 1):
        at.number_input(key=f"page_{true}_{pred}").set_value(page).run()
        shown += gallery_in_reading_order(at)
    assert shown == expected


def test_every_card_links_to_its_image_in_the_inspector(demo_env):
    at = goto_cell(start("pages/confusion.py"), "anger", "sadness")
    cards = [m.value.split("**")[1] for m in at.markdown if m.value.startswith("**")]
    links = [link for link in at.page_link if link.value == "Inspect"]
    assert {link.proto.page for link in links} == {"inspector"}
    assert sorted(link.proto.query_string for link in links) == sorted(f"image={i}" for i in cards)
    chosen = cards[-1]
    at.query_params["image"] = chosen
    at.switch_page("pages/inspector.py").run()
    assert at.subheader[0].value.startswith(f"{chosen}: ")
    assert any(f"of {len(at.session_state['cell_image_ids'])} in the selected cell" in c.value for c in at.caption)


def test_the_inspector_opens_on_an_image_of_the_selected_cell(demo_env):
    from emotion_core.labels import EMOTIONS

    predictions = pd.read_parquet(demo_env / "runs" / "demo" / "predictions.parquet")
    test = predictions[predictions["split"] == "test"]
    counts = pd.crosstab(test["label"], test["pred"]).reindex(index=EMOTIONS, columns=EMOTIONS, fill_value=0)
    counts = counts.to_numpy().copy()
    np.fill_diagonal(counts, -1)
    true, pred = np.unravel_index(int(np.argmax(counts)), counts.shape)
    largest = independent_gallery_order(test, EMOTIONS[true], EMOTIONS[pred], "all images", "confidence (high first)")
    at = start("pages/inspector.py")  # the inspector first: the cell is the largest confusion
    assert at.subheader[0].value.startswith(f"{largest[0]}: ")
    at = goto_cell(start("pages/trends.py"), "anger", "sadness")  # a cell chosen on another page
    at.switch_page("pages/inspector.py").run()
    first = independent_gallery_order(test, "anger", "sadness", "all images", "confidence (high first)")[0]
    assert at.subheader[0].value.startswith(f"{first}: ")
    next(b for b in at.button if b.label == "next →").click().run()
    second = independent_gallery_order(test, "anger", "sadness", "all images", "confidence (high first)")[1]
    assert at.subheader[0].value.startswith(f"{second}: ") and at.query_params["image"] in (second, [second])


def displayed(element) -> pd.DataFrame:
    """What a st.dataframe shows, as text."""
    return element.value.astype(str)


@pytest.mark.parametrize("page", ["pages/overview.py", "pages/agreement.py", "pages/trends.py"])
def test_tables_say_what_they_hold_in_words(demo_env, page):
    at = goto_cell(start(page), "anger", "sadness") if page == "pages/trends.py" else start(page)
    assert at.dataframe
    for element in at.dataframe:
        shown = displayed(element)
        assert not any("_" in header or header.isidentifier() and header.islower() for header in shown.columns), \
            list(shown.columns)  # words, not cell_share or lift
        cells = set(shown.to_numpy().ravel().tolist())
        assert not cells & {"None", "nan", "NaN", "<NA>", "inf", "Infinity", "∞"}, cells
        shares = [c for c in cells if str(c).endswith("%")]
        assert all(len(c.rstrip("%").split(".")[-1]) == 1 for c in shares if "." in c), shares
    if page == "pages/overview.py":
        overall = displayed(at.dataframe[0]).iloc[-1]
        assert overall["Recall"] == overall["F1"] == "—" and overall["Prec."].endswith("%")
        metrics = json.loads((demo_env / "runs" / "demo" / "metrics.json").read_text())["splits"]["test"]
        assert overall["Prec."] == f"{metrics['accuracy']:.1%}"


def test_pages_that_never_run_the_model_do_not_import_torch():
    import subprocess
    import sys

    code = ("import sys; import pages.shared.frame, pages.shared.ui, pages.shared.gallery, emotion_core.plots, "
            "emotion_core.report, emotion_core.runs; "
            "print(sorted(m for m in ('torch', 'torchvision', 'captum', 'scipy') if m in sys.modules))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                            cwd=Path(APP).parent)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip() == "[]"


def test_the_dashboard_reads_the_files_evaluation_writes():
    from emotion_core import evaluation, runs

    assert (runs.PREDICTIONS_FILE, runs.CAMS_FILE, runs.METRICS_FILE) == \
        (evaluation.PREDICTIONS_FILE, evaluation.CAMS_FILE, evaluation.METRICS_FILE)


# ---- review of issue 9: the error guard everywhere, quiet warm-up, lazy SQLAlchemy ----------------

def test_an_error_in_a_fragment_is_one_line_not_a_traceback():
    """A fragment's own reruns run its function alone, outside run_app: frame.fragment guards it itself."""
    def script():
        import streamlit as st

        from pages.shared import frame

        @frame.fragment
        def broken() -> None:
            st.write("before the error")
            raise RuntimeError("the cell's data went away")

        broken()
        st.write("after the fragment")

    at = AppTest.from_function(script, default_timeout=60).run()
    assert not at.exception, at.exception
    assert len(at.error) == 1 and "RuntimeError: the cell's data went away" in at.error[0].value
    assert [m.value for m in at.markdown] == ["before the error", "after the fragment"]


def tag_first_image(at: AppTest) -> AppTest:
    at.text_input(key="author_input").set_value("ann").run()
    at.checkbox(key=[c.key for c in at.checkbox if c.key.startswith("select|")][0]).check().run()
    at.selectbox(key="tag_choice").set_value("monochrome").run()
    return next(b for b in at.button if b.label.startswith("Tag selected")).click().run()


def test_a_failing_tag_database_is_a_message_not_a_traceback(demo_env, monkeypatch):
    import sqlite3

    from sqlalchemy.exc import OperationalError

    from emotion_core.tags import TagStore, TagStoreError

    def locked(*args, **kwargs):
        raise OperationalError("INSERT INTO tags ...", {}, sqlite3.OperationalError("database is locked"))

    def unreachable(*args, **kwargs):
        raise TagStoreError("cannot open the tag database postgresql://db/tags: connection refused")

    at = start_tagging(goto_cell(start("pages/confusion.py"), "anger", "sadness"))
    monkeypatch.setattr(TagStore, "add", locked)
    at = tag_first_image(at)
    assert not at.exception, at.exception
    assert [e.value for e in at.error] == ["The tag database failed ((sqlite3.OperationalError) database is "
                                           "locked); nothing was changed. Try again, or check EMOLENS_DB_URL."]
    monkeypatch.setattr(TagStore, "undo", unreachable)
    next(b for b in at.button if b.label == "Undo").click().run()
    assert not at.exception, at.exception
    assert len(at.error) == 1 and "connection refused" in at.error[0].value


def warm_up_threads_finish() -> None:
    import threading

    for thread in threading.enumerate():
        if thread.name == "emolens-warm-up":
            thread.join(timeout=60)


def test_a_failing_background_load_is_tried_once_per_inputs_and_quietly(demo_env, monkeypatch, capfd):
    import threading

    import emotion_core.tags
    from pages.shared import ui

    calls, url_readers = [], []
    real_default_url = emotion_core.tags.default_url

    def broken_index(*key):
        calls.append(key)
        raise OSError("the predictions file went away")

    def default_url():
        url_readers.append(threading.current_thread().name)
        return real_default_url()

    monkeypatch.setattr(ui, "_warmed", set())
    monkeypatch.setattr(ui, "_id_index", broken_index)
    monkeypatch.setattr(emotion_core.tags, "default_url", default_url)
    at = start()  # the Overview: it never looks an image up, only the warm-up does
    for _ in range(3):
        warm_up_threads_finish()
        at.run()
    warm_up_threads_finish()
    assert not at.exception and not at.error
    assert len(calls) == 1, f"the failing load ran {len(calls)} times for the same inputs"
    at.selectbox(key="split_picker").set_value("dev").run()  # new inputs: tried again
    warm_up_threads_finish()
    assert len(calls) == 2 and calls[1][2] == "dev"
    assert "emolens-warm-up" not in url_readers  # the URL is read in the script's thread
    assert "Traceback" not in capfd.readouterr().err


def test_the_warm_up_opens_the_tag_database_the_pages_open(demo_env, monkeypatch):
    from emotion_core.tags import default_url
    from pages.shared.ui import tag_store_url

    assert tag_store_url() == default_url() == f"sqlite:///{demo_env / 'tags.sqlite'}"
    monkeypatch.setenv("EMOLENS_DB_URL", "postgresql://team@db/emolens")
    assert tag_store_url() == default_url() == "postgresql://team@db/emolens"


def test_the_gallery_module_does_not_import_sqlalchemy():
    import subprocess
    import sys

    code = ("import sys; import pages.shared.frame, pages.shared.ui, pages.shared.gallery; "
            "print('sqlalchemy' in sys.modules)")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                            cwd=Path(APP).parent)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip() == "False"
