"""EmoSet, LDL, Emotion6, prefix folders and class files: fixtures in the shapes the datasets ship."""
import json
import math

import pandas as pd
import pytest

from emotion_core.dataset import DatasetError, read_manifest, write_dataset
from emotion_core.import_classes import read_class_file
from emotion_core.import_emoset import import_emoset
from emotion_core.import_emotion6 import EMOTION6_CLASSES, import_emotion6
from emotion_core.import_ldl import import_ldl
from emotion_core.importers import import_folder, import_manifest
from emotion_core.labels import MIKELS8, ClassSet, read_classes
from tests.conftest import save_noise_image
from training import prepare


def write_text(path, lines, newline="\n"):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(newline.join(lines).encode() + newline.encode())
    return path


def run_prepare(*argv):
    return prepare.main(prepare.get_args_parser().parse_args([*argv, "--workers", "2"]))


def refused(capsys, *argv):
    """The one stderr line of a refused import (exit 2)."""
    args = prepare.get_args_parser().parse_args([*argv, "--workers", "2"])
    with pytest.raises(SystemExit) as exit_info:
        prepare.run_main(prepare.main, args)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err
    return err


# ---- EmoSet --------------------------------------------------------------------------------

EMOSET_INFO = {"emotion": {"label2idx": {e: i for i, e in enumerate(
    ["amusement", "awe", "contentment", "excitement", "anger", "disgust", "fear", "sadness"])}},
    "scene": {"label2idx": {"amusement_park": 0}}}
FULL_ANNOTATION = {"image_id": "awe_00007", "emotion": "awe", "brightness": 0.4, "colorfulness": 0.6,
                   "scene": "mountain/snowy", "object": ["Mountain", "Sky"], "facial_expression": "happy",
                   "human_action": "  hiking \n"}


def entry_path(kind, emotion, number, suffix):
    return f"{kind}/{emotion}/{emotion}_{number:05d}.{suffix}"


@pytest.fixture
def emoset_root(tmp_path):
    root = tmp_path / "EmoSet-118K"
    root.mkdir()
    (root / "info.json").write_text(json.dumps(EMOSET_INFO))
    images = [("awe", 7), ("anger", 3), ("amusement", 3317), ("sadness", 12), ("fear", 5)]
    for seed, (emotion, number) in enumerate(images):
        save_noise_image(root / entry_path("image", emotion, number, "jpg"), seed=seed)
    (root / entry_path("image", "fear", 5, "jpg")).write_bytes(b"not an image")
    annotations = {("awe", 7): FULL_ANNOTATION,
                   ("anger", 3): {"emotion": "anger", "colorfulness": 0.1, "scene": "street", "object": []},
                   ("amusement", 3317): {"emotion": "amusement", "brightness": 1, "object": ["Balloon"],
                                         "facial_expression": "happy"},
                   ("fear", 5): {"emotion": "fear"}}
    for (emotion, number), annotation in annotations.items():
        path = root / entry_path("annotation", emotion, number, "json")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(annotation, indent=1))
    # sadness_00012's annotation file is missing: its attributes are all missing

    def entry(emotion, number, with_id=False):
        image_id = [f"{emotion}_{number:05d}"] if with_id else []
        return json.dumps([emotion, *image_id, entry_path("image", emotion, number, "jpg"),
                           entry_path("annotation", emotion, number, "json")])
    # the released zip: 3 fields, one entry per line, CRLF line endings
    write_text(root / "train.json", ["[", entry("awe", 7) + ",", entry("anger", 3) + ",",
                                     entry("fear", 5), "]"], newline="\r\n")
    # the official loader: 4 fields, all on one line
    (root / "val.json").write_text(f"[{entry('amusement', 3317, with_id=True)}]")
    write_text(root / "test.json", ["[", "  " + entry("sadness", 12), "]"])
    return root


def test_emoset_rows_splits_and_attributes(emoset_root):
    manifest, report, classes = import_emoset(emoset_root, workers=2)
    assert classes == MIKELS8
    rows = manifest.set_index("image_id")
    assert sorted(rows.index) == ["amusement_03317", "anger_00003", "awe_00007", "sadness_00012"]
    # mapped by name: EmoSet's index 1 (awe) is FI's index 2, its anger (4) is FI's 1
    assert rows["label"].to_dict() == {"awe_00007": "awe", "anger_00003": "anger",
                                       "amusement_03317": "amusement", "sadness_00012": "sadness"}
    assert rows["split"].to_dict() == {"awe_00007": "train", "anger_00003": "train",
                                       "amusement_03317": "dev", "sadness_00012": "test"}
    assert rows.loc["awe_00007", "path"] == str(emoset_root / "image/awe/awe_00007.jpg")
    awe = rows.loc["awe_00007"]
    assert (awe["attr_brightness"], awe["attr_colorfulness"]) == (0.4, 0.6)
    assert (awe["attr_scene"], awe["attr_facial_expression"], awe["attr_human_action"]) == \
        ("mountain/snowy", "happy", "hiking")
    assert awe["attr_object"] == ["Mountain", "Sky"]
    anger = rows.loc["anger_00003"]
    assert math.isnan(anger["attr_brightness"]) and anger["attr_colorfulness"] == 0.1
    assert pd.isna(anger["attr_facial_expression"]) and pd.isna(anger["attr_human_action"])
    assert anger["attr_object"] == []
    assert rows.loc["amusement_03317", "attr_brightness"] == 1.0   # a whole number is a brightness too
    sadness = rows.loc["sadness_00012"]
    assert math.isnan(sadness["attr_brightness"]) and pd.isna(sadness["attr_scene"]) and sadness["attr_object"] == []
    assert str(manifest["attr_brightness"].dtype) == "float64" and str(manifest["attr_scene"].dtype) == "string"
    assert manifest["agree"].isna().all() and str(manifest["agree"].dtype) == "Int64"
    summary = report.to_dict()
    assert summary["rows_read"] == 5 and summary["per_class"]["fear"]["skipped"] == {"unreadable": 1}
    assert summary["details"]["annotations_missing"] == 1
    assert summary["details"]["attributes_present"]["attr_object"] == 2


def test_emoset_through_prepare_keeps_official_splits_and_round_trips(emoset_root, tmp_path, capsys):
    out = tmp_path / "dataset"
    summary = run_prepare("emoset", "--root", str(emoset_root), "--out", str(out))
    assert summary["split"] == {"spec": "official", "seed": None, "sizes": {"train": 2, "dev": 1, "test": 1}}
    assert read_classes(out) == MIKELS8
    assert json.loads((out / "classes.json").read_text())["kind"] == "mikels8"
    back = read_manifest(out).set_index("image_id")
    assert list(back.loc["awe_00007", "attr_object"]) == ["Mountain", "Sky"]
    assert list(back.loc["anger_00003", "attr_object"]) == []
    assert back.loc["awe_00007", "attr_scene"] == "mountain/snowy"
    assert pd.isna(back.loc["anger_00003", "attr_human_action"])
    assert math.isnan(back.loc["sadness_00012", "attr_brightness"])
    assert "annotations missing: 1" in capsys.readouterr().out
    assert not [p for p in out.iterdir() if p.name.endswith(".tmp")]


@pytest.mark.parametrize("file_name, content, message", [
    ("train.json", '[\r\n  ["awe", "image/awe/awe_00007.jpg", "annotation/awe/awe_00007.json"],\r\n'
                   '  ["awe", "image/awe/awe_00007.jpg"]\r\n]',
     "error: train.json line 3: expected [emotion, image_path, annotation_path] or "
     "[emotion, image_id, image_path, annotation_path], got ['awe', 'image/awe/awe_00007.jpg']"),
    ("val.json", '[\n["amusement", "image/amusement/amusement_03317.jpg", "a.json"],\n'
                 '["happiness", "image/awe/awe_00007.jpg", "b.json"]]',
     "error: val.json line 3: emotion 'happiness' is not an EmoSet emotion; EmoSet has amusement, awe, "
     "contentment, excitement, anger, disgust, fear, sadness"),
    ("test.json", '[\n["awe", "x.jpg", "y.json"],\n["awe" "z.jpg"]]', "error: test.json line 3: not JSON"),
    ("test.json", '[["sadness", "image/awe/awe_00007.jpg", "annotation/awe/awe_00007.json"]]',
     "error: test.json line 1: image 'image/awe/awe_00007.jpg' is also listed on train.json line 2"),
    ("annotation/awe/awe_00007.json", '{\n  "brightness": 0.4,\n  "scene": mountain\n}',
     "error: annotation/awe/awe_00007.json line 3: not JSON (Expecting value)"),
])
def test_emoset_bad_input_names_file_and_line(emoset_root, tmp_path, capsys, file_name, content, message):
    (emoset_root / file_name).write_text(content)
    out = tmp_path / "never"
    assert refused(capsys, "emoset", "--root", str(emoset_root), "--out", str(out)).startswith(message)
    assert not out.exists()


# ---- Flickr_LDL / Twitter_LDL --------------------------------------------------------------

LDL_HEADER = "images-name Amusement Awe Contentment Excitement Anger Disgust Fear Sadness"


@pytest.fixture
def ldl_root(tmp_path):
    root = tmp_path / "Flickr_LDL"
    write_text(root / "ground_truth.txt", [
        LDL_HEADER,
        "1.jpg 0 1 4 1 0 0 2 1",    # contentment 4 of 9: a plurality, no majority
        "2.jpg 0 0 0 0 5 3 0 0",    # anger 5 of 8
        "",
        "3.jpg 4 4 0 0 0 0 0 3",    # amusement/awe tie: left out, reported
        "4 1 0 0 0 0 0 0 7",        # a name without suffix: images/4.jpg
        "5.jpg 0 0 0 8 0 0 0 0",    # image missing: skipped
    ], newline="\r\n")
    for seed, name in enumerate(["1.jpg", "2.jpg", "3.jpg", "4.jpg"]):
        save_noise_image(root / "images" / name, seed=seed)
    return root


def test_ldl_rows_votes_majority_and_ties(ldl_root):
    manifest, report, classes = import_ldl(ldl_root, workers=2)
    assert classes == MIKELS8
    rows = manifest.set_index("image_id")
    assert rows["label"].to_dict() == {"1": "contentment", "2": "anger", "4": "sadness"}
    assert rows[["agree", "disagree"]].astype(int).values.tolist() == [[4, 5], [5, 3], [7, 1]]
    # columns mapped by the header's names: the 5th count is anger, FI's 2nd emotion
    assert rows.loc["2", ["votes_anger", "votes_disgust", "votes_awe"]].tolist() == [5, 3, 0]
    assert rows.loc["1"][[f"votes_{e}" for e in MIKELS8.names]].tolist() == [0, 0, 1, 4, 0, 1, 2, 1]
    assert all(str(manifest[f"votes_{e}"].dtype) == "Int64" for e in MIKELS8.names)
    assert rows.loc["4", "path"] == str(ldl_root / "images" / "4.jpg")
    summary = report.to_dict()
    assert summary["ambiguous"] == [{"image": "3.jpg", "votes": 4, "labels": ["amusement", "awe"]}]
    assert summary["per_class"]["excitement"]["skipped"] == {"missing": 1}
    assert summary["rows_read"] == 5 and summary["details"] == {"plurality_only": 1}


def test_ldl_through_prepare_splits_by_seed(ldl_root, tmp_path):
    out = tmp_path / "dataset"
    summary = run_prepare("ldl", "--root", str(ldl_root), "--out", str(out), "--split", "34/33/33", "--seed", "3")
    assert summary["split"]["spec"] == "34/33/33" and sum(summary["split"]["sizes"].values()) == 3
    back = read_manifest(out)
    assert set(back["split"]) <= {"train", "dev", "test"} and back["votes_sadness"].tolist() == [1, 0, 7]
    assert read_classes(out) == MIKELS8


def test_ldl_line_with_seven_counts(ldl_root, tmp_path, capsys):
    write_text(ldl_root / "ground_truth.txt", [LDL_HEADER, "1.jpg 0 1 6 1 0 0 2 1", "2.jpg 0 0 0 5 3 0 0"],
               newline="\r\n")
    out = tmp_path / "never"
    assert refused(capsys, "ldl", "--root", str(ldl_root), "--out", str(out)) == \
        "error: ground_truth.txt line 3: 7 vote counts, the header names 8 emotions"
    assert not out.exists()


def test_ldl_unknown_header_name(ldl_root):
    write_text(ldl_root / "ground_truth.txt", [LDL_HEADER.replace("Awe", "Joy"), "1.jpg 0 1 6 1 0 0 2 1"])
    with pytest.raises(ValueError, match="ground_truth.txt line 1: column 'Joy' is not one of Mikels' eight"):
        import_ldl(ldl_root)


# ---- Emotion6 ------------------------------------------------------------------------------

EMOTION6_HEADER = "\t".join(["[image_filename]", "[valence]", "[arousal]", "[prob. anger]", "[prob. disgust]",
                             "[prob. fear]", "[prob. joy]", "[prob. sadness]", "[prob. surprise]", "[prob. neutral]"])


@pytest.fixture
def emotion6_root(tmp_path):
    root = tmp_path / "Emotion6"
    write_text(root / "ground_truth.txt", [
        EMOTION6_HEADER,
        "disgust/1.jpg\t2.5\t3.8\t0.133333\t0.7\t0\t0.0666667\t0.1\t0\t0",
        "joy/2.jpg\t7\t5.1\t0\t0\t0\t0.9\t0\t0.1\t0",            # integer valence
        "fear/3.jpg\t3.1\t6\t0\t0\t0.4\t0\t0\t0.4\t0.2",          # fear/surprise tie
        "sadness/4.jpg\t5\t2.2\t0\t0\t0\t0.2\t0\t0\t0.8",
    ])
    for seed, name in enumerate(["disgust/1.jpg", "joy/2.jpg", "fear/3.jpg", "sadness/4.jpg"]):
        save_noise_image(root / "images" / name, seed=seed)
    return root


def test_emotion6_rows_distribution_valence_arousal(emotion6_root):
    manifest, report, classes = import_emotion6(emotion6_root, workers=2)
    assert classes == EMOTION6_CLASSES and classes.names[3] == "joy" and "surprise" not in classes.polarity
    rows = manifest.set_index("image_id")
    assert rows["label"].to_dict() == {"disgust/1": "disgust", "joy/2": "joy", "sadness/4": "neutral"}
    assert rows["keyword"].to_dict() == {"disgust/1": "disgust", "joy/2": "joy", "sadness/4": "sadness"}
    assert rows.loc["joy/2", ["valence", "arousal"]].tolist() == [7.0, 5.1]
    assert rows.loc["disgust/1", [f"votes_{e}" for e in classes]].tolist() == \
        [0.133333, 0.7, 0.0, 0.0666667, 0.1, 0.0, 0.0]
    assert all(str(manifest[c].dtype) == "float64" for c in ["valence", "arousal", "votes_joy"])
    assert manifest["agree"].isna().all() and manifest["disagree"].isna().all()
    assert rows.loc["joy/2", "path"] == str(emotion6_root / "images" / "joy" / "2.jpg")
    assert report.to_dict()["ambiguous"] == [{"image": "fear/3.jpg", "probability": 0.4,
                                              "labels": ["fear", "surprise"]}]
    assert set(report.to_dict()["per_class"]) == set(classes.names)


def test_emotion6_through_prepare_declares_its_classes(emotion6_root, tmp_path):
    out = tmp_path / "dataset"
    run_prepare("emotion6", "--root", str(emotion6_root), "--out", str(out))
    assert read_classes(out) == EMOTION6_CLASSES
    written = pd.read_parquet(out / "manifest.parquet")
    assert sorted(written["label"]) == ["disgust", "joy", "neutral"] and written["valence"].dtype == "float64"


def test_emotion6_probabilities_must_sum_to_one(emotion6_root, tmp_path, capsys):
    write_text(emotion6_root / "ground_truth.txt", [
        EMOTION6_HEADER, "joy/2.jpg\t7\t5.1\t0\t0\t0\t0.9\t0\t0.1\t0",
        "disgust/1.jpg\t2.5\t3.8\t0.1\t0.7\t0\t0.0666667\t0.1\t0\t0"])
    out = tmp_path / "never"
    assert refused(capsys, "emotion6", "--root", str(emotion6_root), "--out", str(out)) == \
        "error: ground_truth.txt line 3: probabilities sum to 0.966667, not 1 (±0.001)"
    assert not out.exists()


# ---- folders by prefix, class files, manifests with classes ---------------------------------

ARTPHOTO_CLASSES = ["amusement", "anger", "awe", "contentment", "disgust", "excitement", "fear", "sadness = sad"]


@pytest.fixture
def artphoto(tmp_path):
    root = tmp_path / "ArtPhoto"
    save_noise_image(root / "amusement_1.jpg", seed=1)
    save_noise_image(root / "sad_2.jpg", seed=2)
    save_noise_image(root / "Anger_3.png", seed=3, fmt="PNG")
    (root / "README.txt").write_text("not an image")
    (root / "awe_4.jpg").write_bytes(b"")
    return root


def test_folder_prefix_with_alias_from_a_text_classes_file(artphoto, tmp_path):
    classes_file = write_text(tmp_path / "artphoto.txt", ["# ArtPhoto", *ARTPHOTO_CLASSES], newline="\r\n")
    out = tmp_path / "dataset"
    summary = run_prepare("folder", "--root", str(artphoto), "--label-from", "prefix", "--classes",
                          str(classes_file), "--out", str(out))
    manifest = pd.read_parquet(out / "manifest.parquet").set_index("image_id")
    assert manifest["label"].to_dict() == {"amusement_1": "amusement", "sad_2": "sadness", "Anger_3": "anger"}
    assert summary["per_class"]["awe"]["skipped"] == {"unreadable": 1}
    assert read_classes(out).names == MIKELS8.names   # aliases map names; the class set stays the eight


def test_folder_prefix_without_alias_names_the_file(artphoto, tmp_path, capsys):
    out = tmp_path / "never"
    err = refused(capsys, "folder", "--root", str(artphoto), "--label-from", "prefix", "--out", str(out))
    assert err.startswith(f"error: {artphoto / 'sad_2.jpg'}: name prefix 'sad' is not a class")
    assert not out.exists()


def test_folder_with_a_json_class_set(tmp_path):
    ekman = {"names": ["anger", "disgust", "fear", "happiness", "sadness", "surprise"],
             "display": ["Anger", "Disgust", "Fear", "Happiness", "Sadness", "Surprise"],
             "polarity": {"happiness": "positive"}, "kind": "ekman6", "aliases": {"happy": "happiness"}}
    (tmp_path / "ekman.json").write_text(json.dumps(ekman))
    save_noise_image(tmp_path / "root" / "Happy" / "a.jpg")
    save_noise_image(tmp_path / "root" / "SURPRISE" / "b.jpg", seed=1)
    classes, aliases = read_class_file(tmp_path / "ekman.json")
    manifest, report, returned = import_folder(tmp_path / "root", classes=classes, aliases=aliases, workers=2)
    assert returned == classes and classes.kind == "ekman6" and aliases == {"happy": "happiness"}
    assert dict(zip(manifest["image_id"], manifest["label"])) == {"Happy/a": "happiness", "SURPRISE/b": "surprise"}
    assert set(report.to_dict()["per_class"]) == set(classes.names)


def test_manifest_with_a_classes_file(tmp_path):
    save_noise_image(tmp_path / "img" / "a.jpg")
    save_noise_image(tmp_path / "img" / "b.jpg", seed=1)
    write_text(tmp_path / "classes.txt", ["calm", "tense = stressed", "joyful"])
    (tmp_path / "m.csv").write_text("path,label,votes_calm,votes_tense,votes_joyful\n"
                                    "img/a.jpg,Calm,3,1,0\nimg/b.jpg,stressed,0,2,1\n")
    out = tmp_path / "dataset"
    run_prepare("manifest", "--csv", str(tmp_path / "m.csv"), "--classes", str(tmp_path / "classes.txt"),
                "--out", str(out), "--split", "100/0/0")
    written = pd.read_parquet(out / "manifest.parquet")
    assert written["label"].tolist() == ["calm", "tense"]
    assert written["votes_tense"].tolist() == [1, 2]
    assert read_classes(out).names == ("calm", "tense", "joyful")


def test_manifest_label_outside_its_classes_file(tmp_path):
    write_text(tmp_path / "classes.txt", ["calm", "tense"])
    save_noise_image(tmp_path / "a.jpg")
    save_noise_image(tmp_path / "b.jpg", seed=1)
    (tmp_path / "m.csv").write_text("path,label\na.jpg,calm\nb.jpg,anger\n")
    classes, aliases = read_class_file(tmp_path / "classes.txt")
    with pytest.raises(ValueError, match="m.csv line 3: unknown emotion 'anger'; valid: calm, tense"):
        import_manifest(tmp_path / "m.csv", classes=classes, aliases=aliases)


@pytest.mark.parametrize("file_name, content, message", [
    ("classes.txt", "anger\nfear\n\nAnger\n",
     "error: classes.txt line 4: duplicate class name 'anger' (first on line 1)"),
    ("classes.txt", "sadness = sad\nsad\n", "error: classes.txt line 2: duplicate class name 'sad' (first on line 1)"),
    ("classes.json", '{\n  "names": [\n    "calm",\n    "tense",\n    "calm"\n  ]\n}',
     "error: classes.json line 5: duplicate class name 'calm' (first on line 3)"),
    ("classes.json", '{"names": ["calm", "tense"],\n "polarity": {"calm": "good"}}',
     "error: classes.json: unknown polarity 'good'; valid: positive, negative, neutral"),
])
def test_bad_class_files(tmp_path, capsys, file_name, content, message):
    (tmp_path / file_name).write_text(content)
    save_noise_image(tmp_path / "root" / "calm" / "a.jpg")
    out = tmp_path / "never"
    assert refused(capsys, "folder", "--root", str(tmp_path / "root"), "--classes", str(tmp_path / file_name),
                   "--out", str(out)) == message
    assert not out.exists()


def test_write_dataset_refuses_labels_outside_its_classes(tmp_path):
    frame = pd.DataFrame({"image_id": ["a"], "path": ["a.jpg"], "label": ["anger"], "split": ["train"]})
    with pytest.raises(DatasetError, match="label 'anger' is not a class of the dataset; classes: calm, tense"):
        write_dataset(tmp_path / "never", frame, {}, ClassSet(("calm", "tense")))
    assert not (tmp_path / "never").exists()
    write_dataset(tmp_path / "fi", frame, {})
    assert read_classes(tmp_path / "fi") == MIKELS8 and (tmp_path / "fi" / "classes.json").is_file()
