import json
from argparse import Namespace

import pandas as pd
import pytest
from PIL import Image

from emotion_core.importers import DataImportError, import_fi, import_folder, import_manifest
from tests.conftest import save_noise_image
from training import prepare


def write_votes(folder, name, rows):
    folder.mkdir(parents=True, exist_ok=True)
    (folder / name).write_text("".join(f"{r}\n" for r in rows))


@pytest.fixture
def fi_tree(tmp_path):
    votes, images = tmp_path / "votes", tmp_path / "images"
    url = "http://farm.example/{}.jpg"
    write_votes(votes, "anger_1.csv", [
        f"1,{url.format('a1')},1,4",      # kept: anger
        f"2,{url.format('a2')},3,2",      # minority: dropped
        f"3,{url.format('dup')},2,3",     # dup: anger 3/5 loses to sadness 5/5
        f"4,{url.format('tie')},1,4",     # tie with fear 4/5: ambiguous
        f"5,{url.format('big')},2,5",     # 7 voters: agreement 5/7 read as it is
        f"6,{url.format('gone')},0,5",    # image missing: skipped
    ])
    write_votes(votes, "sadness_2.csv", [f"7,{url.format('dup')},0,5", f"8,{url.format('broken')},0,3",
                                         f"11,{url.format('cut')},1,4"])
    write_votes(votes, "fear_1.csv", [f"9,{url.format('tie')},1,4", f"10,{url.format('grey')},0,4"])
    for emotion, name in [("anger", "a1"), ("anger", "a2"), ("anger", "big"), ("sadness", "dup"),
                          ("anger", "dup"), ("anger", "tie"), ("fear", "tie")]:
        save_noise_image(images / emotion / f"{name}.jpg", seed=len(name) * 7 + ord(name[0]))
    (images / "sadness" / "broken.jpg").write_bytes(b"<html>photo gone</html>")
    full = (images / "anger" / "a1.jpg").read_bytes()
    (images / "sadness" / "cut.jpg").write_bytes(full[: len(full) // 2])
    Image.new("RGB", (500, 374), (238, 238, 238)).save(images / "fear" / "grey.jpg".replace(".jpg", ".png"))
    (images / "fear" / "grey.png").rename(images / "fear" / "grey.jpg")
    return votes, images


def test_fi_rules(fi_tree):
    votes, images = fi_tree
    manifest, report, _ = import_fi(votes, images)
    labels = dict(zip(manifest["image_id"], manifest["label"]))
    assert labels == {"a1": "anger", "big": "anger", "dup": "sadness"}
    row = manifest.set_index("image_id").loc["big"]
    assert (row["agree"], row["disagree"]) == (5, 2)
    summary = report.to_dict()
    assert summary["minority_votes"] == 1
    assert summary["duplicates_resolved"] == 1
    assert summary["ambiguous"] == [{"url": "http://farm.example/tie.jpg", "labels": ["anger", "fear"],
                                     "agree": 4, "disagree": 1}]
    assert summary["per_class"]["anger"]["skipped"] == {"missing": 1}
    assert summary["per_class"]["sadness"]["skipped"] == {"unreadable": 1, "truncated": 1}
    assert summary["per_class"]["fear"]["skipped"] == {"placeholder": 1}


@pytest.mark.parametrize("row, message", [
    ("1,http://x/a.jpg,1", "anger_1.csv line 2: expected 4 fields"),
    ("1,http://x/a.jpg,one,4", "anger_1.csv line 2: votes must be whole numbers"),
])
def test_fi_bad_rows_name_file_and_line(tmp_path, row, message):
    write_votes(tmp_path / "votes", "anger_1.csv", ["0,http://x/ok.jpg,0,5", row])
    with pytest.raises(DataImportError, match=message):
        import_fi(tmp_path / "votes", tmp_path / "images")


def test_fi_unknown_emotion_file(tmp_path):
    write_votes(tmp_path / "votes", "angry_1.csv", ["0,http://x/ok.jpg,0,5"])
    with pytest.raises(DataImportError, match="angry_1.csv: file name does not start with an emotion"):
        import_fi(tmp_path / "votes", tmp_path / "images")


def test_folder_import_case_insensitive_and_skips(tmp_path):
    save_noise_image(tmp_path / "root" / "Anger" / "x.jpg")
    save_noise_image(tmp_path / "root" / "AWE" / "y.png", fmt="PNG")
    (tmp_path / "root" / "AWE" / "notes.txt").write_text("hi")
    manifest, report, _ = import_folder(tmp_path / "root")
    assert sorted(manifest["label"]) == ["anger", "awe"]
    assert manifest["agree"].isna().all()
    assert report.to_dict()["per_class"]["awe"]["skipped"] == {"unreadable": 1}


def test_folder_import_errors(tmp_path):
    (tmp_path / "empty" / "anger").mkdir(parents=True)
    with pytest.raises(DataImportError, match="no images"):
        import_folder(tmp_path / "empty")
    save_noise_image(tmp_path / "bad" / "happy" / "x.jpg")
    with pytest.raises(DataImportError, match="happy: folder name is not an emotion"):
        import_folder(tmp_path / "bad")


def test_manifest_import(tmp_path):
    save_noise_image(tmp_path / "img" / "a.jpg")
    save_noise_image(tmp_path / "img" / "b.jpg", seed=1)
    (tmp_path / "m.csv").write_text("path,label,agree,disagree,photographer\nimg/a.jpg,Anger,3,2,ann\nimg/b.jpg,awe,,,bob\n")
    manifest, _, _ = import_manifest(tmp_path / "m.csv")
    assert list(manifest["label"]) == ["anger", "awe"]
    assert manifest["agree"].tolist()[0] == 3 and pd.isna(manifest["agree"].tolist()[1])
    assert list(manifest["photographer"]) == ["ann", "bob"]


@pytest.mark.parametrize("content, message", [
    ("file,label\na.jpg,anger\n", "m.csv: missing column 'path'"),
    ("path,label\na.jpg,anger\nb.jpg,angry\n", r"m.csv line 3: unknown emotion 'angry'"),
    ("path,label,agree\na.jpg,anger,-1\n", "m.csv line 2: agree '-1'"),
])
def test_manifest_errors(tmp_path, content, message):
    (tmp_path / "m.csv").write_text(content)
    with pytest.raises(DataImportError, match=message):
        import_manifest(tmp_path / "m.csv")


def prepare_args(**kwargs):
    base = dict(split="90/5/5", seed=0, workers=2, keep_split=False)
    return Namespace(**{**base, **kwargs})


def test_prepare_writes_manifest_and_report(fi_tree, tmp_path, capsys):
    votes, images = fi_tree
    out = tmp_path / "dataset"
    prepare.main(prepare_args(source="fi", votes=str(votes), images=str(images), out=str(out)))
    assert pd.read_parquet(out / "manifest.parquet")["found_in"].tolist() == ["own_emotion_folder"] * 3
    report = json.loads((out / "import_report.json").read_text())
    assert report["kept_total"] == 3 and report["ambiguous_count"] == 1
    assert report["found_in"] == {"own_emotion_folder": 3, "other_emotion_folder": 0, "flat_folder": 0}
    assert "images found in: own emotion folder 3, other emotion folder 0, flat folder 0" in capsys.readouterr().out
    assert not [p for p in out.iterdir() if p.name.endswith(".tmp")]


def test_prepare_bad_input_leaves_nothing(tmp_path, capsys):
    (tmp_path / "m.csv").write_text("file,label\na.jpg,anger\n")
    out = tmp_path / "never"
    with pytest.raises(SystemExit) as exit_info:
        prepare.run_main(prepare.main, prepare_args(source="manifest", csv=str(tmp_path / "m.csv"), out=str(out),
                                                    path_column="path", label_column="label"))
    assert exit_info.value.code == 2
    assert capsys.readouterr().err.strip() == "error: m.csv: missing column 'path'; columns are file, label"
    assert not out.exists()


# ---- issue 8.5: FI data as people have it --------------------------------------------------

def test_fi_finds_images_in_any_of_its_emotion_folders_in_any_case_and_flat(tmp_path):
    votes, images = tmp_path / "votes", tmp_path / "images"
    write_votes(votes, "anger_1.csv", ["1,http://x/own.jpg,0,5", "2,http://x/other.jpg,0,5",
                                       "3,http://x/flat.jpg,0,5", "4,http://x/gone.jpg,0,5"])
    write_votes(votes, "sadness_1.csv", ["5,http://x/other.jpg,3,2"])  # a minority vote still names a folder
    save_noise_image(images / "ANGER" / "own.jpg", seed=1)
    save_noise_image(images / "Sadness" / "other.jpg", seed=2)
    save_noise_image(images / "flat.jpg", seed=3)
    manifest, report, _ = import_fi(votes, images)
    found = dict(zip(manifest["image_id"], manifest["found_in"]))
    assert found == {"own": "own_emotion_folder", "other": "other_emotion_folder", "flat": "flat_folder"}
    assert set(manifest["label"]) == {"anger"}
    assert manifest.set_index("image_id").loc["other", "path"] == str(images / "Sadness" / "other.jpg")
    summary = report.to_dict()
    assert summary["found_in"] == {"own_emotion_folder": 1, "other_emotion_folder": 1, "flat_folder": 1}
    assert summary["per_class"]["anger"]["skipped"] == {"missing": 1}


def test_fi_images_folder_not_found(tmp_path):
    write_votes(tmp_path / "votes", "anger_1.csv", ["0,http://x/ok.jpg,0,5"])
    with pytest.raises(DataImportError, match="images: image folder not found"):
        import_fi(tmp_path / "votes", tmp_path / "images")


@pytest.mark.parametrize("rows", [["1,http://x/a.jpg,3,2", "2,http://x/b.jpg,2,2"],   # minority, tie
                                  ["1,http://x/a.jpg,5,0"]])
def test_prepare_says_in_one_line_when_no_vote_is_a_majority(tmp_path, capsys, rows):
    write_votes(tmp_path / "votes", "anger_1.csv", rows)
    (tmp_path / "images").mkdir()
    out = tmp_path / "never"
    with pytest.raises(SystemExit) as exit_info:
        prepare.run_main(prepare.main, prepare_args(source="fi", votes=str(tmp_path / "votes"),
                                                    images=str(tmp_path / "images"), out=str(out)))
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "no image has a majority-positive label" in err
    assert f"{len(rows)} minority or tied" in err
    assert not out.exists()


def test_fi_same_image_listed_twice_is_merged_and_named(tmp_path):
    votes, images = tmp_path / "votes", tmp_path / "images"
    write_votes(votes, "anger_1.csv", ["1,http://farm.example/a.jpg,1,4", "2,http://farm.example/m.jpg,3,2"])
    # the same rows again: another scheme, host case, a second file (a re-download's vote file)
    write_votes(votes, "anger_2.csv", ["", "1,HTTPS://Farm.Example/a.jpg,1,4", "2,http://farm.example/m.jpg,3,2"])
    save_noise_image(images / "anger" / "a.jpg")
    manifest, report, _ = import_fi(votes, images)
    assert list(manifest["image_id"]) == ["a"]
    summary = report.to_dict()
    assert summary["rows_read"] == 4 and summary["minority_votes"] == 1 and summary["duplicates_resolved"] == 0
    assert summary["duplicate_rows_merged"] == [
        {"url": "http://farm.example/a.jpg", "label": "anger", "kept": "anger_1.csv line 1",
         "merged": "anger_2.csv line 2"},
        {"url": "http://farm.example/m.jpg", "label": "anger", "kept": "anger_1.csv line 2",
         "merged": "anger_2.csv line 3"}]


def test_fi_same_image_and_emotion_with_other_votes_is_refused(tmp_path):
    write_votes(tmp_path / "votes", "anger_1.csv", ["1,http://x/a.jpg,1,4", "2,https://X/a.jpg,0,5"])
    (tmp_path / "images").mkdir()
    with pytest.raises(DataImportError, match=r"anger_1.csv line 2: https://X/a.jpg is listed for anger "
                                              r"again with other votes \(0,5\) than on anger_1.csv line 1 \(1,4\)"):
        import_fi(tmp_path / "votes", tmp_path / "images")


def test_fi_scheme_and_host_case_variants_across_emotions_are_one_image(tmp_path):
    votes, images = tmp_path / "votes", tmp_path / "images"
    write_votes(votes, "anger_1.csv", ["1,http://farm.example/a.jpg,1,4"])
    write_votes(votes, "fear_1.csv", ["1,https://FARM.example/a.jpg,0,5"])
    save_noise_image(images / "anger" / "a.jpg")
    manifest, report, _ = import_fi(votes, images)
    assert list(zip(manifest["image_id"], manifest["label"])) == [("a", "fear")]
    assert manifest["found_in"].tolist() == ["other_emotion_folder"]
    assert report.duplicates_resolved == 1


def test_fi_least_divisive_is_highest_agree_share_then_most_agree_votes(tmp_path):
    votes, images = tmp_path / "votes", tmp_path / "images"
    # share/margin: anger 3/0 (share 1.0, margin 3) beats sadness 9/2 (share .82, margin 7)
    # share tie: awe 8/2 (share .8) beats fear 4/1 (share .8): more agree votes
    write_votes(votes, "anger_1.csv", ["1,http://x/s.jpg,0,3"])
    write_votes(votes, "sadness_1.csv", ["1,http://x/s.jpg,2,9"])
    write_votes(votes, "awe_1.csv", ["1,http://x/t.jpg,2,8"])
    write_votes(votes, "fear_1.csv", ["1,http://x/t.jpg,1,4"])
    save_noise_image(images / "anger" / "s.jpg")
    save_noise_image(images / "awe" / "t.jpg", seed=1)
    manifest, report, _ = import_fi(votes, images)
    assert dict(zip(manifest["image_id"], manifest["label"])) == {"s": "anger", "t": "awe"}
    assert report.duplicates_resolved == 2 and report.ambiguous == []


def test_manifest_strips_header_names_and_paths(tmp_path):
    save_noise_image(tmp_path / "img" / "a.jpg")
    (tmp_path / "m.csv").write_text(" path , label ,agree\n img/a.jpg , anger , 3 \n")
    manifest, _, _ = import_manifest(tmp_path / "m.csv")
    assert manifest["path"].tolist() == [str(tmp_path / "img" / "a.jpg")]
    assert manifest["label"].tolist() == ["anger"] and manifest["agree"].tolist() == [3]


@pytest.mark.parametrize("content, message", [
    ("path,label,image_id\nimg/a.jpg,anger,x\nimg/b.jpg,awe,y\n./img/a.jpg,fear,z\n",
     r"m.csv line 4: path './img/a.jpg' is also on line 2"),
    ("path,label\n\nimg/a.jpg,anger\n\nimg/b.jpg,angry\n", r"m.csv line 5: unknown emotion 'angry'"),
    ("path,label,split\n\n\nimg/a.jpg,anger,train\nimg/b.jpg,awe,later\n", "m.csv line 5: split 'later'"),
    ("path,label,agree\n\nimg/a.jpg,anger,1\n\n\nimg/b.jpg,awe,x\n", "m.csv line 6: agree 'x'"),
    ("path,label,image_id\n\nimg/a.jpg,anger,x\n\nimg/b.jpg,awe,x\n", "m.csv line 5: image_id 'x' is also on line 3"),
    ("path,label\nimg/a.jpg,anger,extra\n", "m.csv line 2: 3 fields, the header has 2"),
])
def test_manifest_refuses_duplicates_and_names_the_right_line(tmp_path, content, message):
    save_noise_image(tmp_path / "img" / "a.jpg")
    save_noise_image(tmp_path / "img" / "b.jpg", seed=1)
    (tmp_path / "m.csv").write_text(content)
    with pytest.raises(DataImportError, match=message):
        import_manifest(tmp_path / "m.csv")
