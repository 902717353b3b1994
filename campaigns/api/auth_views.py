"""/api/auth/token/: a token for a username and password (POST), revoked by its holder (DELETE)."""

from __future__ import annotations

from typing import Any, cast

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from drf_spectacular.utils import OpenApiResponse, extend_schema, extend_schema_view
from rest_framework import serializers, status
from rest_framework.authtoken.serializers import AuthTokenSerializer
from rest_framework.authtoken.views import ObtainAuthToken
from rest_framework.exceptions import APIException, ValidationError
from rest_framework.permissions import IsAuthenticated
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.throttling import SimpleRateThrottle

from alweb.auth import client_ip, lockout_message
from campaigns.api.common import FIELD_ERRORS
from campaigns.api.errors import ApiErrorsMixin
from campaigns.services.tokens import token_expires_at, token_issue, token_revoke

TOKEN_REFUSED = OpenApiResponse(description="No valid token: none, unknown, revoked or expired (`detail` says which).")
LOCKED_OUT = OpenApiResponse(
    description="Too many requests from this address, or too many failed logins for this username or address."
)


class TokenThrottle(SimpleRateThrottle):
    """At most 30 requests a minute per client address, with a token or without: DRF's AnonRateThrottle skipped
    any request carrying a valid token, and keyed on X-Forwarded-For as the client sent it. Wrong passwords are
    counted apart, per username and per address, by django-axes (settings AXES_*)."""

    scope = "auth-token"
    rate = "30/min"

    def get_cache_key(self, request: Request, view: Any) -> str:
        return self.cache_format % {"scope": self.scope, "ident": client_ip(request)}


class LockedOut(APIException):
    status_code = status.HTTP_429_TOO_MANY_REQUESTS
    default_code = "locked_out"

    def __init__(self) -> None:
        super().__init__(lockout_message())
        self.wait = settings.ALWEB_LOGIN_LOCKOUT_SECONDS  # DRF's handler sends it as Retry-After


class TokenResponseSerializer(serializers.Serializer):
    token = serializers.CharField()
    expires = serializers.DateTimeField(help_text="When the token stops working: ALWEB_TOKEN_TTL after it was issued.")


@extend_schema(tags=["auth"])
@extend_schema_view(
    post=extend_schema(
        request=AuthTokenSerializer,
        responses={200: TokenResponseSerializer, 400: FIELD_ERRORS, 429: LOCKED_OUT},
    ),
    delete=extend_schema(
        request=None,
        responses={204: OpenApiResponse(description="The token is revoked."), 401: TOKEN_REFUSED},
    ),
)
class TokenView(ApiErrorsMixin, ObtainAuthToken):
    """POST: exchange a username and password for an API token (send it as `Authorization: Token <key>`); it
    stops working after ALWEB_TOKEN_TTL seconds and when the password changes. DELETE: revoke the caller's token."""

    throttle_classes = [TokenThrottle]

    def get_permissions(self) -> list[Any]:
        return [IsAuthenticated()] if self.request.method == "DELETE" else []

    def post(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        serializer = self.get_serializer(data=request.data)
        if not serializer.is_valid():
            # django-axes flags the request it refused, or whose failure reached the limit (AuthTokenSerializer
            # authenticates with the DRF request, which holds the flag; its middleware sees only Django's).
            if getattr(request, "axes_locked_out", False):
                raise LockedOut
            raise ValidationError(serializer.errors)
        token = token_issue(user=serializer.validated_data["user"])
        return Response(TokenResponseSerializer({"token": token.key, "expires": token_expires_at(token=token)}).data)

    def delete(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        token_revoke(user=cast(AbstractBaseUser, request.user))
        return Response(status=status.HTTP_204_NO_CONTENT)
