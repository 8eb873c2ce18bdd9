"""The tag store: tags on (dataset, image) with author and time, in any SQLAlchemy database.

Default: a SQLite file in the workspace (WAL mode, so a reader never blocks a writer);
$EMOLENS_DB_URL points it at PostgreSQL or any SQLAlchemy URL for a team. The schema is
versioned and migrated forward on open, so a newer EmoLens opens an older database.
Every change is one recorded action, which is what "undo" reverses.
"""
from __future__ import annotations

import os
from datetime import datetime, timezone
from pathlib import Path
from typing import Iterable

import pandas as pd
import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import IntegrityError, SQLAlchemyError

from emotion_core.workspace import workspace_dir

SCHEMA_VERSION = 2
MAX_TAG_LENGTH = 40
PAPER_TAGS = ("monochrome", "red/warm tones", "human face", "non-human face", "face looking away",
              "nature background", "text in image", "graveyard", "label ambiguous")
SOURCES = ("manual", "suggestion")

metadata = sa.MetaData()
schema_version = sa.Table("schema_version", metadata, sa.Column("version", sa.Integer, nullable=False))
vocabulary = sa.Table(
    "tag_vocabulary", metadata,
    sa.Column("name", sa.String(MAX_TAG_LENGTH), primary_key=True),
    sa.Column("builtin", sa.Boolean, nullable=False, default=False),
    sa.Column("created_by", sa.String(100), nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False))
tags = sa.Table(
    "tags", metadata,
    sa.Column("dataset", sa.String(200), primary_key=True),
    sa.Column("image_id", sa.String(400), primary_key=True),
    sa.Column("tag", sa.String(MAX_TAG_LENGTH), primary_key=True),
    sa.Column("author", sa.String(100), nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("source", sa.String(20), nullable=False, server_default="manual"))  # added in version 2
actions = sa.Table(
    "tag_actions", metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("author", sa.String(100), nullable=False),
    sa.Column("kind", sa.String(10), nullable=False),  # "add" or "remove"
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("undone", sa.Boolean, nullable=False, default=False))
action_items = sa.Table(
    "tag_action_items", metadata,
    sa.Column("action_id", sa.Integer, sa.ForeignKey("tag_actions.id"), nullable=False, index=True),
    sa.Column("dataset", sa.String(200), nullable=False),
    sa.Column("image_id", sa.String(400), nullable=False),
    sa.Column("tag", sa.String(MAX_TAG_LENGTH), nullable=False),
    sa.Column("source", sa.String(20), nullable=False, server_default="manual"))
rejections = sa.Table(  # added in version 2: suggested tags a user turned down
    "tag_rejections", metadata,
    sa.Column("dataset", sa.String(200), primary_key=True),
    sa.Column("image_id", sa.String(400), primary_key=True),
    sa.Column("tag", sa.String(MAX_TAG_LENGTH), primary_key=True),
    sa.Column("author", sa.String(100), nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False))


class TagStoreError(RuntimeError):
    """The database cannot be opened or used; one line for the user."""


def default_url() -> str:
    return os.environ.get("EMOLENS_DB_URL") or f"sqlite:///{workspace_dir() / 'tags.sqlite'}"


def check_tag_name(name: str) -> str:
    cleaned = " ".join(str(name).split()).lower()
    if not cleaned:
        raise ValueError("a tag name cannot be empty")
    if len(cleaned) > MAX_TAG_LENGTH:
        raise ValueError(f"tag name {cleaned[:20]!r}... is {len(cleaned)} characters; at most {MAX_TAG_LENGTH}")
    return cleaned


def _now() -> datetime:
    return datetime.now(timezone.utc)


class TagStore:
    def __init__(self, url: str | None = None):
        self.url = url or default_url()
        try:
            self.engine = self._connect(self.url)
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
                cursor.execute("PRAGMA journal_mode=WAL")
                cursor.execute("PRAGMA busy_timeout=30000")
                cursor.close()

            @sa.event.listens_for(engine, "begin")
            def _begin_immediate(connection):
                # Take the write lock when the transaction starts: a read-then-write never
                # works from a stale snapshot, and waiting writers queue on busy_timeout.
                connection.exec_driver_sql("BEGIN IMMEDIATE")
            return engine
        return sa.create_engine(url, pool_pre_ping=True, connect_args=_connect_timeout(url))

    # ---- schema --------------------------------------------------------------------------

    def schema_version(self) -> int:
        with self.engine.connect() as connection:
            return int(connection.execute(sa.select(schema_version.c.version)).scalar_one())

    def _migrate(self) -> None:
        with self.engine.begin() as connection:
            existing = sa.inspect(connection).get_table_names()
            if "schema_version" not in existing:
                metadata.create_all(connection)
                connection.execute(schema_version.insert().values(version=SCHEMA_VERSION))
                self._seed_vocabulary(connection)
                return
            version = connection.execute(sa.select(schema_version.c.version)).scalar_one()
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
        name = check_tag_name(name)
        with self.engine.begin() as connection:
            _add_word(connection, name, author)
        return name

    # ---- tagging -------------------------------------------------------------------------

    def add(self, dataset: str, image_ids: Iterable[str], tag: str, author: str, source: str = "manual") -> int:
        """Tag images (already tagged ones are left as they are); returns how many were new."""
        tag, ids = check_tag_name(tag), list(dict.fromkeys(image_ids))
        author = _check_author(author)
        with self.engine.begin() as connection:
            _add_word(connection, tag, author)
            have = self._tagged(connection, dataset, ids, tag)
            new = [i for i in ids if i not in have]
            if not new:
                return 0
            for image_id in new:
                _insert_ignore(connection, tags, {"dataset": dataset, "image_id": image_id, "tag": tag,
                                                  "author": author, "created_at": _now(), "source": source})
            self._record(connection, "add", author, dataset, new, tag, source)
            connection.execute(rejections.delete().where(rejections.c.dataset == dataset, rejections.c.tag == tag,
                                                         rejections.c.image_id.in_(new)))
        return len(new)

    def remove(self, dataset: str, image_ids: Iterable[str], tag: str, author: str) -> int:
        tag, ids = check_tag_name(tag), list(dict.fromkeys(image_ids))
        author = _check_author(author)
        with self.engine.begin() as connection:
            present = connection.execute(sa.select(tags.c.image_id, tags.c.source).where(
                tags.c.dataset == dataset, tags.c.tag == tag, tags.c.image_id.in_(ids))).all()
            if not present:
                return 0
            connection.execute(tags.delete().where(tags.c.dataset == dataset, tags.c.tag == tag,
                                                   tags.c.image_id.in_([p.image_id for p in present])))
            action_id = self._new_action(connection, "remove", author)
            connection.execute(action_items.insert(), [{"action_id": action_id, "dataset": dataset,
                                                        "image_id": p.image_id, "tag": tag, "source": p.source}
                                                       for p in present])
        return len(present)

    def reject(self, dataset: str, image_id: str, tag: str, author: str) -> None:
        """Turn down a suggested tag so it is not suggested again for this image."""
        with self.engine.begin() as connection:
            _insert_ignore(connection, rejections, {"dataset": dataset, "image_id": image_id,
                                                    "tag": check_tag_name(tag), "author": _check_author(author),
                                                    "created_at": _now()})

    def rejected(self, dataset: str) -> set[tuple[str, str]]:
        with self.engine.connect() as connection:
            rows = connection.execute(sa.select(rejections.c.image_id, rejections.c.tag)
                                      .where(rejections.c.dataset == dataset)).all()
        return {(r.image_id, r.tag) for r in rows}

    def undo(self, author: str) -> str | None:
        """Reverse this author's last action not yet undone; a description, or None."""
        with self.engine.begin() as connection:
            last = connection.execute(sa.select(actions).where(actions.c.author == author, ~actions.c.undone)
                                      .order_by(actions.c.id.desc()).limit(1)).first()
            if last is None:
                return None
            items = connection.execute(sa.select(action_items).where(action_items.c.action_id == last.id)).all()
            for item in items:
                where = (tags.c.dataset == item.dataset, tags.c.image_id == item.image_id, tags.c.tag == item.tag)
                if last.kind == "add":
                    connection.execute(tags.delete().where(*where))
                else:
                    _insert_ignore(connection, tags, {"dataset": item.dataset, "image_id": item.image_id,
                                                      "tag": item.tag, "author": author, "created_at": _now(),
                                                      "source": item.source})
            connection.execute(actions.update().where(actions.c.id == last.id).values(undone=True))
        verb = "added" if last.kind == "add" else "removed"
        return f"undid: {verb} '{items[0].tag}' on {len(items)} image{'s' if len(items) != 1 else ''}"

    def tags_of(self, dataset: str) -> pd.DataFrame:
        """All tags of a dataset: image_id, tag, author, created_at, source."""
        with self.engine.connect() as connection:
            rows = connection.execute(sa.select(tags.c.image_id, tags.c.tag, tags.c.author, tags.c.created_at,
                                                tags.c.source).where(tags.c.dataset == dataset)).all()
        return pd.DataFrame(rows, columns=["image_id", "tag", "author", "created_at", "source"])

    # ---- internals -----------------------------------------------------------------------

    @staticmethod
    def _tagged(connection, dataset: str, ids: list[str], tag: str) -> set[str]:
        rows = connection.execute(sa.select(tags.c.image_id).where(
            tags.c.dataset == dataset, tags.c.tag == tag, tags.c.image_id.in_(ids))).all()
        return {r.image_id for r in rows}

    @staticmethod
    def _new_action(connection, kind: str, author: str) -> int:
        return connection.execute(actions.insert().values(author=author, kind=kind, created_at=_now(), undone=False)
                                  ).inserted_primary_key[0]

    def _record(self, connection, kind: str, author: str, dataset: str, ids: list[str], tag: str, source: str) -> None:
        action_id = self._new_action(connection, kind, author)
        connection.execute(action_items.insert(), [{"action_id": action_id, "dataset": dataset, "image_id": i,
                                                    "tag": tag, "source": source} for i in ids])


def _check_author(author: str) -> str:
    author = " ".join(str(author or "").split())
    if not author:
        raise ValueError("set your name (author) before tagging")
    return author[:100]


def _add_word(connection, name: str, author: str, builtin: bool = False) -> None:
    """Put a tag name in the vocabulary (no-op if it is there)."""
    _insert_ignore(connection, vocabulary, {"name": name, "builtin": builtin, "created_by": author,
                                            "created_at": _now()})


def _insert_ignore(connection, table: sa.Table, values: dict) -> None:
    """Insert unless the primary key exists: concurrent taggers never fail on each other."""
    dialect = connection.dialect.name
    if dialect in ("sqlite", "postgresql"):
        insert = (sqlite_insert if dialect == "sqlite" else pg_insert)(table).values(**values)
        connection.execute(insert.on_conflict_do_nothing())
        return
    try:
        with connection.begin_nested():
            connection.execute(table.insert().values(**values))
    except IntegrityError:
        pass


def _connect_timeout(url: str) -> dict:
    return {"connect_timeout": 5} if url.startswith(("postgresql", "mysql")) else {}


def _migrate_1_to_2(connection) -> None:
    """Version 2: tags and action items record their source; suggestions can be rejected."""
    for table in ("tags", "tag_action_items"):
        connection.execute(sa.text(f"ALTER TABLE {table} ADD COLUMN source VARCHAR(20) NOT NULL DEFAULT 'manual'"))
    rejections.create(connection)


MIGRATIONS = {1: _migrate_1_to_2}


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
