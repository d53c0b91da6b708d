"""Offline store: DuckDB over a FileSource's Parquet or CSV files (paths or globs).

Used to check a view's schema against its data at ``ladle apply``, and to read the
latest row per entity for materialization, streamed in bounded batches.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import duckdb

from registry.model import FileSourceSpec


class OfflineStoreError(Exception):
    """The offline data cannot be read as the source declares it."""


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def file_format(source: FileSourceSpec) -> str:
    if source.file_format in ("parquet", "csv"):
        return source.file_format
    return "csv" if source.path.lower().endswith(".csv") else "parquet"


class FileOfflineStore:
    """Reads FileSources relative to a repo folder."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def resolve(self, source: FileSourceSpec) -> str:
        path = Path(source.path).expanduser()
        return str(path if path.is_absolute() else self.root / path)

    def _relation(self, source: FileSourceSpec) -> str:
        path = _literal(self.resolve(source))
        if file_format(source) == "csv":
            return f"read_csv({path}, union_by_name=true, header=true)"
        return f"read_parquet({path}, union_by_name=true)"

    def _connect(self) -> duckdb.DuckDBPyConnection:
        con = duckdb.connect(":memory:")
        con.execute("SET TimeZone='UTC'")
        return con

    def describe(self, source: FileSourceSpec) -> dict[str, str]:
        """Column name -> DuckDB type name, as the files hold them (before field_mapping)."""
        con = self._connect()
        try:
            rows = con.execute(f"DESCRIBE SELECT * FROM {self._relation(source)}").fetchall()
        except duckdb.Error as exc:
            raise OfflineStoreError(
                f"cannot read source {source.name!r} at {self.resolve(source)}: {exc}"
            ) from None
        finally:
            con.close()
        return {str(row[0]): str(row[1]) for row in rows}

    def latest_rows(
        self,
        source: FileSourceSpec,
        join_keys: Sequence[str],
        features: Sequence[str],
        start_us: int,
        end_us: int,
        batch_size: int = 10_000,
        as_epoch_us: frozenset[str] = frozenset(),
    ) -> Iterator[list[tuple[Any, ...]]]:
        """The newest row per entity with ``start <= event time <= end``.

        Rows come as tuples ``(*join_keys, event_ts_us, *features)``. Ties on the event
        time go to the row with the latest created timestamp. Features named in
        ``as_epoch_us`` (timestamp columns) come as integer microseconds.
        """
        mapping = source.field_mapping
        reverse = {target: column for column, target in mapping.items()}

        def column(name: str) -> str:
            return _ident(reverse.get(name, name))

        def feature(name: str) -> str:
            return f"epoch_us({column(name)})" if name in as_epoch_us else column(name)

        ts = f"epoch_us({_ident(source.timestamp_field)})"
        order = f"{ts} DESC"
        if source.created_timestamp_column:
            order += f", {_ident(source.created_timestamp_column)} DESC NULLS LAST"
        keys = ", ".join(column(k) for k in join_keys)
        selected = ", ".join([*(column(k) for k in join_keys), ts, *(feature(f) for f in features)])
        sql = (
            f"SELECT {selected} FROM {self._relation(source)} "
            f"WHERE {ts} BETWEEN ? AND ? "
            f"QUALIFY row_number() OVER (PARTITION BY {keys} ORDER BY {order}) = 1"
        )
        con = self._connect()
        try:
            cursor = con.execute(sql, [start_us, end_us])
            while True:
                batch = cursor.fetchmany(batch_size)
                if not batch:
                    break
                yield batch
        except duckdb.Error as exc:
            raise OfflineStoreError(f"cannot read source {source.name!r}: {exc}") from None
        finally:
            con.close()
