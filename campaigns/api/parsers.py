"""Request parsers."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from rest_framework.exceptions import ParseError
from rest_framework.parsers import JSONParser


class LenientJSONParser(JSONParser):
    """Accept the NaN and Infinity literals that Python's json.dumps writes by default.

    Strict parsing answers a bare "JSON parse error" that names no field; parsed leniently, the value reaches its
    field, which refuses it as non-finite and says which field it was.
    """

    strict = False

    def parse(self, stream: Any, media_type: str | None = None, parser_context: Mapping[str, Any] | None = None) -> Any:
        try:
            return super().parse(stream, media_type, parser_context)
        except RecursionError as exc:
            # json's decoder recurses per nesting level; a hostile body must be a 400, not a 500.
            raise ParseError("JSON parse error - nested too deeply") from exc
