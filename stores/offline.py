"""Offline store: DuckDB over a FileSource's Parquet or CSV files (paths or globs).

Used to check a view's schema against its data at ``ladle apply``, and to read the
latest row per entity for materialization, streamed in bounded batches.
"""

from __future__ import annotations

import glob
from collections.abc import Generator, Sequence
from pathlib import Path
from typing import Any

import duckdb

from registry.model import FileSourceSpec

#: DuckDB's memory cap for one offline read; past it, DuckDB spills to temporary files.
MEMORY_LIMIT = "1GB"


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


_GLOB_CHARS = set("*?[")


def pushed_location(resolved: str) -> tuple[Path, str]:
    """The folder new files go to, and the glob that reads them back."""
    path = Path(resolved)
    if _GLOB_CHARS & set(resolved):
        if path.name == "*.parquet" and not _GLOB_CHARS & set(str(path.parent)):
            return path.parent, resolved
        raise OfflineStoreError(
            f"cannot append to {resolved!r}: a glob source takes pushed rows only when it "
            "has the form 'folder/*.parquet'"
        )
    folder = path.parent / (path.name + ".d")
    return folder, str(folder / "*.parquet")


def extra_files(resolved: str) -> list[str]:
    """Pushed files of a single-file source, to read along with it."""
    if _GLOB_CHARS & set(resolved):
        return []
    folder, pattern = pushed_location(resolved)
    return [pattern] if folder.is_dir() and glob.glob(pattern) else []


_SCALAR_TYPES = {
    "BIGINT": "Int64",
    "INTEGER": "Int32",
    "SMALLINT": "Int32",
    "TINYINT": "Int32",
    "DOUBLE": "Float64",
    "FLOAT": "Float32",
    "REAL": "Float32",
    "VARCHAR": "String",
    "BLOB": "Bytes",
    "BOOLEAN": "Bool",
    "JSON": "Json",
}


def dtype_for_column(column_type: str) -> str | None:
    """The feature type that holds a DuckDB column type's values, or None if there is none.

    Timestamp columns map to "timestamp" (epoch microseconds, as event times are held).
    """
    upper = column_type.upper()
    if upper.startswith(("TIMESTAMP", "DATE")):
        return "timestamp"
    if upper.startswith(("MAP", "STRUCT")):
        return "Map"
    if upper.endswith("[]"):
        element = _SCALAR_TYPES.get(upper[:-2])
        return f"Array({element})" if element and element != "Json" else None
    return _SCALAR_TYPES.get(upper)


class FileOfflineStore:
    """Reads FileSources relative to a repo folder."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def resolve(self, source: FileSourceSpec) -> str:
        path = Path(source.path).expanduser()
        return str(path if path.is_absolute() else self.root / path)

    def _relation(self, source: FileSourceSpec, row_ids: bool = False) -> str:
        """The source as a DuckDB table function; ``row_ids`` adds Parquet's ``filename``
        and ``file_row_number`` columns, which name a row without holding its values."""
        resolved = self.resolve(source)
        if file_format(source) == "csv":
            return f"read_csv({_literal(resolved)}, union_by_name=true, header=true)"
        paths = ", ".join(_literal(p) for p in [resolved, *extra_files(resolved)])
        ids = ", filename=true, file_row_number=true" if row_ids else ""
        return f"read_parquet([{paths}], union_by_name=true{ids})"

    def _connect(self) -> duckdb.DuckDBPyConnection:
        # A bounded memory limit makes DuckDB spill large windows to disk instead of
        # taking most of the machine; insertion order is not needed for "latest per key".
        con = duckdb.connect(
            ":memory:", config={"memory_limit": MEMORY_LIMIT, "preserve_insertion_order": False}
        )
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

    def count_entities(
        self, source: FileSourceSpec, join_keys: Sequence[str], start_us: int, end_us: int
    ) -> int:
        """How many distinct entities have a row in the window (for progress reports)."""
        reverse = {target: column for column, target in source.field_mapping.items()}
        keys = ", ".join(_ident(reverse.get(k, k)) for k in join_keys)
        ts = f"epoch_us({_ident(source.timestamp_field)})"
        con = self._connect()
        try:
            row = con.execute(
                f"SELECT count(*) FROM (SELECT DISTINCT {keys} FROM {self._relation(source)} "
                f"WHERE {ts} BETWEEN ? AND ?)",
                [start_us, end_us],
            ).fetchone()
        except duckdb.Error as exc:
            raise OfflineStoreError(f"cannot read source {source.name!r}: {exc}") from None
        finally:
            con.close()
        return int(row[0]) if row else 0

    def latest_rows(
        self,
        source: FileSourceSpec,
        join_keys: Sequence[str],
        features: Sequence[str],
        start_us: int,
        end_us: int,
        batch_size: int = 10_000,
        as_epoch_us: frozenset[str] = frozenset(),
    ) -> Generator[list[tuple[Any, ...]], None, None]:
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
        created = (
            f"coalesce(epoch_us({_ident(source.created_timestamp_column)}), {-(2**63) + 1})"
            if source.created_timestamp_column
            else "0"
        )
        keys = ", ".join(column(k) for k in join_keys)
        selected = ", ".join([keys, ts, *(feature(f) for f in features)])
        window = f"{ts} BETWEEN $start AND $end"
        order = f"struct_pack(t := {ts}, c := {created})"
        if file_format(source) == "parquet":
            # Two passes, so that memory follows the number of entities, not of rows: the
            # first keeps only the position of each entity's newest row, the second reads
            # those rows back.
            sql = (
                f"WITH newest AS (SELECT arg_max(struct_pack(f := filename, "
                f"r := file_row_number), {order}) AS pick "
                f"FROM {self._relation(source, row_ids=True)} WHERE {window} GROUP BY {keys}) "
                f"SELECT {selected} FROM {self._relation(source, row_ids=True)} "
                f"WHERE {window} AND struct_pack(f := filename, r := file_row_number) "
                f"IN (SELECT pick FROM newest)"
            )
        else:
            values = ", ".join(
                f"c{i} := {expr}" for i, expr in enumerate([ts, *(feature(f) for f in features)])
            )
            sql = (
                f"SELECT {keys}, latest.* FROM (SELECT {keys}, arg_max(struct_pack({values}), "
                f"{order}) AS latest FROM {self._relation(source)} WHERE {window} "
                f"GROUP BY {keys})"
            )
        con = self._connect()
        try:
            cursor = con.execute(sql, {"start": start_us, "end": end_us})
            while True:
                batch = cursor.fetchmany(batch_size)
                if not batch:
                    break
                yield batch
        except duckdb.Error as exc:
            raise OfflineStoreError(f"cannot read source {source.name!r}: {exc}") from None
        finally:
            con.close()
