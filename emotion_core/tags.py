"""The tag store: tags on (dataset, image) with author and time, in any SQLAlchemy database.

Default: a SQLite file in the workspace (WAL mode, so readers and the one writer never wait
for each other); $EMOLENS_DB_URL points it at PostgreSQL or any SQLAlchemy URL for a team.
The schema is versioned and migrated forward on open, so a newer EmoLens opens an older database.
Every change is one recorded action that lists exactly the rows it changed, which is what
"undo" (per author and dataset) reverses: nothing another writer did in between is touched.
"""
from __future__ import annotations

import sqlite3
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable, Iterable, Iterator, Sequence

import pandas as pd
import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import IntegrityError, SQLAlchemyError

from emotion_core.workspace import tag_database_url

SCHEMA_VERSION = 3
MAX_TAG_LENGTH = 40
MAX_AUTHOR_LENGTH = 100
PAPER_TAGS = ("monochrome", "red/warm tones", "human face", "non-human face", "face looking away",
              "nature background", "text in image", "graveyard", "label ambiguous")
SOURCES = ("manual", "suggestion")
# Bound parameters per statement: SQLite builds before 3.32 allow 999 (later ones 32766,
# PostgreSQL 65535), so thousands of images are written and matched in slices of this size.
MAX_PARAMETERS = 900
# Serialises creating and migrating the schema on PostgreSQL (an arbitrary constant key).
SCHEMA_LOCK_KEY = 0x456D6F4C656E73
_INSERT_IGNORING = {"sqlite": sqlite_insert, "postgresql": pg_insert}

metadata = sa.MetaData()
schema_version = sa.Table(  # one row, enforced by the key, since version 3
    "schema_version", metadata,
    sa.Column("id", sa.Integer, sa.CheckConstraint("id = 1", name="one_schema_version_row"),
              primary_key=True, autoincrement=False, default=1),
    sa.Column("version", sa.Integer, nullable=False))
vocabulary = sa.Table(
    "tag_vocabulary", metadata,
    sa.Column("name", sa.String(MAX_TAG_LENGTH), primary_key=True),
    sa.Column("builtin", sa.Boolean, nullable=False, default=False),
    sa.Column("created_by", sa.String(MAX_AUTHOR_LENGTH), nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False))
tags = sa.Table(
    "tags", metadata,
    sa.Column("dataset", sa.String(200), primary_key=True),
    sa.Column("image_id", sa.String(400), primary_key=True),
    sa.Column("tag", sa.String(MAX_TAG_LENGTH), primary_key=True),
    sa.Column("author", sa.String(MAX_AUTHOR_LENGTH), nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("source", sa.String(20), nullable=False, server_default="manual"),  # added in version 2
    sa.Column("action_id", sa.Integer, nullable=True))  # version 3: the add that inserted the row
tags_by_action = sa.Index("ix_tags_action_id", tags.c.action_id)  # what undoing an add deletes
actions = sa.Table(
    "tag_actions", metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("author", sa.String(MAX_AUTHOR_LENGTH), nullable=False),
    sa.Column("kind", sa.String(10), nullable=False),  # "add" or "remove"
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("undone", sa.Boolean, nullable=False, default=False),
    sa.Column("dataset", sa.String(200), nullable=True),  # version 3
    sa.Column("tag", sa.String(MAX_TAG_LENGTH), nullable=True))  # version 3
action_items = sa.Table(  # the tag rows an action really inserted or deleted, as they were
    "tag_action_items", metadata,
    sa.Column("action_id", sa.Integer, sa.ForeignKey("tag_actions.id"), nullable=False, index=True),
    sa.Column("dataset", sa.String(200), nullable=False),
    sa.Column("image_id", sa.String(400), nullable=False),
    sa.Column("tag", sa.String(MAX_TAG_LENGTH), nullable=False),
    sa.Column("source", sa.String(20), nullable=False, server_default="manual"),
    sa.Column("author", sa.String(MAX_AUTHOR_LENGTH), nullable=True),  # version 3 (null: older rows)
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=True),  # version 3
    sa.Column("origin_action_id", sa.Integer, nullable=True))  # version 3: a removed row's action_id
rejections = sa.Table(  # added in version 2: suggested tags a user turned down
    "tag_rejections", metadata,
    sa.Column("dataset", sa.String(200), primary_key=True),
    sa.Column("image_id", sa.String(400), primary_key=True),
    sa.Column("tag", sa.String(MAX_TAG_LENGTH), primary_key=True),
    sa.Column("author", sa.String(MAX_AUTHOR_LENGTH), nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False))
cleared_rejections = sa.Table(  # added in version 3: rejections an add deleted, for its undo
    "tag_action_rejections", metadata,
    sa.Column("action_id", sa.Integer, sa.ForeignKey("tag_actions.id"), nullable=False, index=True),
    sa.Column("dataset", sa.String(200), nullable=False),
    sa.Column("image_id", sa.String(400), nullable=False),
    sa.Column("tag", sa.String(MAX_TAG_LENGTH), nullable=False),
    sa.Column("author", sa.String(MAX_AUTHOR_LENGTH), nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False))


class TagStoreError(RuntimeError):
    """The database cannot be opened or used; one line for the user."""


def default_url() -> str:
    return tag_database_url()


def tags_or_none(url: str, dataset: str,
                 on_error: Callable[[TagStoreError], object] | None = None) -> pd.DataFrame | None:
    """TagStore(url).tags_of(dataset), or None when the store is unusable (a report then counts the
    automatic attributes only); on_error, if given, hears why."""
    try:
        return TagStore(url).tags_of(dataset)
    except TagStoreError as err:
        if on_error is not None:
            on_error(err)
        return None


def check_tag_name(name: str) -> str:
    cleaned = " ".join(str(name).split()).lower()
    if not cleaned:
        raise ValueError("a tag name cannot be empty")
    if len(cleaned) > MAX_TAG_LENGTH:
        raise ValueError(f"tag name {cleaned[:20]!r}... is {len(cleaned)} characters; at most {MAX_TAG_LENGTH}")
    return cleaned


def check_author(author: str) -> str:
    """The one spelling of an author name that is stored and matched: inner spaces collapsed."""
    author = " ".join(str(author or "").split())
    if not author:
        raise ValueError("set your name (author) before tagging")
    return author[:MAX_AUTHOR_LENGTH]


def _now() -> datetime:
    return datetime.now(timezone.utc)


class TagStore:
    def __init__(self, url: str | None = None):
        self.url = url or default_url()
        try:
            self.engine = self._connect(self.url)
            self._writer = self.engine.execution_options(emolens_write=True)
            self._migrate()
        except (SQLAlchemyError, OSError, ImportError) as err:
            safe = sa.engine.make_url(self.url).render_as_string(hide_password=True) if "://" in self.url else self.url
            raise TagStoreError(f"cannot open the tag database {safe}: {str(err).splitlines()[0][:200]}") from None

    @staticmethod
    def _connect(url: str) -> sa.Engine:
        if url.startswith("sqlite:///"):
            Path(url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
            engine = sa.create_engine(url, connect_args={"timeout": 30})

            @sa.event.listens_for(engine, "connect")
            def _pragmas(connection, _record):
                connection.isolation_level = None  # SQLAlchemy's "begin" below opens transactions
                cursor = connection.cursor()
                cursor.execute("PRAGMA busy_timeout=30000")
                _use_wal(cursor)
                cursor.close()

            @sa.event.listens_for(engine, "begin")
            def _begin(connection):
                # A write takes the lock when it starts, so a read-then-write never works from a
                # stale snapshot and writers queue on busy_timeout; a read takes no lock (WAL).
                writes = connection.get_execution_options().get("emolens_write", False)
                connection.exec_driver_sql("BEGIN IMMEDIATE" if writes else "BEGIN")
            return engine
        return sa.create_engine(url, pool_pre_ping=True, connect_args=_connect_args(url))

    def _write(self):
        """A write transaction (reads use self.engine and never wait for a writer)."""
        return self._writer.begin()

    # ---- schema --------------------------------------------------------------------------

    def schema_version(self) -> int:
        with self.engine.connect() as connection:
            return int(connection.execute(sa.select(schema_version.c.version)).scalar_one())

    def _migrate(self) -> None:
        with self._write() as connection:
            if connection.dialect.name == "postgresql":  # two first opens at once: one creates, one waits
                connection.execute(sa.select(sa.func.pg_advisory_xact_lock(SCHEMA_LOCK_KEY)))
            if "schema_version" not in sa.inspect(connection).get_table_names():
                metadata.create_all(connection)
                connection.execute(schema_version.insert().values(version=SCHEMA_VERSION))
                self._seed_vocabulary(connection)
                return
            # max(): a database created by two racing first opens before version 3 has two rows
            version = connection.execute(sa.select(sa.func.max(schema_version.c.version))).scalar()
            if version is None:
                raise TagStoreError("the tag database has an empty schema_version table; "
                                    "restore it from a backup or point EMOLENS_DB_URL elsewhere")
            if version > SCHEMA_VERSION:
                raise TagStoreError(f"the tag database has schema version {version}, newer than this "
                                    f"EmoLens ({SCHEMA_VERSION}); upgrade EmoLens")
            for step in range(version, SCHEMA_VERSION):
                MIGRATIONS[step](connection)
                connection.execute(schema_version.update().values(version=step + 1))

    def _seed_vocabulary(self, connection) -> None:
        for name in PAPER_TAGS:
            _add_word(connection, name, "emolens", builtin=True)

    # ---- vocabulary ----------------------------------------------------------------------

    def vocabulary(self) -> list[str]:
        with self.engine.connect() as connection:
            rows = connection.execute(sa.select(vocabulary.c.name, vocabulary.c.builtin)).all()
        builtin = [n for n in PAPER_TAGS if any(r.name == n for r in rows)]
        return builtin + sorted(r.name for r in rows if r.name not in PAPER_TAGS)

    def add_to_vocabulary(self, name: str, author: str) -> str:
        name, author = check_tag_name(name), check_author(author)
        with self._write() as connection:
            _add_word(connection, name, author)
        return name

    # ---- tagging -------------------------------------------------------------------------

    def add(self, dataset: str, image_ids: Iterable[str], tag: str, author: str, source: str = "manual") -> int:
        """Tag images (already tagged ones are left as they are); returns how many were new.

        Only the rows this call really inserted are recorded (a concurrent writer's are not),
        with the rejections of this tag they cleared, so that undo reverses exactly this."""
        tag, ids, author = check_tag_name(tag), list(dict.fromkeys(image_ids)), check_author(author)
        if source not in SOURCES:
            raise ValueError(f"unknown tag source {source!r}; one of {', '.join(SOURCES)}")
        with self._write() as connection:
            _add_word(connection, tag, author)
            action_id = _new_action(connection, "add", author, dataset, tag)
            now = _now()
            rows = [{"dataset": dataset, "image_id": i, "tag": tag, "author": author, "created_at": now,
                     "source": source, "action_id": action_id} for i in ids]
            new = set(_insert_new(connection, tags, rows, tags.c.image_id))
            if not new:
                connection.execute(actions.delete().where(actions.c.id == action_id))
                return 0
            _record_items(connection, action_id, [r for r in rows if r["image_id"] in new])
            cleared = _delete_returning(connection, rejections, [rejections.c.dataset == dataset,
                                                                 rejections.c.tag == tag], sorted(new))
            if cleared:
                connection.execute(cleared_rejections.insert(),
                                   [{"action_id": action_id, **row._mapping} for row in cleared])
        return len(new)

    def remove(self, dataset: str, image_ids: Iterable[str], tag: str, author: str) -> int:
        """Untag images; returns how many lost the tag. Undo puts back each row as it was."""
        tag, ids, author = check_tag_name(tag), list(dict.fromkeys(image_ids)), check_author(author)
        with self._write() as connection:
            removed = _delete_returning(connection, tags, [tags.c.dataset == dataset, tags.c.tag == tag], ids)
            if not removed:
                return 0
            action_id = _new_action(connection, "remove", author, dataset, tag)
            _record_items(connection, action_id, [row._mapping for row in removed])
        return len(removed)

    def reject(self, dataset: str, image_id: str, tag: str, author: str) -> None:
        """Turn down a suggested tag so it is not suggested again for this image."""
        row = {"dataset": dataset, "image_id": image_id, "tag": check_tag_name(tag),
               "author": check_author(author), "created_at": _now()}
        with self._write() as connection:
            _insert_new(connection, rejections, [row], rejections.c.image_id)

    def rejected(self, dataset: str) -> set[tuple[str, str]]:
        with self.engine.connect() as connection:
            rows = connection.execute(sa.select(rejections.c.image_id, rejections.c.tag)
                                      .where(rejections.c.dataset == dataset)).all()
        return {(r.image_id, r.tag) for r in rows}

    def undo(self, author: str, dataset: str) -> str | None:
        """Reverse this author's last action on this dataset not yet undone; a description, or None."""
        author = check_author(author)
        with self._write() as connection:
            last = _claim_last_action(connection, author, dataset)
            if last is None:
                return None
            changed = (_undo_add if last.kind == "add" else _undo_remove)(connection, last)
        verb = "added" if last.kind == "add" else "removed"
        return f"undid: {verb} '{last.tag}' on {changed} image{'s' if changed != 1 else ''}"

    def tags_of(self, dataset: str) -> pd.DataFrame:
        """All tags of a dataset: image_id, tag, author, created_at, source."""
        with self.engine.connect() as connection:
            rows = connection.execute(sa.select(tags.c.image_id, tags.c.tag, tags.c.author, tags.c.created_at,
                                                tags.c.source).where(tags.c.dataset == dataset)).all()
        return pd.DataFrame(rows, columns=["image_id", "tag", "author", "created_at", "source"])


# ---- actions and undo ----------------------------------------------------------------------

def _new_action(connection, kind: str, author: str, dataset: str, tag: str) -> int:
    return connection.execute(actions.insert().values(author=author, kind=kind, created_at=_now(), undone=False,
                                                      dataset=dataset, tag=tag)).inserted_primary_key[0]


def _record_items(connection, action_id: int, rows: Sequence) -> None:
    """The tag rows an action changed, as they were (for a removal: to put them back unchanged)."""
    connection.execute(action_items.insert(), [
        {"action_id": action_id, "dataset": r["dataset"], "image_id": r["image_id"], "tag": r["tag"],
         "source": r["source"], "author": r["author"], "created_at": r["created_at"],
         "origin_action_id": r["action_id"]} for r in rows])


def _claim_last_action(connection, author: str, dataset: str):
    """The author's newest live action on the dataset, marked undone here so that two undo
    clicks at once (two dashboards) reverse two different actions, never one twice."""
    while True:
        last = connection.execute(sa.select(actions).where(
            actions.c.author == author, actions.c.dataset == dataset, ~actions.c.undone)
            .order_by(actions.c.id.desc()).limit(1)).first()
        if last is None:
            return None
        claimed = connection.execute(actions.update().where(actions.c.id == last.id, ~actions.c.undone)
                                     .values(undone=True))
        if claimed.rowcount == 1:
            return last


def _undo_add(connection, action) -> int:
    """Delete the rows this add inserted that still carry it (a later re-add by anyone is
    another row and stays), and put back the rejections it cleared."""
    removed = connection.execute(tags.delete().where(tags.c.action_id == action.id)).rowcount
    cleared = connection.execute(sa.select(*[cleared_rejections.c[c.name] for c in rejections.c])
                                 .where(cleared_rejections.c.action_id == action.id)).all()
    _insert_new(connection, rejections, [dict(r._mapping) for r in cleared], rejections.c.image_id)
    return removed


def _undo_remove(connection, action) -> int:
    """Put back the removed rows with their own author, time, source and adding action;
    an image tagged again meanwhile keeps that newer tag."""
    items = connection.execute(sa.select(action_items).where(action_items.c.action_id == action.id)).all()
    now = _now()
    rows = [{"dataset": i.dataset, "image_id": i.image_id, "tag": i.tag, "source": i.source,
             "author": i.author or action.author, "created_at": i.created_at or now,  # rows before version 3
             "action_id": i.origin_action_id} for i in items]
    return len(_insert_new(connection, tags, rows, tags.c.image_id))


# ---- writing many rows -------------------------------------------------------------------

def _slices(values: Sequence, size: int) -> Iterator[Sequence]:
    for start in range(0, len(values), size):
        yield values[start:start + size]


def _insert_new(connection, table: sa.Table, rows: list[dict], report: sa.Column) -> list:
    """Insert the rows whose primary key is free and return `report` of those really inserted:
    concurrent writers never fail on each other, and none counts a row another one inserted."""
    if not rows:
        return []
    # Rows in key order: two writers then lock shared rows in the same order and never deadlock.
    keys = [column.name for column in table.primary_key]
    rows = sorted(rows, key=lambda row: [str(row[k]) for k in keys])
    dialect = connection.dialect
    if dialect.name in _INSERT_IGNORING and dialect.insert_executemany_returning:
        # SQLAlchemy batches these rows into multi-row INSERTs within the driver's parameter limit
        statement = _INSERT_IGNORING[dialect.name](table).on_conflict_do_nothing().returning(report)
        return connection.execute(statement, rows).scalars().all()
    inserted = []
    for row in rows:  # any other database: one savepoint per row
        try:
            with connection.begin_nested():
                connection.execute(table.insert().values(**row))
            inserted.append(row[report.name])
        except IntegrityError:
            pass
    return inserted


def _delete_returning(connection, table: sa.Table, where: list, image_ids: Sequence[str]) -> list:
    """Delete the rows matching `where` for these images; return those really deleted, whole
    (a row a concurrent writer deleted first is not ours to record)."""
    deleted = []
    for part in _slices(sorted(image_ids), MAX_PARAMETERS - len(where)):  # one lock order for all writers
        match = (*where, table.c.image_id.in_(part))
        if connection.dialect.delete_returning:
            deleted += connection.execute(table.delete().where(*match).returning(*table.c)).all()
            continue
        for row in connection.execute(sa.select(table).where(*match)).all():
            key = [column == row._mapping[column.name] for column in table.primary_key]
            if connection.execute(table.delete().where(*key)).rowcount == 1:
                deleted.append(row)
    return deleted


def _add_word(connection, name: str, author: str, builtin: bool = False) -> None:
    """Put a tag name in the vocabulary (no-op if it is there)."""
    _insert_new(connection, vocabulary, [{"name": name, "builtin": builtin, "created_by": author,
                                          "created_at": _now()}], vocabulary.c.name)


def _use_wal(cursor, tries: int = 200) -> None:
    """Switch a SQLite file to WAL. The switch needs the file to itself and SQLite answers
    "locked" at once instead of waiting (two first opens at once), so wait here."""
    for attempt in range(tries):
        try:
            cursor.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as err:
            if "locked" not in str(err) or attempt == tries - 1:
                raise
            time.sleep(0.05)


def _connect_args(url: str) -> dict:
    args = {"connect_timeout": 5} if url.startswith(("postgresql", "mysql")) else {}
    if url.startswith("postgresql+psycopg:"):
        # No server-side prepared statements: a reused generic plan tests `image_id IN (900
        # parameters)` one by one against every row; a fresh plan sees the values and hashes them.
        args["prepare_threshold"] = None
    return args


# ---- migrations ----------------------------------------------------------------------------

def _add_column(connection, column: sa.Column) -> None:
    kind = column.type.compile(dialect=connection.dialect)
    connection.execute(sa.text(f"ALTER TABLE {column.table.name} ADD COLUMN {column.name} {kind}"))


def _migrate_1_to_2(connection) -> None:
    """Version 2: tags and action items record their source; suggestions can be rejected."""
    for table in ("tags", "tag_action_items"):
        connection.execute(sa.text(f"ALTER TABLE {table} ADD COLUMN source VARCHAR(20) NOT NULL DEFAULT 'manual'"))
    rejections.create(connection)


def _migrate_2_to_3(connection) -> None:
    """Version 3: exact undo (tags know their adding action, actions their dataset and tag,
    items the removed row as it was, adds the rejections they cleared); one schema_version row."""
    for column in (tags.c.action_id, actions.c.dataset, actions.c.tag, action_items.c.author,
                   action_items.c.created_at, action_items.c.origin_action_id):
        _add_column(connection, column)
    tags_by_action.create(connection)
    cleared_rejections.create(connection)

    def of_first_item(column: sa.Column):  # every item of an action has its dataset and tag
        return sa.select(sa.func.min(column)).where(action_items.c.action_id == actions.c.id).scalar_subquery()
    connection.execute(actions.update().values(dataset=of_first_item(action_items.c.dataset),
                                               tag=of_first_item(action_items.c.tag)))
    _link_tags_to_their_adds(connection)
    version = connection.execute(sa.select(sa.func.max(schema_version.c.version))).scalar()
    schema_version.drop(connection)
    schema_version.create(connection)
    connection.execute(schema_version.insert().values(version=version))


def _link_tags_to_their_adds(connection) -> None:
    """Give each existing tag the newest live add of it by its author, so that undo keeps
    working on what was tagged before version 3 (one key lookup per tag: no full scans)."""
    key = (action_items.c.dataset, action_items.c.image_id, action_items.c.tag, actions.c.author)
    adds = connection.execute(sa.select(*key, sa.func.max(actions.c.id))
                              .join_from(action_items, actions, action_items.c.action_id == actions.c.id)
                              .where(actions.c.kind == "add", ~actions.c.undone).group_by(*key)).all()
    if adds:
        names = ("b_dataset", "b_image_id", "b_tag", "b_author", "b_action_id")
        match = [column == sa.bindparam(name) for column, name in
                 zip((tags.c.dataset, tags.c.image_id, tags.c.tag, tags.c.author), names)]
        connection.execute(tags.update().where(*match).values(action_id=sa.bindparam("b_action_id")),
                           [dict(zip(names, add)) for add in adds])


MIGRATIONS = {1: _migrate_1_to_2, 2: _migrate_2_to_3}


def images_with_all(tag_table: pd.DataFrame, wanted: Iterable[str]) -> set[str]:
    """image_ids that carry every wanted tag."""
    wanted = set(wanted)
    if not wanted:
        return set(tag_table["image_id"])
    have = tag_table[tag_table["tag"].isin(wanted)].groupby("image_id")["tag"].nunique()
    return set(have[have == len(wanted)].index)


def tags_by_image(tag_table: pd.DataFrame) -> dict[str, list[str]]:
    return {image_id: sorted(group["tag"]) for image_id, group in tag_table.groupby("image_id")}


def suggestions(attribute_row: pd.Series | None, current: Iterable[str], rejected: set[str]) -> list[str]:
    """Tags the image's boolean attributes suggest, minus those it has or had rejected."""
    from emotion_core.attributes import SUGGESTED_TAGS  # the attribute names live there
    if attribute_row is None:
        return []
    current = set(current)
    return [tag for column, tag in SUGGESTED_TAGS.items()
            if bool(attribute_row.get(column, False)) and tag not in current and tag not in rejected]
