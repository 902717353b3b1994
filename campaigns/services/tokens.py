"""API tokens (DRF's authtoken, one per user): issued with a lifetime, revoked on request or with the password.

A token is a password that travels with every request, so it must not outlive the reason it was given:
- it expires `ALWEB_TOKEN_TTL` seconds after it was issued (checked on every request by
  `campaigns.api.authentication.ExpiringTokenAuthentication`); asking for a token then issues a new one;
- its owner can revoke it (`DELETE /api/auth/token/`);
- a password change deletes every token of the user (`RevokeTokensOnPasswordChange`), as Django ends the user's
  other sessions.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.utils import timezone
from rest_framework.authtoken.models import Token


def token_expires_at(*, token: Token) -> datetime:
    return token.created + timedelta(seconds=settings.ALWEB_TOKEN_TTL)


def token_expired(*, token: Token) -> bool:
    return timezone.now() >= token_expires_at(token=token)


def token_issue(*, user: AbstractBaseUser) -> Token:
    """The user's token: the current one while it is valid, else a new one (an expired token is deleted first, so
    its key can never work again)."""
    cutoff = timezone.now() - timedelta(seconds=settings.ALWEB_TOKEN_TTL)
    Token.objects.filter(user_id=user.pk, created__lte=cutoff).delete()
    token, _ = Token.objects.get_or_create(user_id=user.pk)  # get_or_create settles a concurrent first issue
    return token


def token_revoke(*, user: AbstractBaseUser) -> int:
    """Delete the user's token(s); the count deleted."""
    deleted, _ = Token.objects.filter(user_id=user.pk).delete()
    return deleted


class RevokeTokensOnPasswordChange:
    """Not a rule on passwords: the hook that deletes a user's API tokens when their password changes.

    Django calls `password_changed` on every entry of AUTH_PASSWORD_VALIDATORS from `AbstractBaseUser.save()` after
    `set_password()`: the one place every password change goes through (the admin's form, the dashboard's
    password change, `manage.py changepassword`, a script), and the only one that sees a change only when there is
    one. A post_save signal would fire on every save of a user and could not tell a new password from a new email;
    deleting tokens in each password view would miss the next way to change a password someone adds. A hash upgrade
    at login (Django re-hashing with more iterations) does not go through here, and keeps the token.
    """

    def validate(self, password: str, user: Any = None) -> None:
        return None

    def password_changed(self, password: str, user: Any = None) -> None:
        if user is not None and user.pk is not None:
            token_revoke(user=user)

    def get_help_text(self) -> str:
        return "Changing your password signs out your API token."
