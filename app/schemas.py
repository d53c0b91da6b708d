"""Request and response bodies of the read API, as msgspec structs (Feast's JSON shapes)."""

from __future__ import annotations

from typing import Any

import msgspec


class GetOnlineFeaturesRequest(msgspec.Struct):
    #: Columnar entity rows: join key -> one value per row. Columns are checked by
    #: app.entities.check_shape, which can name the offending key.
    entities: dict[str, Any]
    features: list[str] = []
    feature_service: str | None = None
    full_feature_names: bool = False
    include_feature_view_version_metadata: bool = False


class FeatureVector(msgspec.Struct):
    """One output column: a value, a status and an event timestamp per entity row."""

    values: list[Any]
    statuses: list[str]
    event_timestamps: list[str]


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
