"""Token authentication with an expiry: DRF's tokens never expire on their own (see campaigns.services.tokens)."""

from __future__ import annotations

from typing import Any

from rest_framework.authentication import TokenAuthentication
from rest_framework.exceptions import AuthenticationFailed

from campaigns.services.tokens import token_expired

TOKEN_EXPIRED = "Token expired: ask POST /api/auth/token/ for a new one."


class ExpiringTokenAuthentication(TokenAuthentication):
    """`Authorization: Token <key>`, refused with 401 once the token is older than ALWEB_TOKEN_TTL.

    A revoked token, or one deleted by a password change, no longer exists: DRF's "Invalid token." (401).
    """

    def authenticate_credentials(self, key: str) -> tuple[Any, Any]:
        user, token = super().authenticate_credentials(key)
        if token_expired(token=token):
            raise AuthenticationFailed(TOKEN_EXPIRED)
        return user, token
