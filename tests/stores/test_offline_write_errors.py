"""Telling a full disk from other offline write failures, with real ENOSPC from /dev/full."""

from __future__ import annotations

import errno
from pathlib import Path

import duckdb
import pytest

from stores.offline_write import out_of_space


def test_duckdb_and_os_errors_of_a_full_disk() -> None:
    con = duckdb.connect(":memory:")
    with pytest.raises(duckdb.Error) as duck:
        con.execute("COPY (SELECT 1 AS a) TO '/dev/full' (FORMAT parquet)")
    con.close()
    assert out_of_space(duck.value)
    with pytest.raises(OSError) as os_error, open("/dev/full", "wb") as full:
        full.write(b"x")
        full.flush()
    assert os_error.value.errno == errno.ENOSPC
    assert out_of_space(os_error.value)


def test_other_failures_are_not_a_full_disk(tmp_path: Path) -> None:
    con = duckdb.connect(":memory:")
    with pytest.raises(duckdb.Error) as duck:
        con.execute(f"COPY (SELECT 1 AS a) TO '{tmp_path}/no/such/dir/x.parquet' (FORMAT parquet)")
    con.close()
    assert not out_of_space(duck.value)
    assert not out_of_space(PermissionError(errno.EACCES, "Permission denied"))
    assert out_of_space(OSError(errno.EDQUOT, "Disk quota exceeded"))
