"""One error shape for the API: a JSON object naming the field (or the import file and line) and the reason.

- DRF validation errors keep DRF's `{"field": ["reason", ...]}`.
- Django `ValidationError`s raised by services with a dict `{field: reason}` become the same shape, so a business
  rule refused in a service reads like a serializer error; non-field ones go under `non_field_errors`.
- `ItemImportError` becomes `{"file", "line", "field", "reason"}`: the client can point at the offending row.
- A cycle state change the state machine refuses (`CycleConflict`, `InvalidTransition`) is a 409 with the service's
  reason; views catch these first to say it in the caller's terms, this is the net under them (never a 500).
- Everything else DRF knows (401, 403, 404, 405, 415, 429) stays `{"detail": "..."}`.
"""

from __future__ import annotations

from typing import Any

from django.core.exceptions import ValidationError as DjangoValidationError
from rest_framework import status
from rest_framework.exceptions import ValidationError
from rest_framework.response import Response
from rest_framework.serializers import as_serializer_error
from rest_framework.views import exception_handler as drf_exception_handler

from campaigns.ingest.rows import ItemImportError
from campaigns.services.cycles import CycleConflict, InvalidTransition


def exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    if isinstance(exc, ItemImportError):
        return Response(exc.as_dict(), status=status.HTTP_400_BAD_REQUEST)
    if isinstance(exc, CycleConflict | InvalidTransition):
        return Response({"detail": str(exc)}, status=status.HTTP_409_CONFLICT)
    if isinstance(exc, DjangoValidationError):
        exc = ValidationError(detail=as_serializer_error(exc))
    return drf_exception_handler(exc, context)


class ApiErrorsMixin:
    """Use `exception_handler` on this view, whatever REST_FRAMEWORK["EXCEPTION_HANDLER"] says."""

    def get_exception_handler(self) -> Any:
        return exception_handler
