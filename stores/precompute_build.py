"""``ladle precompute``: rebuild every vector of a feature service from its view records.

Safe while servers read and write: each vector is built from the records as read, and
written only if those records are still the same (checked inside the store, atomically
with the write); entities written in between are read again. Writes made meanwhile keep
vectors current themselves (stores.vectors). When every entity is done, the registry
records the layout's fingerprint, and servers start answering from the vectors.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import msgspec

from registry.backend import RegistryBackend
from registry.model import RegistrySnapshot
from stores import codec
from stores.base import OnlineStore, ReadBatch, VectorWrite
from stores.keys import project_prefix
from stores.precompute import VectorLayout, build_vector, vector_layout

#: Entities per read and per checked write.
BATCH = 500
#: Reads of one batch before giving up on entities that change faster than they build.
MAX_ATTEMPTS = 100

#: Called as progress(service, entity keys done, entity keys in total).
Progress = Callable[[str, int, int], None]


class PrecomputeError(Exception):
    """A rebuild that cannot be carried out as asked."""


@dataclass
class PrecomputeResult:
    service: str
    fingerprint: str
    scanned: int = 0  # entity keys looked at
    written: int = 0  # vectors written
    dropped: int = 0  # vectors removed: the entity has no records left
    retried: int = 0  # entities read again because a write changed them meanwhile


def check_services(snapshot: RegistrySnapshot, names: Sequence[str]) -> None:
    for name in names:
        spec = snapshot.feature_services.get(name)
        if spec is None:
            known = sorted(n for n, s in snapshot.feature_services.items() if s.precompute_online)
            raise PrecomputeError(
                f"unknown feature service {name!r}; services with precompute_online: "
                f"{', '.join(known) or 'none'}"
            )
        if not spec.precompute_online:
            raise PrecomputeError(
                f"feature service {name!r} does not have precompute_online=True; "
                "set it in the repo and run `ladle apply` first"
            )


async def precompute(
    registry: RegistryBackend,
    store: OnlineStore,
    names: Sequence[str],
    progress: Progress | None = None,
) -> list[PrecomputeResult]:
    """Rebuild each service's vectors, then record each as built in the registry."""
    snapshot = await registry.load()
    check_services(snapshot, names)
    results = []
    for name in names:
        layout = vector_layout(snapshot, snapshot.feature_services[name])
        result = await rebuild(snapshot.project, layout, store, progress)
        await registry.update(_recorder(layout))
        results.append(result)
    return results


async def rebuild(
    project: str, layout: VectorLayout, store: OnlineStore, progress: Progress | None = None
) -> PrecomputeResult:
    result = PrecomputeResult(layout.service, layout.fingerprint)
    # Keys start with their first join key by name (stores.keys): only those can hold it.
    first_key = min(name for name, _ in layout.join_keys)
    prefix = project_prefix(project) + f"{first_key}=".encode()
    total = await store.count_keys(prefix) if progress else 0
    if progress:
        progress(layout.service, 0, total)
    async for keys in store.scan_keys(prefix, BATCH):
        pending = keys
        for _ in range(MAX_ATTEMPTS):
            pending = await _build_batch(layout, store, pending, result)
            if not pending:
                break
            result.retried += len(pending)
        else:
            raise PrecomputeError(
                f"feature service {layout.service!r}: {len(pending)} entities changed on "
                f"every one of {MAX_ATTEMPTS} attempts to build their vectors; try again"
            )
        result.scanned += len(keys)
        if progress:
            progress(layout.service, result.scanned, max(total, result.scanned))
    return result


async def _build_batch(
    layout: VectorLayout, store: OnlineStore, keys: list[bytes], result: PrecomputeResult
) -> list[bytes]:
    """Build and write the vectors of ``keys``; returns the keys to read again."""
    views = layout.views
    (found,) = await store.read([ReadBatch(keys, (*views, layout.field))])
    writes = []
    for key, stored in zip(keys, found, strict=True):
        records, current = stored[:-1], stored[-1]
        digests = tuple(
            (view, hashlib.sha1(record).hexdigest() if record is not None else "")
            for view, record in zip(views, records, strict=True)
        )
        if all(record is None for record in records):
            if current is not None:  # no records left: the vector goes too
                writes.append(VectorWrite(key, layout.field, None, layout.views_csv, digests))
            continue
        try:
            decoded = {
                view: codec.decode_record(record)
                for view, record in zip(views, records, strict=True)
                if record is not None
            }
        except msgspec.DecodeError as exc:
            raise PrecomputeError(f"entity key {key!r} holds an unreadable record: {exc}") from None
        vector = build_vector(layout, decoded)
        writes.append(VectorWrite(key, layout.field, vector, layout.views_csv, digests))
    done = await store.write_vectors(writes)
    for write, ok in zip(writes, done, strict=True):
        if ok and write.vector is None:
            result.dropped += 1
        elif ok:
            result.written += 1
    return [write.key for write, ok in zip(writes, done, strict=True) if not ok]


def _recorder(layout: VectorLayout) -> Callable[[RegistrySnapshot | None], RegistrySnapshot]:
    def record(current: RegistrySnapshot | None) -> RegistrySnapshot:
        spec = current.feature_services.get(layout.service) if current else None
        if (
            current is None
            or spec is None
            or not spec.precompute_online
            or vector_layout(current, spec).fingerprint != layout.fingerprint
        ):
            raise PrecomputeError(
                f"feature service {layout.service!r} changed (ladle apply) while its vectors "
                f"were built; run `ladle precompute {layout.service}` again"
            )
        built = {**current.precomputed, layout.service: layout.fingerprint}
        return msgspec.structs.replace(current, precomputed=built)

    return record
