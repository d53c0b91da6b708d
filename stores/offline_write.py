"""Append pushed rows to a FileSource as new Parquet files, each written atomically.

Rows land next to the source's data, where every later read of the source sees them:
- a single file ``data/stats.parquet`` gets a folder ``data/stats.parquet.d/``;
- a glob ``data/events/*.parquet`` gets its new files in ``data/events/``.
A file is written under a temporary name and renamed into place, so a reader sees all of
it or none of it.
"""

from __future__ import annotations

import errno
import os
import re
import uuid
from pathlib import Path
from typing import Any

import duckdb

from registry.model import FileSourceSpec
from stores.offline import OfflineStoreError, _ident, file_format, pushed_location


class OfflineStoreFull(OfflineStoreError):
    """The disk (or a quota, or a file size limit) has no room for the new file.

    A server fault that passes once space is freed: the request may be retried.
    """


_OUT_OF_SPACE = {errno.ENOSPC, errno.EDQUOT, errno.EFBIG}
#: DuckDB reports an OS error as text, with ``"errno":"28"`` in it.
_DUCKDB_ERRNO = re.compile(r'"errno"\s*:\s*"?(\d+)')


def out_of_space(exc: BaseException) -> bool:
    if isinstance(exc, OSError):
        return exc.errno in _OUT_OF_SPACE
    found = _DUCKDB_ERRNO.search(str(exc))
    if found:
        return int(found.group(1)) in _OUT_OF_SPACE
    return any(os.strerror(code) in str(exc) for code in _OUT_OF_SPACE)


def append_rows(
    resolved: str,
    source: FileSourceSpec,
    column_types: dict[str, str],
    columns: dict[str, list[Any]],
    timestamp_columns: set[str],
) -> Path:
    """Write one new file holding ``columns``; returns its path.

    ``column_types`` are the source's DuckDB types; columns it lacks are refused, columns
    the push lacks are written as nulls. ``timestamp_columns`` hold epoch microseconds.
    """
    if file_format(source) != "parquet":
        raise OfflineStoreError(f"source {source.name!r}: offline pushes need a Parquet source")
    unknown = [name for name in columns if name not in column_types]
    if unknown:
        raise OfflineStoreError(
            f"source {source.name!r} has no column(s) {', '.join(map(repr, unknown))}"
        )
    folder, _ = pushed_location(resolved)
    names = list(column_types)
    staged = {n: "BIGINT" if n in timestamp_columns else column_types[n] for n in names}
    count = len(next(iter(columns.values())))
    rows = []
    for i in range(count):
        row = []
        for name in names:
            value = columns[name][i] if name in columns else None
            if isinstance(value, dict) and column_types[name].upper().startswith("MAP"):
                value = {"key": list(value), "value": list(value.values())}
            row.append(value)
        rows.append(row)

    def select(name: str) -> str:
        if name not in timestamp_columns:
            return _ident(name)
        target = column_types[name]
        if target.upper().startswith(("TIMESTAMP", "DATE")):
            return f"CAST(make_timestamp({_ident(name)}) AS {target}) AS {_ident(name)}"
        return f"CAST({_ident(name)} // 1000000 AS {target}) AS {_ident(name)}"

    final = folder / f"part-{uuid.uuid4().hex}.parquet"
    temporary = folder / f".{final.name}.tmp"
    con = duckdb.connect(":memory:")
    try:
        folder.mkdir(parents=True, exist_ok=True)
        con.execute("SET TimeZone='UTC'")
        con.execute(
            "CREATE TABLE staged (" + ", ".join(f"{_ident(n)} {t}" for n, t in staged.items()) + ")"
        )
        con.executemany(f"INSERT INTO staged VALUES ({', '.join('?' * len(names))})", rows)
        target = str(temporary).replace("'", "''")
        con.execute(
            f"COPY (SELECT {', '.join(select(n) for n in names)} FROM staged) "
            f"TO '{target}' (FORMAT parquet)"
        )
        with open(temporary, "rb") as written:
            os.fsync(written.fileno())
        os.replace(temporary, final)
    except (duckdb.Error, OSError) as exc:
        temporary.unlink(missing_ok=True)
        kind = OfflineStoreFull if out_of_space(exc) else OfflineStoreError
        raise kind(f"cannot append to source {source.name!r}: {exc}") from None
    finally:
        con.close()
    return final
