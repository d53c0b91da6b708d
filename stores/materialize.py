"""Copy the latest offline row per entity into the online store.

The offline read streams in bounded batches and each batch is written through the
store's batched write path, so memory stays flat whatever the source size.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import msgspec

from registry.backend import RegistryBackend, ViewLocked
from registry.model import FeatureViewSpec, MaterializationSpec, PushSourceSpec, RegistrySnapshot
from stores import codec, timestamps
from stores.base import OnlineStore, WriteRow
from stores.keys import make_key_encoder
from stores.offline import FileOfflineStore
from stores.precompute import ViewVectors, vector_layouts

#: Rows per store write: each write is atomic, and Redis runs it as one script, so keep it
#: small enough not to stall readers.
WRITE_BATCH = 1000

#: Called as progress(view, entities done, entities in the window).
Progress = Callable[[str, int, int], None]


class MaterializeError(Exception):
    """A materialization request that cannot be carried out as asked."""


class MaterializationInProgress(MaterializeError):
    """Another run holds the view's lock."""


@dataclass
class ViewResult:
    view: str
    start_us: int
    end_us: int
    rows: int = 0
    written: int = 0


def _epoch_us(value: object) -> object:
    return value


def epoch_timestamp_features(view: FeatureViewSpec, columns: dict[str, str]) -> frozenset[str]:
    """UnixTimestamp features held in timestamp columns, read as epoch microseconds."""
    source = view.source.batch_source if isinstance(view.source, PushSourceSpec) else view.source
    reverse = {target: column for column, target in source.field_mapping.items()}
    return frozenset(
        f.name
        for f in view.features
        if f.dtype == "UnixTimestamp"
        and columns.get(reverse.get(f.name, f.name), "").upper().startswith(("TIMESTAMP", "DATE"))
    )


def view_writer(
    project: str,
    view: FeatureViewSpec,
    epoch_features: frozenset[str] = frozenset(),
    vectors: ViewVectors | None = None,
) -> Callable[[Sequence[object]], WriteRow]:
    """Turn an offline row ``(*join_keys, event_ts_us, *features)`` into a record, with
    its parts of the precomputed vectors that hold the view."""
    key_encoder = make_key_encoder(project, [(k.name, k.dtype) for k in view.join_keys])
    key_count = len(view.join_keys)
    features = [
        (f.name, _epoch_us if f.name in epoch_features else codec.offline_normalizer(f.dtype))
        for f in view.features
    ]
    key_normalizers = [codec.normalizer(k.dtype) for k in view.join_keys]

    def convert(row: Sequence[object]) -> WriteRow:
        keys = [norm(value) for norm, value in zip(key_normalizers, row[:key_count], strict=True)]
        event_ts = row[key_count]
        assert isinstance(event_ts, int)
        values = {
            name: norm(value)
            for (name, norm), value in zip(features, row[key_count + 1 :], strict=True)
        }
        record = codec.encode_record(event_ts, values)
        parts = vectors.parts(event_ts, values) if vectors else ()
        return WriteRow(key_encoder(keys), view.name, event_ts, record, parts)

    return convert


async def materialize_view(
    project: str,
    view: FeatureViewSpec,
    offline: FileOfflineStore,
    online: OnlineStore,
    start_us: int,
    end_us: int,
    progress: Progress | None = None,
    event_time_us: int | None = None,
    vectors: ViewVectors | None = None,
) -> ViewResult:
    """Stream one view's latest rows into the store, a batch at a time.

    DuckDB reads and record encoding run on one helper thread, so a server materializing
    keeps answering reads between batches. ``event_time_us`` replaces every row's event
    time (Feast's ``disable_event_timestamp``). ``vectors``: the precomputed vectors that
    hold the view, updated with its records.
    """
    source = view.source.batch_source if isinstance(view.source, PushSourceSpec) else view.source
    epoch_features = epoch_timestamp_features(view, offline.describe(source))
    convert = view_writer(project, view, epoch_features, vectors)
    key_count = len(view.join_keys)
    result = ViewResult(view.name, start_us, end_us)
    batches = offline.latest_rows(
        source,
        [k.name for k in view.join_keys],
        [f.name for f in view.features],
        start_us,
        end_us,
        as_epoch_us=epoch_features,
    )

    def next_batch() -> tuple[int, list[WriteRow]] | None:
        batch = next(batches, None)
        if batch is None:
            return None
        rows = []
        for raw in batch:
            if any(value is None for value in raw[:key_count]):
                continue  # a row without an entity key cannot be served
            if event_time_us is not None:
                raw = (*raw[:key_count], event_time_us, *raw[key_count + 1 :])
            try:
                rows.append(convert(raw))
            except (ValueError, TypeError, OverflowError) as exc:
                keys = ", ".join(repr(value) for value in raw[:key_count])
                raise MaterializeError(
                    f"feature view {view.name!r}: the offline row for {keys} does not fit "
                    f"the view's schema: {exc}"
                ) from None
        return len(batch), rows

    loop = asyncio.get_running_loop()
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="materialize") as reader:
        try:
            total = 0
            if progress:
                keys = [k.name for k in view.join_keys]
                total = await loop.run_in_executor(
                    reader, offline.count_entities, source, keys, start_us, end_us
                )
                progress(view.name, 0, total)
            while (item := await loop.run_in_executor(reader, next_batch)) is not None:
                count, rows = item
                result.rows += count
                for start in range(0, len(rows), WRITE_BATCH):
                    result.written += await online.write(rows[start : start + WRITE_BATCH])
                if progress:
                    progress(view.name, result.rows, total)
        finally:
            await loop.run_in_executor(reader, batches.close)
    return result


def select_views(snapshot: RegistrySnapshot, names: Sequence[str] | None) -> list[FeatureViewSpec]:
    if names:
        unknown = [n for n in names if n not in snapshot.feature_views]
        if unknown:
            raise MaterializeError(
                f"unknown feature view(s): {', '.join(unknown)}; "
                f"the registry has: {', '.join(sorted(snapshot.feature_views)) or 'none'}"
            )
        return [snapshot.feature_views[n] for n in names]
    return [v for v in snapshot.feature_views.values() if v.online]


def incremental_start(snapshot: RegistrySnapshot, view: FeatureViewSpec, end_us: int) -> int:
    """Where the last run ended; the first run goes back one ttl (or to the epoch)."""
    done = snapshot.materializations.get(view.name)
    if done is not None:
        return done.end_us
    if view.ttl_seconds:
        return end_us - int(view.ttl_seconds * 1_000_000)
    return 0


async def materialize(
    registry: RegistryBackend,
    offline: FileOfflineStore,
    online: OnlineStore,
    view_names: Sequence[str] | None,
    end_us: int,
    start_us: int | None = None,
    progress: Progress | None = None,
    *,
    force: bool = False,
    event_time_us: int | None = None,
) -> list[ViewResult]:
    """Materialize ``[start, end]``; without a start, each view continues where it ended.

    A view that another run is materializing raises MaterializationInProgress unless
    ``force``; views before it in the list are done and recorded.
    """
    if start_us is not None and start_us > end_us:
        raise MaterializeError(
            f"start {timestamps.format_us(start_us)} is after end {timestamps.format_us(end_us)}"
        )
    snapshot = await registry.load()
    views = select_views(snapshot, view_names)
    layouts = list(vector_layouts(snapshot).values())
    results: list[ViewResult] = []
    try:
        for view in views:
            start = start_us if start_us is not None else incremental_start(snapshot, view, end_us)
            if start > end_us:
                continue
            try:
                async with registry.view_lock(view.name, force):
                    results.append(
                        await materialize_view(
                            snapshot.project,
                            view,
                            offline,
                            online,
                            start,
                            end_us,
                            progress,
                            event_time_us,
                            ViewVectors(layouts, view.name),
                        )
                    )
            except ViewLocked as exc:
                raise MaterializationInProgress(str(exc)) from None
    finally:
        if results:
            await registry.update(_recorder(results))
    return results


def _recorder(results: list[ViewResult]) -> Callable[[RegistrySnapshot | None], RegistrySnapshot]:
    def record(current: RegistrySnapshot | None) -> RegistrySnapshot:
        if current is None:
            raise MaterializeError("the registry disappeared during materialization")
        windows = dict(current.materializations)
        for result in results:
            if result.view in current.feature_views:
                windows[result.view] = MaterializationSpec(result.start_us, result.end_us)
        return msgspec.structs.replace(current, materializations=windows)

    return record
