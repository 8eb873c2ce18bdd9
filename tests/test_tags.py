import multiprocessing
import os
import sqlite3
import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timezone

import pytest
import sqlalchemy as sa

from emotion_core.tags import (
    PAPER_TAGS,
    SCHEMA_VERSION,
    TagStore,
    TagStoreError,
    images_with_all,
    metadata,
    rejections,
    suggestions,
    tags,
    vocabulary,
)

TEST_DB_URL = "EMOLENS_TEST_DB_URL"


@pytest.fixture(params=["sqlite", "test_db_url"])
def db_url(request, tmp_path) -> str:
    """Every tag-store test runs on a SQLite file and on the database in EMOLENS_TEST_DB_URL
    (emptied first), e.g. postgresql+psycopg://postgres@127.0.0.1:5432/emolens; .ci/run starts
    a throwaway PostgreSQL and sets it."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'tags.sqlite'}"
    url = os.environ.get(TEST_DB_URL)
    if not url:
        pytest.skip(f"no server database: set {TEST_DB_URL}=postgresql+psycopg://... to run the tag-store "
                    "tests on PostgreSQL too (.ci/run starts one and sets it)")
    engine = sa.create_engine(url)
    metadata.drop_all(engine)
    engine.dispose()
    return url


@pytest.fixture
def open_store():
    """TagStore(url), closed after the test (a server has a connection limit)."""
    opened = []

    def opener(url: str) -> TagStore:
        opened.append(TagStore(url))
        return opened[-1]
    yield opener
    for store in opened:
        store.engine.dispose()


@pytest.fixture
def store(db_url, open_store) -> TagStore:
    return open_store(db_url)


def rows_of(store: TagStore, dataset: str = "fi") -> list[tuple]:
    table = store.tags_of(dataset)
    return sorted(map(tuple, table[["image_id", "tag", "author", "created_at", "source"]].values.tolist()))


def count(url: str, sql: str) -> int:
    engine = sa.create_engine(url)
    try:
        with engine.connect() as connection:
            return connection.exec_driver_sql(sql).scalar()
    finally:
        engine.dispose()


def test_vocabulary_starts_with_the_papers_trends(store):
    assert store.vocabulary()[:len(PAPER_TAGS)] == list(PAPER_TAGS)
    store.add_to_vocabulary("  Drugs  ", "ann")
    assert "drugs" in store.vocabulary()


def test_add_remove_undo_and_survive_restart(store, open_store):
    assert store.add("fi", ["a", "b"], "monochrome", "ann") == 2
    assert store.add("fi", ["b", "c"], "monochrome", "ann") == 1   # b already tagged
    assert store.add("fi", ["a"], "graveyard", "bob") == 1
    assert store.remove("fi", ["a", "z"], "monochrome", "ann") == 1
    reopened = open_store(store.url)
    table = reopened.tags_of("fi")
    assert sorted(zip(table["image_id"], table["tag"])) == [("a", "graveyard"), ("b", "monochrome"), ("c", "monochrome")]
    assert set(table.loc[table["tag"] == "graveyard", "author"]) == {"bob"}
    assert reopened.undo("ann", "fi") == "undid: removed 'monochrome' on 1 image"
    assert reopened.undo("ann", "fi") == "undid: added 'monochrome' on 1 image"  # c
    table = reopened.tags_of("fi")
    assert sorted(table.loc[table["tag"] == "monochrome", "image_id"]) == ["a", "b"]
    assert reopened.tags_of("other").empty  # tags belong to a dataset


def test_undoing_a_removal_puts_back_the_rows_as_they_were(store):
    store.add("fi", ["a", "b"], "graveyard", "bob", source="suggestion")
    before = rows_of(store)
    assert store.remove("fi", ["a", "b"], "graveyard", "ann") == 2
    assert store.undo("ann", "fi") == "undid: removed 'graveyard' on 2 images"
    assert rows_of(store) == before  # bob's rows, bob's time, "suggestion"
    assert store.undo("bob", "fi") == "undid: added 'graveyard' on 2 images"  # still bob's add
    assert rows_of(store) == []


def test_undoing_an_add_removes_only_what_it_inserted(store):
    store.add("fi", ["a"], "monochrome", "ann")
    assert store.add("fi", ["a", "b", "c"], "monochrome", "ann") == 2
    store.remove("fi", ["b"], "monochrome", "bob")
    store.add("fi", ["b"], "monochrome", "carl")  # b re-added by someone else in between
    assert store.undo("ann", "fi") == "undid: added 'monochrome' on 1 image"  # c only
    assert [(r[0], r[2]) for r in rows_of(store)] == [("a", "ann"), ("b", "carl")]


def test_undo_is_per_author_and_dataset_and_names_match_however_spaced(store):
    store.add("fi", ["a"], "monochrome", "Ann  Lee")
    store.add("emoset", ["a"], "graveyard", "ann lee ")
    store.add("fi", ["b"], "graveyard", "Bob")
    assert set(store.tags_of("fi")["author"]) == {"Ann Lee", "Bob"}
    assert store.undo("Ann  Lee", "fi") == "undid: added 'monochrome' on 1 image"
    assert store.undo(" Ann Lee", "fi") is None  # her emoset action is not reached from fi
    assert store.undo("ann lee", "emoset") == "undid: added 'graveyard' on 1 image"
    assert [r[:2] for r in rows_of(store)] == [("b", "graveyard")]
    with pytest.raises(ValueError, match="set your name"):
        store.undo("  ", "fi")


def test_undoing_an_add_restores_the_rejections_it_cleared(store):
    store.reject("fi", "a", "monochrome", "bob")
    store.reject("fi", "b", "graveyard", "bob")
    store.add("fi", ["a", "b"], "monochrome", "ann")
    assert store.rejected("fi") == {("b", "graveyard")}
    store.undo("ann", "fi")
    assert store.rejected("fi") == {("a", "monochrome"), ("b", "graveyard")}


def test_reads_never_wait_for_a_writer(store):
    store.add("fi", ["a"], "monochrome", "ann")
    before = (rows_of(store), store.vocabulary(), store.rejected("fi"))
    writer = sa.create_engine(store.url)
    try:
        with writer.begin() as connection, ThreadPoolExecutor(1) as reader:
            # An open write transaction (it holds SQLite's write lock) that the reads must not wait for.
            row = {"dataset": "fi", "image_id": "b", "author": "bob", "created_at": datetime.now(timezone.utc)}
            connection.execute(tags.insert().values(tag="monochrome", source="manual", **row))
            connection.execute(rejections.insert().values(tag="graveyard", **row))
            connection.execute(vocabulary.insert().values(name="drugs", builtin=False, created_by="bob",
                                                          created_at=row["created_at"]))
            reads = reader.submit(lambda: (rows_of(store), store.vocabulary(), store.rejected("fi")))
            # A liveness bound, not a speed check: a blocked read waits out SQLite's 30 s busy timeout.
            assert reads.result(timeout=20) == before  # and sees nothing uncommitted
    finally:
        writer.dispose()
    assert len(rows_of(store)) == 2


def test_schema_version_holds_one_row_even_when_first_opened_at_once(db_url, open_store):
    start = threading.Barrier(6)

    def first_open(_):
        start.wait()
        return open_store(db_url).schema_version()
    with ThreadPoolExecutor(6) as pool:
        assert list(pool.map(first_open, range(6))) == [SCHEMA_VERSION] * 6
    assert count(db_url, "SELECT COUNT(*) FROM schema_version") == 1
    engine = sa.create_engine(db_url)
    try:
        with pytest.raises(sa.exc.IntegrityError), engine.begin() as connection:
            connection.exec_driver_sql("INSERT INTO schema_version (version) VALUES (1)")
    finally:
        engine.dispose()


def test_the_same_tag_added_by_several_at_once_is_recorded_once(db_url, open_store):
    authors, ids = ["ann", "bob", "carl", "dora"], [f"img{i}" for i in range(30)]
    stores = [open_store(db_url) for _ in authors]
    for round_ in range(12):  # tags picked from the vocabulary: nothing else makes the adders queue
        stores[0].add_to_vocabulary(f"trend {round_}", "ann")
    start = threading.Barrier(len(authors))

    def tag_rounds(who: int) -> int:
        added = 0
        for round_ in range(12):
            start.wait()
            added += stores[who].add("fi", ids, f"trend {round_}", authors[who])
        return added
    with ThreadPoolExecutor(len(authors)) as pool:
        added = sum(pool.map(tag_rounds, range(len(authors))))
    assert added == 12 * len(ids) == len(rows_of(stores[0]))
    assert count(db_url, "SELECT COUNT(*) FROM tag_action_items") == 12 * len(ids)
    for who, author in enumerate(authors):  # each undoes exactly their share
        while stores[who].undo(author, "fi"):
            pass
    assert rows_of(stores[0]) == []


def test_writers_taking_the_same_images_in_opposite_orders_do_not_deadlock(db_url, open_store):
    # Two people "select all" in differently sorted galleries and tag (then untag) the same cell.
    ids = [f"img{i:04d}" for i in range(3000)]
    ann, bob = open_store(db_url), open_store(db_url)
    ann.add_to_vocabulary("trend", "ann")  # a known tag: the vocabulary row makes nobody queue
    start = threading.Barrier(2, timeout=120)  # a writer that died of a deadlock breaks it: no hang

    def tag(store, author, order):
        start.wait()
        added = store.add("fi", order, "trend", author)
        start.wait()
        return added, store.remove("fi", order, "trend", author)
    for _ in range(5):  # a deadlock needs the two to overlap: give them several chances
        with ThreadPoolExecutor(2) as pool:
            results = list(pool.map(tag, [ann, bob], ["ann", "bob"], [ids, ids[::-1]]))
        assert sum(added for added, _ in results) == len(ids)
        assert sum(removed for _, removed in results) == len(ids)
        assert rows_of(ann) == []


def test_thousands_of_images_at_once(store):
    if store.engine.dialect.name == "sqlite":  # the limit of SQLite's own build (Debian's allows 250,000)
        sa.event.listen(store.engine, "connect", lambda connection, _: connection.setlimit(
            sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER, 32766))
        store.engine.dispose()
    ids = [f"img{i:05d}" for i in range(40_000)]
    store.reject("fi", ids[-1], "monochrome", "bob")
    assert store.add("fi", ids, "monochrome", "ann") == 40_000
    assert store.rejected("fi") == set()
    assert store.remove("fi", ids[::2], "monochrome", "ann") == 20_000
    assert store.undo("ann", "fi") == "undid: removed 'monochrome' on 20000 images"
    assert len(store.tags_of("fi")) == 40_000
    assert store.undo("ann", "fi") == "undid: added 'monochrome' on 40000 images"
    assert store.tags_of("fi").empty and store.rejected("fi") == {(ids[-1], "monochrome")}


def test_databases_without_returning_give_the_same_results(store, monkeypatch):
    for feature in ("insert_executemany_returning", "delete_returning"):  # as on MySQL
        monkeypatch.setattr(store.engine.dialect, feature, False)
    store.reject("fi", "c", "monochrome", "bob")
    store.add("fi", ["a"], "monochrome", "bob", source="suggestion")
    assert store.add("fi", ["a", "b", "c"], "monochrome", "ann") == 2
    before = rows_of(store)
    assert store.remove("fi", ["a", "b", "z"], "monochrome", "carl") == 2
    assert store.undo("carl", "fi") == "undid: removed 'monochrome' on 2 images"
    assert rows_of(store) == before
    assert store.undo("ann", "fi") == "undid: added 'monochrome' on 2 images"
    assert [r[:3] for r in rows_of(store)] == [("a", "monochrome", "bob")]
    assert store.rejected("fi") == {("c", "monochrome")}


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


def test_sqlite_runs_in_wal_mode(tmp_path):
    store = TagStore(f"sqlite:///{tmp_path / 'tags.sqlite'}")
    with store.engine.connect() as connection:
        assert connection.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"


def test_an_older_database_is_migrated(tmp_path):
    path = tmp_path / "old.sqlite"
    with sqlite3.connect(path) as db:  # the version-1 layout, as EmoLens 1 wrote it (two first opens at once)
        db.executescript("""
            CREATE TABLE schema_version (version INTEGER NOT NULL);
            INSERT INTO schema_version VALUES (1);
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
            INSERT INTO tags VALUES ('fi', 'img2', 'graveyard', 'ann', '2026-01-01 00:00:00');
            INSERT INTO tag_actions VALUES (1, 'ann', 'add', '2026-01-01 00:00:00', 0);
            INSERT INTO tag_action_items VALUES (1, 'fi', 'img2', 'graveyard');
        """)
    store = TagStore(f"sqlite:///{path}")
    assert store.schema_version() == SCHEMA_VERSION
    table = store.tags_of("fi")
    assert table[["image_id", "tag", "author", "source"]].values.tolist()[0] == ["img1", "graveyard", "ann", "manual"]
    store.reject("fi", "img1", "monochrome", "ann")
    assert store.rejected("fi") == {("img1", "monochrome")}
    assert store.undo("ann", "fi") == "undid: added 'graveyard' on 1 image"  # the action recorded before
    assert store.tags_of("fi")["image_id"].tolist() == ["img1"]
    assert count(store.url, "SELECT COUNT(*) FROM schema_version") == 1


def version_2_layout(url: str) -> None:
    """A version-2 database as EmoLens 2 made it (two first opens at once: two version rows)."""
    old, when = sa.MetaData(), datetime(2026, 1, 1, tzinfo=timezone.utc)
    text, stamp = sa.String(400), sa.DateTime(timezone=True)
    sa.Table("schema_version", old, sa.Column("version", sa.Integer))
    sa.Table("tag_vocabulary", old, sa.Column("name", text, primary_key=True), sa.Column("builtin", sa.Boolean),
             sa.Column("created_by", text), sa.Column("created_at", stamp))
    sa.Table("tags", old, *[sa.Column(n, text, primary_key=True) for n in ("dataset", "image_id", "tag")],
             sa.Column("author", text), sa.Column("created_at", stamp), sa.Column("source", text))
    sa.Table("tag_actions", old, sa.Column("id", sa.Integer, primary_key=True), sa.Column("author", text),
             sa.Column("kind", text), sa.Column("created_at", stamp), sa.Column("undone", sa.Boolean))
    sa.Table("tag_action_items", old, *[sa.Column(n, text) for n in ("dataset", "image_id", "tag", "source")],
             sa.Column("action_id", sa.Integer, sa.ForeignKey("tag_actions.id")))
    sa.Table("tag_rejections", old, *[sa.Column(n, text, primary_key=True) for n in ("dataset", "image_id", "tag")],
             sa.Column("author", text), sa.Column("created_at", stamp))
    engine = sa.create_engine(url)
    with engine.begin() as connection:
        old.create_all(connection)
        def insert(table: str, *rows: dict) -> None:
            connection.execute(old.tables[table].insert(), list(rows))
        insert("schema_version", {"version": 2}, {"version": 2})
        insert("tags", *[{"dataset": "fi", "image_id": i, "tag": "graveyard", "author": "ann", "created_at": when,
                          "source": "manual"} for i in ("a", "b", "old")])
        insert("tag_actions", {"id": 1, "author": "ann", "kind": "add", "created_at": when, "undone": False},
               {"id": 2, "author": "bob", "kind": "remove", "created_at": when, "undone": False})
        insert("tag_action_items", *[{"action_id": 1, "dataset": "fi", "image_id": i, "tag": "graveyard",
                                      "source": "manual"} for i in ("a", "b")],
               {"action_id": 2, "dataset": "fi", "image_id": "c", "tag": "monochrome", "source": "suggestion"})
    engine.dispose()


def test_a_version_2_database_is_migrated_and_its_actions_undo(db_url, open_store):
    version_2_layout(db_url)
    store = open_store(db_url)
    assert store.schema_version() == SCHEMA_VERSION
    assert count(db_url, "SELECT COUNT(*) FROM schema_version") == 1
    assert store.undo("bob", "fi") == "undid: removed 'monochrome' on 1 image"
    assert store.undo("ann", "fi") == "undid: added 'graveyard' on 2 images"
    assert [r[:3] + r[4:] for r in rows_of(store)] == [("c", "monochrome", "bob", "suggestion"),
                                                       ("old", "graveyard", "ann", "manual")]


def _tag_many(url: str, author: str, count: int) -> None:
    store = TagStore(url)
    for i in range(count):
        store.add("fi", [f"{author}-{i}", "shared"], "monochrome" if i % 2 else "graveyard", author)


def test_two_processes_tagging_at_once_lose_nothing(db_url, open_store):
    url = db_url
    open_store(url)
    context = multiprocessing.get_context("spawn")
    workers = [context.Process(target=_tag_many, args=(url, name, 120)) for name in ("ann", "bob")]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=600)  # a hang check: it takes about 2 s, far longer on a loaded machine
        assert worker.exitcode == 0, f"{worker.name} exit code {worker.exitcode} (None: still running)"
    table = open_store(url).tags_of("fi")
    assert len(table[table["image_id"] != "shared"]) == 240
    assert set(table.loc[table["image_id"] == "shared", "tag"]) == {"monochrome", "graveyard"}
    assert count(url, "SELECT COUNT(*) FROM tag_action_items") == 242


def test_tag_filters_and_suggestions():
    import pandas as pd
    table = pd.DataFrame({"image_id": ["a", "a", "b"], "tag": ["monochrome", "graveyard", "monochrome"]})
    assert images_with_all(table, ["monochrome"]) == {"a", "b"}
    assert images_with_all(table, ["monochrome", "graveyard"]) == {"a"}
    row = pd.Series({"monochrome": True, "warm": True, "has_face": False, "has_cat_face": False})
    assert suggestions(row, ["monochrome"], {"red/warm tones"}) == []
    assert suggestions(row, [], set()) == ["monochrome", "red/warm tones"]
