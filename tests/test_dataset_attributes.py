"""Dataset attributes (issue 10, point 2): EmoSet's per-image scene, objects, facial expression,
human action, brightness and colourfulness, and Emotion6's valence and arousal, go from the
manifest into the run's predictions, onto every gallery card and into the gallery's filters,
and are tested in Trends and "what stands out" like the automatic attributes and tags."""
import numpy as np
import pandas as pd
import pytest
from scipy.stats import fisher_exact, mannwhitneyu

from emotion_core.confusion import filter_and_sort
from emotion_core.dataset_attributes import describe, filters_text, values_by_frequency
from emotion_core.runs import load_predictions
from emotion_core.trends import (
    AUTO,
    DATA,
    TOP_VALUES,
    cell_paragraph,
    cell_trend_table,
    cells_csv,
    discover,
    image_features,
    markdown_report,
    standouts,
)
from tests.conftest import save_noise_image

SCENES = ["street", "forest", "beach", "room", "office"]


# ---- evaluation carries them into the run ------------------------------------------------

def test_evaluation_carries_dataset_attributes_into_the_predictions(tmp_path):
    from emotion_core.dataset import write_dataset
    from emotion_core.evaluation import evaluate_run
    from emotion_core.labels import EMOTIONS
    from emotion_core.model import ModelConfig, build_model, save_checkpoint

    rows = []
    for i, label in enumerate(EMOTIONS):
        path = f"images/{label}.png"
        if label != "awe":  # awe's image is missing: skipped, and the other rows keep their own attributes
            save_noise_image(tmp_path / "dataset" / path, seed=i)
        rows.append({"image_id": f"img{i}", "path": path, "label": label, "split": "test", "agree": 3, "disagree": 1})
    manifest = pd.DataFrame(rows)
    manifest["attr_brightness"] = [0.1 * i if i != 3 else np.nan for i in range(8)]
    manifest["attr_colorfulness"] = np.linspace(0.2, 0.9, 8)
    manifest["attr_scene"] = pd.array(["graveyard", pd.NA, "beach", "room", "a/b", "street", "forest", "beach"],
                                      dtype="string")
    manifest["attr_facial_expression"] = pd.array(["happy", "sad"] + [pd.NA] * 6, dtype="string")
    manifest["attr_human_action"] = pd.array(["running"] + [pd.NA] * 7, dtype="string")
    manifest["attr_object"] = [["Sky", "Tree"], [], ["Person"], ["Sky"], [], ["Car", "Sky"], [], ["Dog"]]
    manifest["valence"] = np.linspace(1, 8, 8)
    manifest["arousal"] = np.linspace(2, 9, 8)
    write_dataset(tmp_path / "dataset", manifest, {})
    run = tmp_path / "run"
    run.mkdir()
    config = ModelConfig(arch="vgg_small", input_size=32)
    save_checkpoint(run / "checkpoint.pt", build_model(config), config)

    evaluate_run(run, tmp_path / "dataset", splits=("test",), attributes=False)
    predictions = load_predictions(run)
    expected = manifest[manifest["label"] != "awe"].reset_index(drop=True)
    assert predictions["image_id"].tolist() == expected["image_id"].tolist()
    columns = ["attr_brightness", "attr_colorfulness", "attr_scene", "attr_facial_expression",
               "attr_human_action", "attr_object", "valence", "arousal"]
    pd.testing.assert_frame_equal(predictions[columns], expected[columns], check_dtype=False)
    assert all(type(v) is list for v in predictions["attr_object"])  # lists, not parquet's numpy arrays
    assert predictions["attr_scene"].isna().tolist() == expected["attr_scene"].isna().tolist()
    assert pd.api.types.is_float_dtype(predictions["attr_brightness"])


# ---- trends: a scene planted in one cell ---------------------------------------------------

def planted_predictions(seed: int = 0) -> pd.DataFrame:
    """Anger -> Sadness: 12 images, 10 in a graveyard; 40 correct Anger images, 1 in a graveyard;
    other cells (Sadness -> Fear, Fear -> Anger) and their references with everyday scenes only.
    Every image has objects (a list) and a brightness; Anger -> Sadness images are darker."""
    rng = np.random.default_rng(seed)
    rows = [(f"as{i}", "anger", "sadness", "graveyard" if i < 10 else rng.choice(SCENES)) for i in range(12)]
    rows += [(f"aa{i}", "anger", "anger", "graveyard" if i == 0 else rng.choice(SCENES)) for i in range(40)]
    for true, pred, n in (("sadness", "fear", 10), ("sadness", "sadness", 40), ("fear", "anger", 8),
                          ("fear", "fear", 30)):
        rows += [(f"{true[:2]}{pred[:2]}{i}", true, pred, rng.choice(SCENES)) for i in range(n)]
    table = pd.DataFrame(rows, columns=["image_id", "label", "pred", "attr_scene"])
    table["attr_scene"] = table["attr_scene"].astype("string")
    table["correct"] = table["label"] == table["pred"]
    table["agree"], table["disagree"] = 3, 2
    table["agreement_level"] = "strongly divided"
    table["attr_object"] = [list(rng.choice(["Sky", "Tree", "Person", "Car"], rng.integers(0, 3), replace=False))
                            for _ in range(len(table))]
    dark = (table["label"] == "anger") & (table["pred"] == "sadness")
    table["attr_brightness"] = np.where(dark, rng.uniform(0.0, 0.3, len(table)), rng.uniform(0.4, 1.0, len(table)))
    return table


def test_a_planted_scene_is_what_stands_out_in_its_cell_and_nowhere_else():
    predictions = planted_predictions()
    features = image_features(predictions)
    graveyard = DATA + "scene = graveyard"
    assert graveyard in features
    discovered = discover(predictions, features)
    top = standouts(discovered, "anger", "sadness")
    share_findings = top[top["kind"] == "share"]
    assert share_findings.iloc[0]["feature"] == graveyard
    assert share_findings.iloc[0]["q_value"] <= 0.1
    expected_p = fisher_exact([[10, 2], [1, 39]], alternative="greater")[1]
    assert share_findings.iloc[0]["p_value"] == pytest.approx(expected_p)
    assert share_findings.iloc[0]["cell_vs_reference"] == "83.3% vs 2.5%"
    for true, pred in (("sadness", "fear"), ("fear", "anger")):
        assert graveyard not in standouts(discovered, true, pred)["feature"].tolist()

    table = cell_trend_table(predictions, features, "anger", "sadness").set_index("feature")
    assert (table.loc[graveyard, "in_cell"], table.loc[graveyard, "in_reference"]) == (10, 1)
    assert "10 have scene graveyard (dataset) (83%, vs 2% of the 40 correctly classified Anger images" \
        in cell_paragraph(predictions, features, "anger", "sadness")
    report = markdown_report(predictions, features, [("anger", "sadness")], discovered)
    assert "What stands out (Benjamini-Hochberg q ≤ 0.1): scene graveyard (dataset) (q = " in report
    exported = cells_csv(predictions, features, [("anger", "sadness")]).set_index("feature")
    assert exported.loc[graveyard, "in_cell"] == 10


def test_list_attributes_are_tested_value_by_value():
    predictions = planted_predictions()
    in_cell = (predictions["label"] == "anger") & (predictions["pred"] == "sadness")
    predictions["attr_object"] = [["Tombstone", "Sky"] if planted else objects
                                  for planted, objects in zip(in_cell, predictions["attr_object"])]
    features = image_features(predictions)
    assert features.loc[predictions.loc[in_cell, "image_id"], DATA + "object = Tombstone"].all()
    assert features[DATA + "object = Tombstone"].sum() == 12
    top = standouts(discover(predictions, features), "anger", "sadness")
    assert DATA + "object = Tombstone" in top["feature"].tolist()


def test_categorical_attributes_keep_their_top_values_by_frequency():
    # value k is held by 20 - k images (a tie between v18 and w18 broken by name); a list column alike
    scenes = [f"v{k:02d}" for k in range(15) for _ in range(20 - k)] + ["w03"] * 17
    predictions = pd.DataFrame({"image_id": [f"i{n}" for n in range(len(scenes))], "label": "anger",
                                "pred": "anger", "attr_scene": pd.array(scenes, dtype="string")})
    predictions["attr_object"] = [[s, "common"] for s in scenes]
    features = image_features(predictions)
    scene_features = [f for f in features if f.startswith(DATA + "scene = ")]
    expected = ["v00", "v01", "v02", "v03", "w03", "v04", "v05", "v06", "v07", "v08"]
    assert TOP_VALUES == 10 and scene_features == [f"{DATA}scene = {v}" for v in expected]
    object_features = [f for f in features if f.startswith(DATA + "object = ")]
    assert object_features == [f"{DATA}object = {v}" for v in ["common"] + expected[:9]]
    assert features[DATA + "scene = w03"].sum() == 17
    assert len([f for f in image_features(predictions, top_values=3) if f.startswith(DATA + "scene")]) == 3


def test_continuous_dataset_attributes_are_tested_like_the_automatic_ones():
    predictions = planted_predictions()
    predictions["valence"] = np.linspace(1, 9, len(predictions))
    discovered = discover(predictions, image_features(predictions))  # no automatic attributes at all
    row = discovered[(discovered["true"] == "anger") & (discovered["pred"] == "sadness")
                     & (discovered["feature"] == DATA + "brightness")].iloc[0]
    cell = predictions[(predictions["label"] == "anger") & (predictions["pred"] == "sadness")]["attr_brightness"]
    reference = predictions[(predictions["label"] == "anger") & predictions["correct"]]["attr_brightness"]
    assert row["kind"] == "median"
    assert row["p_value"] == pytest.approx(mannwhitneyu(cell, reference, alternative="two-sided")[1])
    assert DATA + "brightness" in standouts(discovered, "anger", "sadness")["feature"].tolist()
    assert (discovered["feature"] == DATA + "valence").any()
    # beside the automatic attributes: both tested, under their own prefixes
    attributes = predictions[["image_id"]].assign(brightness=predictions["attr_brightness"].to_numpy() + 0.01)
    both = discover(predictions, image_features(predictions), attributes)
    assert {AUTO + "brightness", DATA + "brightness"} <= set(both["feature"])


def test_a_run_without_dataset_attributes_has_no_data_features():
    predictions = planted_predictions().drop(columns=["attr_scene", "attr_object", "attr_brightness"])
    assert image_features(predictions).columns.tolist() == []
    assert not discover(predictions, image_features(predictions))["feature"].str.startswith(DATA).any()


# ---- the gallery: shown and filtered -----------------------------------------------------

def test_gallery_rows_filter_by_dataset_attributes():
    rows = planted_predictions()
    rows["confidence"] = np.linspace(0.1, 0.9, len(rows))
    rows["agreement"] = 0.6
    graveyard = filter_and_sort(rows, attributes={"attr_scene": ["graveyard"]})
    assert set(graveyard["image_id"]) == {f"as{i}" for i in range(10)} | {"aa0"}
    either = filter_and_sort(rows, attributes={"attr_scene": ["graveyard", "beach"]})
    assert set(either["image_id"]) == set(rows.loc[rows["attr_scene"].isin(["graveyard", "beach"]), "image_id"])
    sky = filter_and_sort(rows, attributes={"attr_object": ["Sky"]})
    assert set(sky["image_id"]) == {i for i, o in zip(rows["image_id"], rows["attr_object"]) if "Sky" in o}
    both = filter_and_sort(rows, attributes={"attr_scene": ["graveyard"], "attr_object": ["Sky"]})
    assert set(both["image_id"]) == set(graveyard["image_id"]) & set(sky["image_id"])
    assert len(filter_and_sort(rows, attributes={"attr_scene": []})) == len(rows)  # nothing chosen: no filter
    with pytest.raises(ValueError, match="unknown dataset attribute 'attr_weather'; valid: attr_scene, attr_object"):
        filter_and_sort(rows, attributes={"attr_weather": ["rain"]})


def test_gallery_rows_filter_by_numeric_dataset_attribute_ranges():
    rows = planted_predictions()
    rows["confidence"], rows["agreement"] = 0.5, 0.6
    rows["valence"] = np.linspace(1, 9, len(rows))
    rows.loc[3, "valence"] = np.nan  # not recorded: outside every range
    dark = filter_and_sort(rows, ranges={"attr_brightness": (0.0, 0.3)})
    assert set(dark["image_id"]) == set(rows.loc[rows["attr_brightness"] <= 0.3, "image_id"])
    assert set(dark["image_id"]) >= {f"as{i}" for i in range(12)}  # the planted cell is darker
    middle = filter_and_sort(rows, ranges={"valence": (3.0, 5.0), "attr_brightness": (0.0, 1.0)})
    assert set(middle["image_id"]) == set(rows.loc[rows["valence"].between(3.0, 5.0), "image_id"])
    inclusive = filter_and_sort(rows, ranges={"valence": (1.0, 1.0)})
    assert inclusive["image_id"].tolist() == [rows.loc[0, "image_id"]]
    assert len(filter_and_sort(rows, ranges={"valence": (0.0, 10.0)})) == len(rows) - 1
    graveyard_dark = filter_and_sort(rows, attributes={"attr_scene": ["graveyard"]}, ranges={"attr_brightness": (0, 0.3)})
    assert set(graveyard_dark["image_id"]) == {f"as{i}" for i in range(10)}  # aa0 is a bright graveyard
    with pytest.raises(ValueError, match="not a numeric dataset attribute: 'attr_scene'; valid: attr_brightness, valence"):
        filter_and_sort(rows, ranges={"attr_scene": (0, 1)})
    with pytest.raises(ValueError, match="empty range for 'valence'"):
        filter_and_sort(rows, ranges={"valence": (5.0, 3.0)})
    assert filters_text({"attr_scene": ["beach"], "attr_object": []}, {"attr_brightness": (0.2, 0.5)}) == \
        "scene = beach; brightness 0.2–0.5"


def test_values_by_frequency_and_the_card_line():
    column = pd.Series([["Sky", "Tree"], ["Sky", "Sky"], [], ["Car"]])
    assert values_by_frequency(column).to_dict() == {"Sky": 2, "Car": 1, "Tree": 1}
    row = {"image_id": "x", "attr_brightness": 0.4, "attr_colorfulness": np.nan, "attr_scene": "mountain/snowy",
           "attr_facial_expression": pd.NA, "attr_object": ["Sky", "Tree"], "valence": 2.5}
    assert describe(row) == "brightness 0.4 · scene mountain/snowy · object Sky, Tree · valence 2.5"


def test_gallery_attributes_text_says_missing_not_nan():
    from pages.shared.gallery import attributes_text

    attributes = pd.DataFrame({"monochrome": [False], "warm": [False], "has_face": [False], "has_cat_face": [False],
                               "brightness": [np.nan], "colorfulness": [np.nan], "cam_concentration": [0.3]},
                              index=pd.Index(["x"], name="image_id"))
    text = attributes_text(attributes, "x")
    assert "nan" not in text and "brightness — · colourfulness —" in text


def test_gallery_shows_and_filters_dataset_attributes(demo_env, tmp_path, monkeypatch):
    """The demo run with EmoSet-style attributes: a card shows its scene, the gallery's scene filter
    keeps exactly the cell's graveyard images, and Trends and the inspector show them."""
    from tests.test_app import goto_cell, run_with_changed_votes, start

    def with_scenes(predictions: pd.DataFrame) -> pd.DataFrame:
        test = predictions["split"] == "test"
        cell = test & (predictions["label"] == "anger") & (predictions["pred"] == "sadness")
        scenes = np.array(SCENES)[np.arange(len(predictions)) % len(SCENES)]
        predictions["attr_scene"] = pd.array(np.where(cell, "graveyard", scenes), dtype="string")
        predictions["attr_object"] = [["Tombstone"] if c else ["Sky"] for c in cell]
        predictions["attr_brightness"] = np.where(cell, 0.1, 0.6)
        predictions["valence"] = 1 + np.arange(len(predictions)) % 9  # Emotion6-like, 1 to 9
        return predictions

    predictions = run_with_changed_votes(demo_env, tmp_path, monkeypatch, with_scenes)
    test = predictions[predictions["split"] == "test"]
    cell = test[(test["label"] == "anger") & (test["pred"] == "sadness")]
    assert len(cell) >= 3
    at = goto_cell(start("pages/confusion.py"), "anger", "sadness")
    cards = [m.value for m in at.markdown if m.value.startswith("**")]
    assert cards and all("dataset\\: scene graveyard · object Tombstone · brightness 0\\.1" in c for c in cards)

    at = goto_cell(at, "sadness", "sadness")
    everyday = set(at.session_state["cell_image_ids"])
    at.multiselect(key="attr_filter|attr_scene").set_value(["beach"]).run()
    assert not at.exception
    beach = test[(test["label"] == "sadness") & (test["pred"] == "sadness") & (test["attr_scene"] == "beach")]
    assert set(at.session_state["cell_image_ids"]) == set(beach["image_id"]) != everyday
    # a chosen value stays chosen in another cell, like every filter: the message says which one
    at = goto_cell(at, "anger", "sadness")
    assert at.multiselect(key="attr_filter|attr_scene").value == ["beach"]
    assert at.session_state["cell_image_ids"] == []
    assert any(i.value == "No images in this cell with these filters (scene = beach selected)." for i in at.info)
    at = goto_cell(at, "sadness", "sadness")
    at.multiselect(key="attr_filter|attr_scene").set_value([]).run()
    at.multiselect(key="attr_filter|attr_object").set_value(["Tombstone"]).run()
    assert at.session_state["cell_image_ids"] == [] and any("No images" in i.value for i in at.info)
    at.multiselect(key="attr_filter|attr_object").set_value([]).run()
    # numbers: a range slider per numeric attribute, over the split's values
    valence = at.slider(key="attr_range|valence")
    assert (valence.min, valence.max, valence.value) == (1.0, 9.0, (1.0, 9.0))
    brightness = at.slider(key="attr_range|attr_brightness")
    assert (brightness.min, brightness.max) == (0.1, 0.6)  # the whole split's, not this cell's (all 0.6)
    at = valence.set_value((2.0, 4.0)).run()
    assert not at.exception
    in_range = test[(test["label"] == "sadness") & (test["pred"] == "sadness") & test["valence"].between(2, 4)]
    assert set(at.session_state["cell_image_ids"]) == set(in_range["image_id"]) != everyday
    at = at.slider(key="attr_range|attr_brightness").set_value((0.1, 0.3)).run()
    assert at.session_state["cell_image_ids"] == []
    assert any("(brightness 0.1–0.3; valence 2–4 selected)" in i.value for i in at.info)
    at.slider(key="attr_range|valence").set_value((1.0, 9.0)).run()
    at.slider(key="attr_range|attr_brightness").set_value((0.1, 0.6)).run()
    assert set(at.session_state["cell_image_ids"]) == everyday  # full ranges filter nothing

    at = goto_cell(at, "anger", "sadness")
    at.switch_page("pages/inspector.py").run()
    assert any("Dataset attributes: scene graveyard · object Tombstone · brightness 0\\.1" in c.value
               for c in at.caption)
    at.switch_page("pages/trends.py").run()
    assert not at.exception and not at.error
    assert DATA + "scene = graveyard" in at.dataframe[0].value["Feature"].tolist()
