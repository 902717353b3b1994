"""Request parsers."""

from __future__ import annotations

import io
from collections.abc import Mapping
from typing import Any

from rest_framework.exceptions import ParseError, ValidationError
from rest_framework.parsers import JSONParser

from campaigns.ingest.jsonlimits import MAX_BYTES, JSONLimitError, check_json_text


class LenientJSONParser(JSONParser):
    """Accept the NaN and Infinity literals that Python's json.dumps writes by default, and refuse a body over the
    JSON limits (size, nesting depth) before parsing it.

    Strict parsing answers a bare "JSON parse error" that names no field; parsed leniently, the value reaches its
    field, which refuses it as non-finite and says which field it was. A body nested too deep is refused naming the
    top-level field the excess sits under: parsed, it would be a RecursionError (a 500) in the decoder or in any
    check walking the value after it.
    """

    strict = False

    def parse(self, stream: Any, media_type: str | None = None, parser_context: Mapping[str, Any] | None = None) -> Any:
        body = stream.read(MAX_BYTES + 1) if stream is not None else b""
        try:
            check_json_text(body)
        except JSONLimitError as exc:
            if exc.key is not None:
                raise ValidationError({exc.key: [exc.reason]}) from None
            raise ParseError(f"JSON parse error - the body {exc.reason}") from None
        return super().parse(io.BytesIO(body), media_type, parser_context)
