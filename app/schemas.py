"""Request and response bodies of the read API, as msgspec structs (Feast's JSON shapes)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated, Any

import msgspec

#: A columnar frame as the API takes it: column name -> one value per row. Declared as a
#: plain mapping so that app.entities and stores.columns can name the offending column.
Columns = Annotated[
    dict[str, Any],
    msgspec.Meta(
        extra_json_schema={
            "minProperties": 1,
            "additionalProperties": {"type": "array", "minItems": 1},
        }
    ),
]
Status = Annotated[
    str,
    msgspec.Meta(
        extra_json_schema={"enum": ["PRESENT", "NOT_FOUND", "NULL_VALUE", "OUTSIDE_MAX_AGE"]}
    ),
]
Timestamp = Annotated[str, msgspec.Meta(extra_json_schema={"format": "date-time"})]


class GetOnlineFeaturesRequest(msgspec.Struct):
    """Entity rows (join keys and request data, columnar) and the features to read."""

    #: Columns are checked by app.entities.check_shape, which can name the offending key.
    entities: Columns
    features: list[str] = []
    feature_service: str | None = None
    full_feature_names: bool = False
    include_feature_view_version_metadata: bool = False


class FeatureVector(msgspec.Struct):
    """One output column: a value, a status and an event timestamp per entity row."""

    #: A list, or a tuple where the read path builds columns with zip (encoded the same).
    values: Sequence[Any]
    statuses: list[Status]
    event_timestamps: list[Timestamp]


class FeatureViewMetadata(msgspec.Struct):
    name: str


class ResponseMetadata(msgspec.Struct, omit_defaults=True):
    feature_names: list[str]
    feature_view_metadata: list[FeatureViewMetadata] | msgspec.UnsetType = msgspec.UNSET


class GetOnlineFeaturesResponse(msgspec.Struct):
    results: list[FeatureVector]
    metadata: ResponseMetadata


request_decoder = msgspec.json.Decoder(GetOnlineFeaturesRequest)
response_encoder = msgspec.json.Encoder()
