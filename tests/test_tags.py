import multiprocessing
import os
import sqlite3

import pytest
import sqlalchemy as sa

from emotion_core.tags import (
    PAPER_TAGS,
    SCHEMA_VERSION,
    TagStore,
    TagStoreError,
    images_with_all,
    metadata,
    suggestions,
)


@pytest.fixture
def db_url(tmp_path) -> str:
    """A SQLite file, or the database in EMOLENS_TEST_DB_URL (emptied first), e.g.
    postgresql+psycopg://postgres@127.0.0.1:5432/emolens to run these tests on PostgreSQL."""
    url = os.environ.get("EMOLENS_TEST_DB_URL")
    if not url:
        return f"sqlite:///{tmp_path / 'tags.sqlite'}"
    engine = sa.create_engine(url)
    metadata.drop_all(engine)
    engine.dispose()
    return url


@pytest.fixture
def store(db_url) -> TagStore:
    return TagStore(db_url)


def test_vocabulary_starts_with_the_papers_trends(store):
    assert store.vocabulary()[:len(PAPER_TAGS)] == list(PAPER_TAGS)
    store.add_to_vocabulary("  Drugs  ", "ann")
    assert "drugs" in store.vocabulary()


def test_add_remove_undo_and_survive_restart(store, tmp_path):
    assert store.add("fi", ["a", "b"], "monochrome", "ann") == 2
    assert store.add("fi", ["b", "c"], "monochrome", "ann") == 1   # b already tagged
    assert store.add("fi", ["a"], "graveyard", "bob") == 1
    assert store.remove("fi", ["a", "z"], "monochrome", "ann") == 1
    reopened = TagStore(store.url)
    table = reopened.tags_of("fi")
    assert sorted(zip(table["image_id"], table["tag"])) == [("a", "graveyard"), ("b", "monochrome"), ("c", "monochrome")]
    assert set(table.loc[table["tag"] == "graveyard", "author"]) == {"bob"}
    assert reopened.undo("ann") == "undid: removed 'monochrome' on 1 image"
    assert reopened.undo("ann") == "undid: added 'monochrome' on 1 image"  # c
    table = reopened.tags_of("fi")
    assert sorted(table.loc[table["tag"] == "monochrome", "image_id"]) == ["a", "b"]
    assert reopened.tags_of("other").empty  # tags belong to a dataset


@pytest.mark.parametrize("name, message", [("   ", "cannot be empty"), ("x" * 41, "at most 40")])
def test_bad_tag_names(store, name, message):
    with pytest.raises(ValueError, match=message):
        store.add("fi", ["a"], name, "ann")


def test_author_required(store):
    with pytest.raises(ValueError, match="set your name"):
        store.add("fi", ["a"], "monochrome", "  ")


def test_unreachable_database_is_one_clear_error(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    with pytest.raises(TagStoreError, match="cannot open the tag database"):
        TagStore(f"sqlite:///{blocker / 'tags.sqlite'}")


def test_sqlite_runs_in_wal_mode(store):
    if store.engine.dialect.name != "sqlite":
        pytest.skip("SQLite only")
    with store.engine.connect() as connection:
        assert connection.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"


def test_an_older_database_is_migrated(tmp_path):
    path = tmp_path / "old.sqlite"
    with sqlite3.connect(path) as db:  # the version-1 layout, as EmoLens 1 wrote it
        db.executescript("""
            CREATE TABLE schema_version (version INTEGER NOT NULL);
            INSERT INTO schema_version VALUES (1);
            CREATE TABLE tag_vocabulary (name VARCHAR(40) PRIMARY KEY, builtin BOOLEAN NOT NULL,
                created_by VARCHAR(100) NOT NULL, created_at DATETIME NOT NULL);
            CREATE TABLE tags (dataset VARCHAR(200), image_id VARCHAR(400), tag VARCHAR(40),
                author VARCHAR(100) NOT NULL, created_at DATETIME NOT NULL, PRIMARY KEY (dataset, image_id, tag));
            CREATE TABLE tag_actions (id INTEGER PRIMARY KEY AUTOINCREMENT, author VARCHAR(100) NOT NULL,
                kind VARCHAR(10) NOT NULL, created_at DATETIME NOT NULL, undone BOOLEAN NOT NULL);
            CREATE TABLE tag_action_items (action_id INTEGER NOT NULL REFERENCES tag_actions(id),
                dataset VARCHAR(200) NOT NULL, image_id VARCHAR(400) NOT NULL, tag VARCHAR(40) NOT NULL);
            INSERT INTO tag_vocabulary VALUES ('graveyard', 1, 'emolens', '2026-01-01 00:00:00');
            INSERT INTO tags VALUES ('fi', 'img1', 'graveyard', 'ann', '2026-01-01 00:00:00');
        """)
    store = TagStore(f"sqlite:///{path}")
    assert store.schema_version() == SCHEMA_VERSION
    table = store.tags_of("fi")
    assert table[["image_id", "tag", "author", "source"]].values.tolist() == [["img1", "graveyard", "ann", "manual"]]
    store.reject("fi", "img1", "monochrome", "ann")
    assert store.rejected("fi") == {("img1", "monochrome")}


def _tag_many(url: str, author: str, count: int) -> None:
    store = TagStore(url)
    for i in range(count):
        store.add("fi", [f"{author}-{i}", "shared"], "monochrome" if i % 2 else "graveyard", author)


def test_two_processes_tagging_at_once_lose_nothing(db_url):
    url = db_url
    TagStore(url)
    context = multiprocessing.get_context("spawn")
    workers = [context.Process(target=_tag_many, args=(url, name, 120)) for name in ("ann", "bob")]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=120)
        assert worker.exitcode == 0
    table = TagStore(url).tags_of("fi")
    assert len(table[table["image_id"] != "shared"]) == 240
    assert set(table.loc[table["image_id"] == "shared", "tag"]) == {"monochrome", "graveyard"}
    with sa.create_engine(url).connect() as connection:
        assert connection.exec_driver_sql("SELECT COUNT(*) FROM tag_action_items").scalar() == 242


def test_tag_filters_and_suggestions():
    import pandas as pd
    table = pd.DataFrame({"image_id": ["a", "a", "b"], "tag": ["monochrome", "graveyard", "monochrome"]})
    assert images_with_all(table, ["monochrome"]) == {"a", "b"}
    assert images_with_all(table, ["monochrome", "graveyard"]) == {"a"}
    row = pd.Series({"monochrome": True, "warm": True, "has_face": False, "has_cat_face": False})
    assert suggestions(row, ["monochrome"], {"red/warm tones"}) == []
    assert suggestions(row, [], set()) == ["monochrome", "red/warm tones"]
