"""The nearest-neighbours section of the inspector and the live page (AppTest, on the real demo run, which is
evaluated on train, dev and test so that its neighbours include training images)."""
import io
import shutil

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from tests.conftest import open_page


def demo_tables(home):
    run = home / "runs" / "demo"
    return pd.read_parquet(run / "predictions.parquet"), np.load(run / "embeddings.npy")


def brute_force_similarity(predictions: pd.DataFrame, embeddings: np.ndarray, query: np.ndarray) -> pd.Series:
    """Cosine similarity to every image, written out in float64 here (not the code under test), by image id."""
    data = embeddings.astype(np.float64)
    similarity = data @ query / (np.linalg.norm(data, axis=1) * np.linalg.norm(query))
    return pd.Series(similarity, index=predictions.set_index("cam_index").sort_index()["image_id"].to_numpy())


def assert_top_k(shown: list[str], similarity: pd.Series, allowed: set[str], k: int) -> None:
    """shown is a k-nearest list of the allowed images, most similar first (ties, to float32 precision, aside)."""
    candidates = similarity[similarity.index.isin(allowed)].sort_values(ascending=False)
    assert len(shown) == min(k, len(candidates)) and set(shown) <= allowed
    got = similarity[shown].to_numpy()
    np.testing.assert_allclose(got, candidates.to_numpy()[:len(shown)], atol=1e-5)  # as high as the best k


def neighbour_cards(at) -> list[str]:
    """The neighbours' image ids in reading order. Card n sits in column n % 5, so the page's element tree
    lists the cards column by column."""
    by_column = [m.value.split("**")[1] for m in at.markdown if "· similarity " in m.value]
    sizes = [len(range(column, len(by_column), 5)) for column in range(5)]
    starts = [sum(sizes[:column]) for column in range(5)]
    return [by_column[starts[n % 5] + n // 5] for n in range(len(by_column))]


def test_the_inspector_shows_the_nearest_training_images_of_an_error(demo_env):
    predictions, embeddings = demo_tables(demo_env)
    assert set(predictions["split"]) == {"train", "dev", "test"}
    assert embeddings.shape[0] == len(predictions) and embeddings.dtype == np.float16
    at = open_page("pages/inspector.py")  # the largest confusion's first image: an error
    current = at.subheader[0].value.split(":")[0]
    row = predictions.set_index("image_id").loc[current]
    assert row["label"] != row["pred"]
    assert any(s.value == "Nearest neighbours" for s in at.subheader)
    assert at.radio(key="neighbours_among").value == "train"
    similarity = brute_force_similarity(predictions, embeddings, embeddings[row["cam_index"]].astype(np.float64))
    expected = neighbour_cards(at)
    assert_top_k(expected, similarity, set(predictions.loc[predictions["split"] == "train", "image_id"]), 10)
    top_label = predictions.set_index("image_id").loc[expected, "label"].value_counts()
    summary = next(m.value for m in at.markdown if "nearest training images" in m.value)
    assert f"{top_label.iloc[0]} of its 10 nearest training images" in summary
    links = [link.proto.query_string for link in at.page_link if link.value == "Inspect"]
    assert sorted(f"image={i}" for i in expected) == sorted(links[-10:])  # one link per card, to its image
    # a neighbour from the train split opens in the inspector while the sidebar shows test
    at.query_params["image"] = expected[0]
    at.switch_page("pages/inspector.py").run()
    assert not at.exception and not at.error
    assert at.subheader[0].value.startswith(f"{expected[0]}: ")
    assert any("a train image" in c.value for c in at.caption)


def test_neighbours_in_its_own_split_up_to_fifty(demo_env):
    predictions, embeddings = demo_tables(demo_env)
    at = open_page("pages/inspector.py")
    current = at.subheader[0].value.split(":")[0]
    own = predictions.set_index("image_id").loc[current, "split"]
    at.radio(key="neighbours_among").set_value("its own split").run()
    at.number_input(key="neighbours_k").set_value(50).run()
    assert not at.exception and not at.error
    row = predictions.set_index("image_id").loc[current]
    similarity = brute_force_similarity(predictions, embeddings, embeddings[row["cam_index"]].astype(np.float64))
    in_split = set(predictions.loc[predictions["split"] == own, "image_id"]) - {current}
    assert_top_k(neighbour_cards(at), similarity, in_split, 50)


def copy_of_demo_run(demo_env, tmp_path, monkeypatch):
    home = tmp_path / "workspace"
    shutil.copytree(demo_env / "runs" / "demo", home / "runs" / "demo", ignore=shutil.ignore_patterns("cache"))
    monkeypatch.setenv("EMOLENS_HOME", str(home))
    return home / "runs" / "demo"


def png(seed: int = 0) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(np.random.default_rng(seed).integers(0, 255, (64, 64, 3), dtype=np.uint8)).save(buffer, "PNG")
    return buffer.getvalue()


@pytest.mark.parametrize("page", ["pages/inspector.py", "pages/live.py"])
def test_a_run_evaluated_before_embeddings_says_the_one_command(demo_env, tmp_path, monkeypatch, page):
    run = copy_of_demo_run(demo_env, tmp_path, monkeypatch)
    (run / "embeddings.npy").unlink()
    at = open_page(page)
    if page == "pages/live.py":
        at.file_uploader[0].set_value(("photo.png", png(), "image/png")).run()
        assert not at.exception and not at.error
    message = [i.value for i in at.info if "no embeddings" in i.value]
    assert len(message) == 1 and "\n" not in message[0]
    assert f"python -m training.evaluate --run {run}" in message[0] and "--split train,dev,test" in message[0]
    assert not neighbour_cards(at)


def test_embeddings_of_another_evaluation_are_one_line_not_a_traceback(demo_env, tmp_path, monkeypatch):
    run = copy_of_demo_run(demo_env, tmp_path, monkeypatch)
    np.save(run / "embeddings.npy", np.load(run / "embeddings.npy")[:-3])
    from streamlit.testing.v1 import AppTest

    from tests.conftest import APP

    at = AppTest.from_file(APP, default_timeout=120).run()
    at.switch_page("pages/inspector.py").run()
    assert not at.exception
    assert [e.value for e in at.error] == [f"Cannot search this run's embeddings: embeddings.npy has "
                                           f"{len(demo_tables(demo_env)[0]) - 3} rows but predictions.parquet has "
                                           f"{len(demo_tables(demo_env)[0])}: they are from different evaluations; "
                                           f"evaluate the run again"]


def test_the_live_page_shows_the_neighbours_of_an_upload(demo_env):
    predictions, embeddings = demo_tables(demo_env)
    row = predictions[predictions["split"] == "test"].iloc[0]
    data = open(row["path"], "rb").read()  # an evaluated image, uploaded again: it is its own nearest
    at = open_page("pages/live.py")
    at.file_uploader[0].set_value(("again.png", data, "image/png")).run()
    assert not at.exception and not at.error
    at.radio(key="neighbours_among").set_value("all evaluated images").run()
    shown = neighbour_cards(at)
    assert len(shown) == 10 and shown[0] == row["image_id"]
    assert "similarity 1.00" in next(m.value for m in at.markdown if m.value.startswith(f"**{row['image_id']}**"))
