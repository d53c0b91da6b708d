"""Turn validated columns into online records for a feature view.

A writer is built once per view and registry version: it knows which columns the view
needs, their types, and how to encode the entity keys.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

from registry.model import FeatureViewSpec, FileSourceSpec, PushSourceSpec
from stores import codec
from stores.base import WriteRow
from stores.columns import ColumnSpec
from stores.keys import make_key_encoder
from stores.precompute import ViewVectors


def batch_source(view: FeatureViewSpec) -> FileSourceSpec:
    return view.source.batch_source if isinstance(view.source, PushSourceSpec) else view.source


_NEVER = -(2**63)


class ViewWriter:
    def __init__(
        self, project: str, view: FeatureViewSpec, vectors: ViewVectors | None = None
    ) -> None:
        self.view = view
        #: The precomputed vectors that hold this view (stores.precompute).
        self.vectors = vectors
        source = batch_source(view)
        self.timestamp_field = source.timestamp_field
        self.created_column = source.created_timestamp_column
        self.columns: list[ColumnSpec] = [
            *(ColumnSpec(k.name, k.dtype, nullable=False) for k in view.join_keys),
            ColumnSpec(source.timestamp_field, "timestamp", nullable=False),
            *(ColumnSpec(f.name, f.dtype) for f in view.features),
        ]
        if source.created_timestamp_column:
            self.columns.append(
                ColumnSpec(source.created_timestamp_column, "timestamp", required=False)
            )
        self._encode = make_key_encoder(project, [(k.name, k.dtype) for k in view.join_keys])
        self._keys = [k.name for k in view.join_keys]
        self._features = [f.name for f in view.features]

    def rows(self, columns: dict[str, list[Any]], count: int) -> list[WriteRow]:
        """Records for validated columns; within one call the newest row per entity wins."""
        features = [(name, columns[name]) for name in self._features]
        return self.records(self.view.name, features, columns, count, self.vectors)

    def records(
        self,
        view: str,
        features: list[tuple[str, list[Any]]],
        columns: dict[str, list[Any]],
        count: int,
        vectors: ViewVectors | None = None,
    ) -> list[WriteRow]:
        """Records of ``view`` keyed and timed like this view's rows (also used for the
        on-demand views computed from them), with their parts of ``vectors``."""
        key_columns = [columns[k] for k in self._keys]
        event_ts = columns[self.timestamp_field]
        # Ties on the event time go to the newer created time, then to the later row.
        created = columns.get(self.created_column) or [None] * count
        newest: dict[bytes, tuple[int, int, int]] = {}
        for row in range(count):
            key = self._encode([col[row] for col in key_columns])
            rank = (event_ts[row], created[row] if created[row] is not None else _NEVER, row)
            seen = newest.get(key)
            if seen is None or rank >= seen:
                newest[key] = rank
        rows = []
        for key, (ts, _, row) in newest.items():
            values = {name: column[row] for name, column in features}
            parts = vectors.parts(ts, values) if vectors else ()
            rows.append(WriteRow(key, view, ts, codec.encode_record(ts, values), parts))
        return rows


class RecordWriter(Protocol):
    columns: list[ColumnSpec]

    def rows(self, columns: dict[str, list[Any]], count: int) -> list[WriteRow]: ...


def merged_columns(writers: Sequence[RecordWriter]) -> list[ColumnSpec]:
    """The union of several views' columns (views of one push source share most)."""
    seen: dict[str, ColumnSpec] = {}
    for writer in writers:
        for column in writer.columns:
            seen.setdefault(column.name, column)
    return list(seen.values())
