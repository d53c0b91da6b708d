"""Run on-demand feature views: transformations over the columns a request has read.

Transformations run on the event loop, between the store read and the response, so they
must be quick (microseconds to a millisecond per request). Anything slow belongs in
``static_artifacts.py`` (loaded once per worker) or in an on-demand view with
``write_to_online_store=True``, which computes at write time instead.

A row whose inputs are not all present (not found, null, or past their ttl) is not given
to the transformation; its outputs are null with status NULL_VALUE. Outputs are checked
against the declared types; a transformation that raises or returns the wrong shape is a
server fault (500 naming the view), never a corrupt response.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from app.schemas import FeatureVector
from stores.codec import Normalizer, OutputConverter
from stores.timestamps import EPOCH_TEXT

log = logging.getLogger("ladle.transformations")

Transformation = Callable[[dict[str, Any]], dict[str, Any]]
PRESENT = "PRESENT"
NULL_VALUE = "NULL_VALUE"


class TransformationFailed(Exception):
    """A transformation raised or returned something its schema does not allow."""

    def __init__(self, view: str, problem: str) -> None:
        super().__init__(f"on-demand feature view {view!r} failed: {problem}")
        self.view = view


@dataclass(frozen=True, slots=True)
class OutputSlot:
    feature: str
    column: int
    normalize: Normalizer
    convert: OutputConverter | None


@dataclass(frozen=True, slots=True)
class TransformStep:
    name: str
    udf: Transformation
    singleton: bool
    #: (input name, column) for every stored input, by feature and by view__feature.
    inputs: tuple[tuple[str, int], ...]
    #: Request data fields, read from the entity columns of the same name.
    request_inputs: tuple[str, ...]
    outputs: tuple[OutputSlot, ...]


def run_transform(
    step: TransformStep,
    results: list[FeatureVector | None],
    entity_columns: dict[str, list[Any]],
    rows: int,
) -> None:
    """Fill ``results`` at the step's output columns."""
    columns: dict[str, list[Any]] = dict(entity_columns)
    ready = [True] * rows
    for name, column in step.inputs:
        vector = results[column]
        assert vector is not None
        columns[name] = list(vector.values)
        for row, status in enumerate(vector.statuses):
            if status != PRESENT:
                ready[row] = False
    for name in step.request_inputs:
        for row, value in enumerate(entity_columns[name]):
            if value is None:
                ready[row] = False
    chosen = [row for row in range(rows) if ready[row]]

    computed: dict[str, list[Any]] = {slot.feature: [None] * rows for slot in step.outputs}
    if chosen:
        produced = call_transformation(step, columns, chosen)
        for slot in step.outputs:
            values = produced[slot.feature]
            target = computed[slot.feature]
            for row, value in zip(chosen, values, strict=True):
                try:
                    target[row] = slot.normalize(value)
                except (ValueError, TypeError, OverflowError) as exc:
                    raise TransformationFailed(
                        step.name, f"output {slot.feature!r}: {exc}"
                    ) from None
    epochs = [EPOCH_TEXT] * rows
    for slot in step.outputs:
        values = computed[slot.feature]
        statuses = [PRESENT if v is not None else NULL_VALUE for v in values]
        if slot.convert is not None:
            values = [slot.convert(v) for v in values]
        results[slot.column] = FeatureVector(values, statuses, epochs)


def call_transformation(
    step: TransformStep, columns: dict[str, list[Any]], chosen: list[int]
) -> dict[str, list[Any]]:
    """Run the function on the ``chosen`` rows; outputs come back as lists per feature.

    Anything the function raises becomes TransformationFailed (logged with its traceback).
    """
    try:
        return _call(step, columns, chosen)
    except TransformationFailed:
        raise
    except Exception as exc:
        log.exception("on-demand feature view %r raised", step.name)
        raise TransformationFailed(step.name, f"{type(exc).__name__}: {exc}") from exc


def _call(
    step: TransformStep, columns: dict[str, list[Any]], chosen: list[int]
) -> dict[str, list[Any]]:
    if step.singleton:
        outputs: dict[str, list[Any]] = {slot.feature: [] for slot in step.outputs}
        for row in chosen:
            produced = step.udf({name: values[row] for name, values in columns.items()})
            _check_keys(step, produced)
            for slot in step.outputs:
                outputs[slot.feature].append(produced[slot.feature])
        return outputs
    batch = {name: [values[row] for row in chosen] for name, values in columns.items()}
    produced = step.udf(batch)
    _check_keys(step, produced)
    for slot in step.outputs:
        values = produced[slot.feature]
        if not isinstance(values, list | tuple) or len(values) != len(chosen):
            raise TransformationFailed(
                step.name,
                f"output {slot.feature!r} must be a list of {len(chosen)} values "
                "(one per row); use singleton=True for one row at a time",
            )
    return {slot.feature: list(produced[slot.feature]) for slot in step.outputs}


def _check_keys(step: TransformStep, produced: object) -> None:
    if not isinstance(produced, dict):
        raise TransformationFailed(step.name, f"returned {type(produced).__name__}, not a dict")
    missing = [slot.feature for slot in step.outputs if slot.feature not in produced]
    if missing:
        raise TransformationFailed(step.name, f"did not return {', '.join(map(repr, missing))}")
