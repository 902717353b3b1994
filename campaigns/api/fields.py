"""Strict serializer fields: a JSON API should reject a wrong type, not coerce it.

DRF's CharField turns 5 into "5", IntegerField takes "5" and 5.0, FloatField takes true as 1.0; each hides a client's
mistake, so these fields accept only the JSON type they name and say which type they wanted.
"""

from __future__ import annotations

import json
from typing import Any

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from campaigns.ingest.jsonlimits import MAX_DEPTH, JSONLimitError, check_json_text, json_depth
from campaigns.ingest.rows import has_nul


class StrictCharField(serializers.CharField):
    default_error_messages = {"invalid": "Must be a string."}

    def to_internal_value(self, data: Any) -> str:
        if not isinstance(data, str):
            self.fail("invalid")
        return super().to_internal_value(data)


class StrictIntegerField(serializers.IntegerField):
    default_error_messages = {"invalid": "Must be an integer."}

    def to_internal_value(self, data: Any) -> int:
        if isinstance(data, bool) or not isinstance(data, int):
            self.fail("invalid")
        return super().to_internal_value(data)


class StrictFloatField(serializers.FloatField):
    """A finite JSON number (DRF's FloatField already refuses NaN and infinities, "NaN" strings included)."""

    default_error_messages = {"invalid": "Must be a finite number."}

    def to_internal_value(self, data: Any) -> float:
        if isinstance(data, bool) or not isinstance(data, int | float):
            self.fail("invalid")
        return super().to_internal_value(data)


class StrictBooleanField(serializers.BooleanField):
    """true or false only: DRF's BooleanField also takes "yes", "0" and 1, and a flag set by accident is worse than
    a 400 (for query strings, where everything is a string, the plain BooleanField is the right one)."""

    default_error_messages = {"invalid": "Must be true or false."}

    def to_internal_value(self, data: Any) -> bool:
        if not isinstance(data, bool):
            self.fail("invalid")
        return data


@extend_schema_field(OpenApiTypes.OBJECT)  # not "any value": null and lists are refused, so the schema says so
class JSONObjectField(serializers.JSONField):
    """A JSON object, stored as is: finite numbers only (Postgres jsonb refuses NaN, and 1e999 parses as infinity)."""

    default_error_messages = {
        "not_object": "Must be a JSON object.",
        "not_finite": "Must not contain NaN or infinite numbers.",
        "too_large": "Must be at most {max_bytes} bytes as JSON.",
        "nul": "Must not contain NUL characters.",
        "limit": "JSON {reason}.",
    }

    def __init__(self, *, max_bytes: int = 65536, **kwargs: Any) -> None:
        self.max_bytes = max_bytes
        super().__init__(**kwargs)

    def to_internal_value(self, data: Any) -> dict[str, Any]:
        # A form field's JSON text is parsed here, not by the JSON parser: bounded here first, for the same reason.
        try:
            if isinstance(data, str | bytes):
                check_json_text(data, max_bytes=self.max_bytes)
            elif json_depth(data) > MAX_DEPTH:
                raise JSONLimitError(f"must not nest deeper than {MAX_DEPTH} levels")
        except JSONLimitError as exc:
            self.fail("limit", reason=exc.reason)
        value = super().to_internal_value(data)
        if not isinstance(value, dict):
            self.fail("not_object")
        try:
            dumped = json.dumps(value, allow_nan=False)
        except ValueError:
            self.fail("not_finite")
        if has_nul(value):  # Postgres text and jsonb cannot hold U+0000: refused here, not in the database
            self.fail("nul")
        if len(dumped) > self.max_bytes:
            self.fail("too_large", max_bytes=self.max_bytes)
        return value
