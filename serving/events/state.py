"""What the event intake remembers, in SQLite: which events, impressions and playbacks the raw log holds.

The Parquet files are the raw log; this database is its index, so a resent event is recognised
without reading Parquet, and a playback's row can be rebuilt whole when a later event changes it.
An impression is remembered with the file that holds its row and whether the service's own record
(serving.served_log) is in it, so the service's row can complete a client's logged before it.
It lives beside the raw tables (`<raw_dir>/_events/intake.sqlite3`), in WAL mode with
synchronous=FULL: a commit is on disk when it returns, and a reader (a sensor listing batches)
never blocks the writer. Every batch row says which files the batch created or rewrote, and
`published` whether those files are known to be visible (see serving.events.durable_files).
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from serving.events.raw_rows import Playback, PlaybackKey

STATE_DIR_NAME = "_events"
DATABASE_NAME = "intake.sqlite3"
# SQLite's default limit on bound parameters is 32766; lookups go in slices well below it.
_LOOKUP_SLICE = 500

_SCHEMA = """
create table if not exists batches (
    seq integer primary key,
    committed_at text not null,
    accepted integer not null,
    duplicates integer not null,
    created text not null,
    replaced text not null,
    published integer not null
);
create index if not exists unpublished_batches on batches (seq) where published = 0;
create table if not exists events (
    event_id text primary key,
    digest blob not null,
    seq integer not null
) without rowid;
create table if not exists impressions (
    request_id text not null,
    video_id integer not null,
    file text,
    served integer not null default 0,
    primary key (request_id, video_id)
) without rowid;
create table if not exists playbacks (
    user_id integer not null,
    video_id integer not null,
    watch_time integer not null,
    watch_seconds real not null,
    liked integer not null,
    shared integer not null,
    disliked integer not null,
    file text not null,
    primary key (user_id, video_id, watch_time)
) without rowid;
create index if not exists playbacks_by_file on playbacks (file);
"""


# Columns added to a table after databases were created with it: added to an older database on
# opening (SQLite's `add column` keeps every row; they read as the default).
_ADDED_COLUMNS = {
    "impressions": (
        ("file", "text"),  # the file holding the row; null for impressions logged before it was kept
        ("served", "integer not null default 0"),  # 1: the row holds the service's own record
    ),
}


def state_dir(raw_dir: Path) -> Path:
    """Where the intake keeps its database and write lock, beside the raw tables."""
    return raw_dir / STATE_DIR_NAME


@dataclass(frozen=True)
class LoggedImpression:
    """Where an impression's row is (None: logged before files were remembered) and whether it
    holds what the service served (else a client's event logged it)."""

    file: str | None
    served: bool


@dataclass(frozen=True)
class BatchRecord:
    """One committed batch, as `committed_batches` lists it; paths are relative to the raw log."""

    seq: int
    committed_at: datetime
    accepted: int
    duplicates: int
    created: tuple[str, ...]
    replaced: tuple[str, ...]

    @property
    def files(self) -> tuple[str, ...]:
        return self.created + self.replaced


class IntakeState:
    """The intake's database, used by one writer at a time (the caller holds the raw log's write lock)."""

    def __init__(self, database: Path, busy_timeout_seconds: float) -> None:
        self._connection = sqlite3.connect(
            database, timeout=busy_timeout_seconds, isolation_level=None, check_same_thread=False
        )
        self._connection.execute("pragma journal_mode = wal")
        self._connection.execute("pragma synchronous = full")
        self._connection.executescript(_SCHEMA)
        self._add_missing_columns()

    def close(self) -> None:
        self._connection.close()

    def _add_missing_columns(self) -> None:
        """Bring a database created by an older intake up to `_SCHEMA` (the caller holds the write lock)."""
        for table, columns in _ADDED_COLUMNS.items():
            present = {row[1] for row in self._connection.execute(f"pragma table_info({table})")}
            for name, declaration in columns:
                if name not in present:
                    self._connection.execute(f"alter table {table} add column {name} {declaration}")

    # ---- the transaction ----------------------------------------------------------------
    def begin(self) -> None:
        self._connection.execute("begin immediate")

    def commit(self) -> None:
        self._connection.execute("commit")

    def rollback_if_open(self) -> None:
        if self._connection.in_transaction:
            self._connection.execute("rollback")

    # ---- reads --------------------------------------------------------------------------
    def next_seq(self) -> int:
        (last,) = self._connection.execute("select coalesce(max(seq), 0) from batches").fetchone()
        return last + 1

    def logged_digests(self, event_ids: Iterable[str]) -> dict[str, bytes]:
        unique = sorted(set(event_ids))
        found: dict[str, bytes] = {}
        for start in range(0, len(unique), _LOOKUP_SLICE):
            chunk = unique[start:start + _LOOKUP_SLICE]
            query = f"select event_id, digest from events where event_id in ({','.join('?' * len(chunk))})"
            found.update(self._connection.execute(query, chunk).fetchall())
        return found

    def impression_logged(self, request_id: str, video_id: int) -> bool:
        return self.impression(request_id, video_id) is not None

    def impression(self, request_id: str, video_id: int) -> LoggedImpression | None:
        stored = self._connection.execute(
            "select file, served from impressions where request_id = ? and video_id = ?", (request_id, video_id)
        ).fetchone()
        return None if stored is None else LoggedImpression(stored[0], bool(stored[1]))

    def playback(self, key: PlaybackKey) -> tuple[Playback, str] | None:
        """The playback as logged, and the file that holds its row; None if never logged."""
        stored = self._connection.execute(
            "select watch_seconds, liked, shared, disliked, file from playbacks "
            "where user_id = ? and video_id = ? and watch_time = ?",
            (key.user_id, key.video_id, key.watch_time_micros),
        ).fetchone()
        if stored is None:
            return None
        seconds, liked, shared, disliked, file = stored
        return Playback(seconds, bool(liked), bool(shared), bool(disliked)), file

    def playbacks_in(self, file: str) -> list[tuple[PlaybackKey, Playback]]:
        """Every playback whose row lives in `file`, as logged now (this transaction's changes included)."""
        rows = self._connection.execute(
            "select user_id, video_id, watch_time, watch_seconds, liked, shared, disliked from playbacks "
            "where file = ? order by user_id, video_id, watch_time",
            (file,),
        ).fetchall()
        return [(PlaybackKey(user, video, micros), Playback(seconds, bool(liked), bool(shared), bool(disliked)))
                for user, video, micros, seconds, liked, shared, disliked in rows]

    def unpublished_batches(self) -> list[BatchRecord]:
        return self._batches("published = 0")

    # ---- writes (inside the transaction) ------------------------------------------------
    def record_events(self, seq: int, event_digests: Iterable[tuple[str, bytes]]) -> None:
        self._connection.executemany(
            "insert into events values (?, ?, ?)", [(event_id, digest, seq) for event_id, digest in event_digests]
        )

    def record_impressions(self, impressions: Iterable[tuple[tuple[str, int], LoggedImpression]]) -> None:
        """Remember new impressions, or (a key already logged) where their row is now and what it holds."""
        self._connection.executemany(
            "insert into impressions values (?, ?, ?, ?) "
            "on conflict (request_id, video_id) do update set file = excluded.file, served = excluded.served",
            [(request_id, video_id, logged.file, int(logged.served))
             for (request_id, video_id), logged in sorted(impressions, key=lambda item: item[0])],
        )

    def store_playbacks(self, playbacks: Iterable[tuple[PlaybackKey, Playback, str]]) -> None:
        self._connection.executemany(
            "insert into playbacks values (?, ?, ?, ?, ?, ?, ?, ?) "
            "on conflict (user_id, video_id, watch_time) do update set watch_seconds = excluded.watch_seconds, "
            "liked = excluded.liked, shared = excluded.shared, disliked = excluded.disliked",
            [(key.user_id, key.video_id, key.watch_time_micros, playback.watch_seconds, playback.liked,
              playback.shared, playback.disliked, file) for key, playback, file in playbacks],
        )

    def record_batch(self, seq: int, accepted: int, duplicates: int, created: tuple[str, ...],
                     replaced: tuple[str, ...]) -> None:
        self._connection.execute(
            "insert into batches values (?, ?, ?, ?, ?, ?, 0)",
            (seq, datetime.now(UTC).isoformat(), accepted, duplicates, json.dumps(created), json.dumps(replaced)),
        )

    def mark_published(self, seqs: Iterable[int]) -> None:
        self._connection.executemany("update batches set published = 1 where seq = ?", [(seq,) for seq in seqs])

    def _batches(self, where: str, parameters: tuple = ()) -> list[BatchRecord]:
        return _batch_records(self._connection, where, parameters)


def committed_batches(raw_dir: Path, after_seq: int = 0) -> list[BatchRecord]:
    """Committed batches numbered above `after_seq`, oldest first: what a sensor's cursor walks.

    Read-only, so it can run from another process (Dagster) while workers write.
    """
    database = state_dir(raw_dir) / DATABASE_NAME
    if not database.exists():
        return []
    connection = sqlite3.connect(f"{database.as_uri()}?mode=ro", uri=True)
    try:
        return _batch_records(connection, "seq > ?", (after_seq,))
    finally:
        connection.close()


def _batch_records(connection: sqlite3.Connection, where: str, parameters: tuple) -> list[BatchRecord]:
    rows = connection.execute(
        f"select seq, committed_at, accepted, duplicates, created, replaced from batches where {where} order by seq",
        parameters,
    ).fetchall()
    return [BatchRecord(seq, datetime.fromisoformat(at), accepted, duplicates, tuple(json.loads(created)),
                        tuple(json.loads(replaced)))
            for seq, at, accepted, duplicates, created, replaced in rows]
