"""Label issues (issue 13, points 4 and 5): confident learning on out-of-sample probabilities finds planted
label flips, training images are ranked only from cross-validation, the flagged x agreement table and
Fisher's test, the CSV export, bad input in one line, and the page on the demo run."""
from __future__ import annotations

import io
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from emotion_core.label_issues import (ALL_OUT_OF_SAMPLE, agreeing_neighbours, CROSS_VALIDATION, EVALUATION, OOF_FILE, PROBABILITIES_FROM,
                                       export_csv, export_table, filter_issues, flagged_by_agreement,
                                       flagged_vs_unanimous, out_of_sample, rank_label_issues, scope_rows, scopes,
                                       votes_in_words)
from emotion_core.votes import with_votes
from tests.conftest import open_page

CLASSES = ["amusement", "anger", "awe", "sadness"]
PER_CLASS = 100


def softmax(logits: np.ndarray) -> np.ndarray:
    exp = np.exp(logits - logits.max(axis=1, keepdims=True))
    return exp / exp.sum(axis=1, keepdims=True)


def planted_set(seed: int = 0, split: str = "dev", prefix: str = "img", in_sample: bool = False
                ) -> tuple[pd.DataFrame, set[str]]:
    """PER_CLASS images of each class, 10% of them relabelled to another class (the planted flips).
    Out of sample, the model leans to each image's true class; in sample (a model that learned the given
    labels) it is sure of the given label, flips included."""
    rng = np.random.default_rng(seed)
    true = np.repeat(np.arange(len(CLASSES)), PER_CLASS)
    n = len(true)
    flips = rng.choice(n, n // 10, replace=False)
    given = true.copy()
    given[flips] = (true[flips] + rng.integers(1, len(CLASSES), len(flips))) % len(CLASSES)
    logits = rng.normal(0.0, 1.0, (n, len(CLASSES)))
    logits[np.arange(n), given if in_sample else true] += 6.0 if in_sample else 3.0
    probabilities = softmax(logits)
    ids = [f"{prefix}{i:04d}" for i in range(n)]
    table = pd.DataFrame({"image_id": ids, "path": [f"images/{i}.png" for i in ids], "split": split,
                          "label": np.asarray(CLASSES)[given], "agree": 5, "disagree": 0,
                          **{f"p_{c}": probabilities[:, k] for k, c in enumerate(CLASSES)}})
    return with_votes(table), {ids[i] for i in flips}


def found(ranked: pd.DataFrame, planted: set[str]) -> tuple[float, float, float]:
    """(recall, precision) of the flagged images, and the share of the planted flips among the len(planted)
    images ranked first."""
    flagged = set(ranked.loc[ranked["flagged"], "image_id"])
    top = set(ranked["image_id"].head(len(planted)))
    return (len(flagged & planted) / len(planted), len(flagged & planted) / max(len(flagged), 1),
            len(top & planted) / len(planted))


def test_planted_label_flips_are_flagged_and_ranked_first():
    table, planted = planted_set()
    ranking = rank_label_issues(table, CLASSES)
    recall, precision, top = found(ranking.table, planted)
    # a random ranking would give about 10% on each; these are 0.97, 0.89 and 0.95 for this seed
    assert recall >= 0.75 and precision >= 0.75 and top >= 0.8, (recall, precision, top)
    ranked = ranking.table
    assert ranked["issue_rank"].tolist() == list(range(1, len(table) + 1))
    assert ranked["score"].is_monotonic_increasing
    # the suggested class is the most probable one: for the flips found, mostly the planted true class
    p = ranked[[f"p_{c}" for c in CLASSES]].to_numpy()
    assert (ranked["suggested"].to_numpy() == np.asarray(CLASSES)[p.argmax(axis=1)]).all()
    assert ranking.notes == []


def test_training_images_are_ranked_only_from_cross_validated_probabilities():
    dev, _ = planted_set(seed=1, split="dev", prefix="dev")
    evaluated_train, planted = planted_set(seed=2, split="train", prefix="tr", in_sample=True)
    oof, planted_again = planted_set(seed=2, split="train", prefix="tr")  # the same images and labels, out of sample
    assert planted == planted_again
    oof = oof.drop(columns=["agree", "disagree", "agreement", "agreement_level"]).assign(fold=0)
    predictions = pd.concat([dev, evaluated_train], ignore_index=True)

    assert set(out_of_sample(predictions)["split"]) == {"dev"}  # no cross-validation: no training images
    table = out_of_sample(predictions, oof)
    train = table[table["split"] == "train"].set_index("image_id")
    assert set(train[PROBABILITIES_FROM]) == {CROSS_VALIDATION}
    assert set(table.loc[table["split"] == "dev", PROBABILITIES_FROM]) == {EVALUATION}
    probability_columns = [f"p_{c}" for c in CLASSES]
    assert np.allclose(train.loc[oof["image_id"], probability_columns], oof[probability_columns])
    assert len(table) == len(dev) + len(oof)
    assert (train["agree"] == 5).all()  # votes from the evaluated train rows when no manifest is given
    assert scopes(table) == ["train", "dev", ALL_OUT_OF_SAMPLE]

    recall, precision, _ = found(rank_label_issues(scope_rows(table, "train"), CLASSES).table, planted)
    assert recall >= 0.75 and precision >= 0.75, (recall, precision)
    # what the rule prevents: the evaluated (in-sample) probabilities hide the flips
    recall_in_sample, *_ = found(rank_label_issues(evaluated_train, CLASSES).table, planted)
    assert recall_in_sample < 0.2


def test_cross_validated_training_images_take_their_votes_from_the_manifest():
    dev, _ = planted_set(seed=1, split="dev", prefix="dev")
    oof = dev.head(8).assign(split="train", image_id=[f"tr{i}" for i in range(8)]).drop(columns=["agree", "disagree"])
    manifest = pd.DataFrame({"image_id": [f"tr{i}" for i in range(8)], "agree": [3] * 4 + [5] * 4,
                             "disagree": [2] * 4 + [0] * 4, "label": "x", "path": "elsewhere"})
    train = out_of_sample(dev, oof, manifest).query("split == 'train'")
    assert train["agreement_level"].tolist() == ["strongly divided"] * 4 + ["unanimous"] * 4
    assert (train["path"] == oof["path"].to_numpy()).all()  # everything else stays the cross-validation's


def test_flagged_by_agreement_table_and_fisher_test_by_hand():
    ranked = pd.DataFrame({
        "flagged": [True, True, True, True, True, False, False, False, False, False],
        "agreement_level": ["unanimous", "non-unanimous", "non-unanimous", "strongly divided", "no votes",
                            "unanimous", "unanimous", "unanimous", "unanimous", "non-unanimous"]})
    table = flagged_by_agreement(ranked)
    assert table.to_dict("index") == {
        "flagged": {"unanimous": 1, "non-unanimous": 2, "strongly divided": 1, "no votes": 1, "all": 5},
        "not flagged": {"unanimous": 4, "non-unanimous": 1, "strongly divided": 0, "no votes": 0, "all": 5},
        "all": {"unanimous": 5, "non-unanimous": 3, "strongly divided": 1, "no votes": 1, "all": 10}}
    test = flagged_vs_unanimous(ranked)
    assert test.table == ((3, 1), (1, 4))  # no votes left out; strongly divided counts as non-unanimous
    # by hand: margins 4/5 and 4/5 of 9; P(a) = C(4,a) C(5,4-a) / C(9,4) = (5, 40, 60, 20, 1) / 126 for a = 0..4;
    # two-sided: every table at most as likely as the observed a = 3: (5 + 20 + 1) / 126
    assert test.p_value == pytest.approx(26 / 126)
    assert test.odds_ratio == pytest.approx(3 * 4 / (1 * 1))
    assert test.answer == ("Not detectably: flagged images have non-unanimous votes about as often (3 of 4, 75%) as "
                           "the rest (1 of 5, 20%); odds ratio 12.00, Fisher's exact test p = 0.206 (two-sided).")


def test_fisher_answer_when_it_cannot_be_asked():
    no_votes = pd.DataFrame({"flagged": [True, False], "agreement_level": ["no votes", "no votes"]})
    assert flagged_vs_unanimous(no_votes).answer.startswith("No image here has votes")
    none_flagged = pd.DataFrame({"flagged": [False, False], "agreement_level": ["unanimous", "non-unanimous"]})
    assert flagged_vs_unanimous(none_flagged).answer.startswith("No image with votes is flagged")


def test_a_clear_yes_when_the_flagged_images_are_the_divided_ones():
    ranked = pd.DataFrame({"flagged": [True] * 10 + [False] * 30,
                           "agreement_level": ["strongly divided"] * 9 + ["unanimous"] + ["unanimous"] * 27
                           + ["non-unanimous"] * 3})
    answer = flagged_vs_unanimous(ranked).answer
    assert answer.startswith("Yes: flagged images have non-unanimous votes more often (9 of 10, 90%) than the rest "
                             "(3 of 30, 10%)") and "p < 0.001" in answer


def test_csv_export_columns_and_order():
    table, _ = planted_set()
    table.loc[0, ["agree", "disagree"]] = [3, 2]
    ranked = rank_label_issues(with_votes(table), CLASSES).table
    data = export_csv(ranked, CLASSES)
    read = pd.read_csv(io.BytesIO(data))
    assert list(read.columns) == ["image_id", "path", "given_label", "suggested_label", "score", "votes", "flagged",
                                  "agreement_level", "split"]
    assert read["image_id"].tolist() == ranked["image_id"].tolist()  # ranking order
    assert read["given_label"].tolist() == ranked["label"].tolist()
    assert read["suggested_label"].tolist() == ranked["suggested"].tolist()
    assert np.allclose(read["score"], ranked["score"], rtol=1e-5)
    assert read.set_index("image_id").loc["img0000", "votes"] == "3 agree / 2 disagree"
    assert list(export_table(ranked.iloc[:0], CLASSES).columns) == list(read.columns)


def test_votes_in_words_reads_a_vote_distribution():
    row = {"label": "awe", "agree": 6, "disagree": 5, "votes_amusement": 1, "votes_anger": 0, "votes_awe": 6,
           "votes_sadness": 4}
    assert votes_in_words(row, CLASSES) == "awe 6, sadness 4, amusement 1"
    assert votes_in_words({"label": "awe", "agree": None, "disagree": None}) == "no votes"


def bad(table: pd.DataFrame, case: str) -> pd.DataFrame:
    if case == "fewer images than classes":
        return table.iloc[[0, 150, 250]]
    if case == "one class":
        return table[table["label"] == "anger"]
    if case == "a class without images":
        return table[table["label"] != "awe"]
    if case == "probabilities not summing to 1":
        return table.assign(p_anger=table["p_anger"] + np.where(np.arange(len(table)) % 7 == 0, 0.2, 0.0))
    if case == "missing probabilities":
        return table.assign(p_awe=np.where(np.arange(len(table)) == 3, np.nan, table["p_awe"]))
    if case == "a label outside the classes":
        return table.assign(label=table["label"].where(np.arange(len(table)) != 5, "joy"))
    return table.drop(columns=["p_sadness"])


@pytest.mark.parametrize("case, message", [
    ("fewer images than classes", "3 images for 4 classes: ranking label issues needs at least as many images"),
    ("one class", "all 105 images are labelled anger: confident learning needs images of at least two classes"),
    ("a class without images", "no image is labelled awe: confident learning needs images of every class"),
    ("probabilities not summing to 1", "58 of 400 images have probabilities that are not a distribution"),
    ("missing probabilities", "1 of 400 images have probabilities that are not a distribution over the classes (image img0003 has a missing value"),
    ("a label outside the classes", "unknown label joy; valid: amusement, anger, awe, sadness"),
    ("a class's column missing", "no probability column p_sadness"),
])
def test_bad_input_is_one_line(case, message):
    table, _ = planted_set()
    with pytest.raises(ValueError) as err:
        rank_label_issues(bad(table, case), CLASSES)
    assert message in str(err.value) and "\n" not in str(err.value)


def test_a_class_too_small_to_flag_is_said_in_one_note():
    table, _ = planted_set()
    one_awe = pd.concat([table[table["label"] != "awe"], table[table["label"] == "awe"].head(1)])
    assert rank_label_issues(one_awe, CLASSES).notes == [
        "Too few images of awe to flag every label issue of that class (cleanlab's min_examples_per_class)."]


def test_filters_keep_the_ranking_order():
    table, _ = planted_set()
    table.loc[table.index[::3], ["agree", "disagree"]] = [3, 2]
    ranked = rank_label_issues(with_votes(table), CLASSES).table
    shown = filter_issues(ranked, given=["anger"], suggested=["awe", "sadness"], levels=["strongly divided"],
                          flagged_only=True)
    assert not shown.empty
    assert (shown["label"] == "anger").all() and shown["suggested"].isin(["awe", "sadness"]).all()
    assert (shown["agreement_level"] == "strongly divided").all() and shown["flagged"].all()
    assert shown["issue_rank"].is_monotonic_increasing
    with pytest.raises(ValueError, match="unknown agreement level divided; valid: unanimous"):
        filter_issues(ranked, levels=["divided"])


def test_agreeing_neighbours_against_brute_force():
    from emotion_core.neighbours import NeighbourIndex

    rng = np.random.default_rng(3)
    n = 60
    predictions = pd.DataFrame({"image_id": [f"e{i}" for i in range(n)], "label": rng.choice(CLASSES, n),
                                "split": "test", "cam_index": rng.permutation(n)})  # row order is not embedding order
    embeddings = rng.normal(size=(n, 5)).astype(np.float32)
    rows = pd.concat([predictions.iloc[[4, 17, 33]], pd.DataFrame({"image_id": ["not evaluated"], "label": ["awe"]})])
    counts = agreeing_neighbours(rows, predictions, NeighbourIndex(embeddings), k=7)
    unit = embeddings / np.linalg.norm(embeddings, axis=1, keepdims=True)
    label_of_row = predictions.set_index("cam_index")["label"]
    for image_id, label, own in predictions.iloc[[4, 17, 33]][["image_id", "label", "cam_index"]].itertuples(index=False):
        similarity = unit @ unit[own]
        similarity[own] = -np.inf
        nearest = np.argsort(-similarity)[:7]
        assert counts[image_id] == sum(label_of_row[r] == label for r in nearest)
    assert list(counts.index) == ["e4", "e17", "e33"]  # the image without an embedding is left out


def test_the_page_reads_the_file_crossval_writes():
    from training import crossval

    assert OOF_FILE == crossval.OOF_FILE


# ---- the page, on the demo run -------------------------------------------------------------------------------

@pytest.fixture
def issues_env(demo_workspace, tmp_path, monkeypatch) -> Path:
    """A copy of the demo workspace (its tags and files are the page's to change)."""
    shutil.copytree(demo_workspace, tmp_path / "home")
    monkeypatch.setenv("EMOLENS_HOME", str(tmp_path / "home"))
    return tmp_path / "home"


def cards(at) -> list[str]:
    return [m.value for m in at.markdown if m.value.startswith("**")]


def test_label_issues_page_filters_and_tags_in_bulk(issues_env):
    from emotion_core.tags import TagStore

    # embeddings in which every image is nearest to its own class: 10 of its 10 neighbours share its label
    predictions = pd.read_parquet(issues_env / "runs" / "demo" / "predictions.parquet").sort_values("cam_index")
    embeddings = np.eye(8, dtype=np.float32)[predictions["label_idx"].to_numpy()] + \
        np.random.default_rng(0).normal(0, 0.01, (len(predictions), 8)).astype(np.float32)
    np.save(issues_env / "runs" / "demo" / "embeddings.npy", embeddings.astype(np.float16))
    at = open_page("pages/label_issues.py")
    assert at.title[0].value == "Label issues"
    assert all("10 of its 10 nearest evaluated images share its label" in card for card in cards(at))
    assert any("training.crossval" in i.value for i in at.info)  # the demo has no cross-validation
    assert at.selectbox(key="issue_scope").options == ["dev split", "test split", ALL_OUT_OF_SAMPLE]
    assert at.selectbox(key="issue_scope").value == "test"  # the sidebar's split
    study = at.dataframe[0].value
    assert list(study["Label issue"]) == ["flagged", "not flagged", "all"]
    assert any("Fisher's exact test" in m.value for m in at.markdown)
    assert at.get("download_button")[0].label.startswith("Download these ")

    at.multiselect(key="issue_given").set_value(["sadness"]).run()
    shown = cards(at)
    assert shown and all("given **Sadness**" in card and "⚑ flagged" in card for card in shown)
    tag_button = at.button(key="issue_tag_all")
    count = int(tag_button.label.split()[2].replace(",", ""))
    at.text_input(key="author_input").set_value("ann").run()
    at.button(key="issue_tag_all").click().run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    store = TagStore(f"sqlite:///{issues_env / 'tags.sqlite'}")
    tagged = store.tags_of("demo").query("tag == 'label ambiguous'")
    assert len(tagged) == count > len(shown) - 1
    ranked = pd.read_parquet(issues_env / "runs" / "demo" / "predictions.parquet").query("split == 'test'")
    assert set(tagged["image_id"]) <= set(ranked.loc[ranked["label"] == "sadness", "image_id"])
    assert any(f"tagged {count} with “label ambiguous”" in s.value for s in at.success)
    assert all("🏷 label ambiguous" in card for card in cards(at))
    at.button(key="issue_undo").click().run()
    assert store.tags_of("demo").query("tag == 'label ambiguous'").empty


def test_label_issues_page_ranks_cross_validated_training_images(issues_env):
    dataset = issues_env / "datasets" / "demo"
    manifest = pd.read_parquet(dataset / "manifest.parquet").query("split == 'train'")
    rng = np.random.default_rng(0)
    probabilities = rng.dirichlet(np.ones(8) * 0.5, len(manifest))
    classes = ["amusement", "anger", "awe", "contentment", "disgust", "excitement", "fear", "sadness"]
    oof = pd.DataFrame({"image_id": manifest["image_id"].to_numpy(), "path": manifest["path"].to_numpy(),
                        "split": "train", "label": manifest["label"].to_numpy(),
                        "label_idx": manifest["label"].map(classes.index).to_numpy(), "fold": np.arange(len(manifest)) % 3,
                        **{f"p_{c}": probabilities[:, k] for k, c in enumerate(classes)}})
    oof.to_parquet(issues_env / "runs" / "demo" / OOF_FILE, index=False)

    at = open_page("pages/label_issues.py")
    assert not any("training.crossval" in i.value for i in at.info)
    assert at.selectbox(key="issue_scope").options == ["train split", "dev split", "test split", ALL_OUT_OF_SAMPLE]
    at.selectbox(key="issue_scope").set_value("train").run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    shown = cards(at)
    assert shown and all("train (cross-validated)" in card.replace("\\", "") for card in shown)
    assert all("votes " in card or "no votes" in card for card in shown)
    assert int(at.metric[0].value.replace(",", "")) == len(manifest)


def write_oof_of_every_train_image(home: Path) -> pd.DataFrame:
    """oof_probabilities.parquet for every training image of the demo dataset (random distributions)."""
    manifest = pd.read_parquet(home / "datasets" / "demo" / "manifest.parquet").query("split == 'train'")
    probabilities = np.random.default_rng(0).dirichlet(np.ones(8) * 0.5, len(manifest))
    classes = ["amusement", "anger", "awe", "contentment", "disgust", "excitement", "fear", "sadness"]
    oof = pd.DataFrame({"image_id": manifest["image_id"].to_numpy(), "path": manifest["path"].to_numpy(),
                        "split": "train", "label": manifest["label"].to_numpy(),
                        "label_idx": manifest["label"].map(classes.index).to_numpy(),
                        "fold": np.arange(len(manifest)) % 3,
                        **{f"p_{c}": probabilities[:, k] for k, c in enumerate(classes)}})
    oof.to_parquet(home / "runs" / "demo" / OOF_FILE, index=False)
    return oof


def forget_the_train_evaluation(run: Path) -> None:
    """The run as if evaluated on dev and test only: its train rows, maps and embeddings removed."""
    import json

    predictions = pd.read_parquet(run / "predictions.parquet").sort_values("cam_index")
    kept = predictions[predictions["split"] != "train"]
    for name in ("cams.npy", "embeddings.npy"):
        np.save(run / name, np.load(run / name)[kept["cam_index"].to_numpy()])
    kept.assign(cam_index=np.arange(len(kept))).to_parquet(run / "predictions.parquet", index=False)
    metrics = json.loads((run / "metrics.json").read_text())
    metrics["splits"].pop("train", None)
    (run / "metrics.json").write_text(json.dumps(metrics))
    shutil.rmtree(run / "cache", ignore_errors=True)


def test_a_cross_validated_image_the_run_did_not_evaluate_gets_the_command_not_an_inspect_link(issues_env):
    run = issues_env / "runs" / "demo"
    forget_the_train_evaluation(run)
    oof = write_oof_of_every_train_image(issues_env)
    at = open_page("pages/label_issues.py")
    at.selectbox(key="issue_scope").set_value("train").run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    shown = cards(at)
    assert shown and not [link for link in at.page_link if link.value == "Inspect"]
    commands = [c.value for c in at.caption if c.value.startswith("Not evaluated by this run")]
    assert len(commands) == len(shown)
    assert f"python -m training.evaluate --run {run}" in commands[0] and "--split train,dev,test" in commands[0]
    at.selectbox(key="issue_scope").set_value("dev").run()
    links = [link.proto.query_string for link in at.page_link if link.value == "Inspect"]
    assert len(links) == len(cards(at)) > 0  # evaluated images keep their link

    # a link to one of them (an old bookmark) says it is not there, rather than showing another image silently
    missing = oof["image_id"].iloc[0]
    at.query_params["image"] = missing
    at.switch_page("pages/inspector.py").run()
    assert not at.exception and not at.error
    warnings = [w.value for w in at.warning]
    shown_id = missing.replace("_", "\\_")  # the id as Markdown text: the link's value is never formatting
    assert len(warnings) == 1 and f"did not evaluate image {shown_id}" in warnings[0] and "\n" not in warnings[0]
    assert "--split train,dev,test" in warnings[0]
    assert not at.subheader[0].value.startswith(f"{missing}:")


def test_the_card_neighbour_counts_are_not_counted_again_on_a_rerun(issues_env, monkeypatch):
    import emotion_core.label_issues as label_issues

    calls, real = [], label_issues.agreeing_neighbours

    def counted(rows, *args, **kwargs):
        calls.append(len(rows))
        return real(rows, *args, **kwargs)

    monkeypatch.setattr(label_issues, "agreeing_neighbours", counted)
    at = open_page("pages/label_issues.py")
    assert len(calls) == 1 and any("nearest evaluated images share its label" in card for card in cards(at))
    at.run()
    at.toggle(key="issue_flagged_only").set_value(True).run()  # the same cards
    assert len(calls) == 1
    at.multiselect(key="issue_given").set_value(["amusement"])
    at.toggle(key="issue_flagged_only").set_value(False).run()  # other cards: counted for them
    assert len(calls) == 2 and not at.exception
    assert all("given **Amusement**" in card for card in cards(at))


def test_the_crossval_command_quotes_the_run_and_an_imported_run_gets_none(tmp_path):
    import json

    from emotion_core.label_issues import crossval_hint

    run = tmp_path / "my run"
    run.mkdir()
    (run / "run.json").write_text(json.dumps({"config": {"dataset": "/data/fi", "arch": "vgg19"}}))
    assert f"`python -m training.crossval --run '{run}' --folds 5`" in crossval_hint(run)
    for meta in ({"source": "imported predictions", "config": {"dataset": "/data/fi"}}, {"source": "import_model"}):
        (run / "run.json").write_text(json.dumps(meta))
        hint = crossval_hint(run)
        assert "python -m training.crossval --run" not in hint and "a run trained here" in hint and "\n" not in hint
    (run / "run.json").unlink()
    assert "a run trained here" in crossval_hint(run)
