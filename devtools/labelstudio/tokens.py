"""Obtain and keep Label Studio API tokens: a personal access token (JWT refresh token) and a legacy token.

LS 1.23 has no API to create the first token from a password: a user logs in through the web form (session +
CSRF), then `POST /api/token/` creates the personal access token and `GET /api/current-user/token` reads the
legacy one. Only one unexpired PAT may exist per user (409 otherwise) and LS stores it truncated (no signature),
so a lost PAT cannot be read back: it is revoked (`/api/token/blacklist/` accepts the truncated form that
`GET /api/token/` lists) and a new one is created. Tokens are kept in the data dir so restarts skip all this.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import requests

TIMEOUT_S = 15.0
PasswordReset = Callable[[str, str], None]


class TokenError(RuntimeError):
    """Logging in to Label Studio or creating a token failed."""


@dataclass(frozen=True)
class Credentials:
    pat: str
    legacy_token: str


def is_healthy(url: str, timeout: float = 2.0) -> bool:
    try:
        return requests.get(f"{url}/health", timeout=timeout).status_code == 200
    except requests.RequestException:
        return False


def load_credentials(path: Path) -> dict[str, str]:
    try:
        data = json.loads(Path(path).read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return {}
    return {k: str(v) for k, v in data.items()} if isinstance(data, dict) else {}


def save_credentials(path: Path, data: dict[str, str]) -> None:
    """Write atomically with mode 0600: the file holds a password and two API tokens."""
    path = Path(path)
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        json.dump(data, fh, indent=2)
    os.replace(tmp, path)


def pat_is_valid(url: str, pat: str) -> bool:
    """A PAT is valid if LS exchanges it for an access token (what the SDK does on its first call)."""
    if not pat:
        return False
    try:
        r = requests.post(f"{url}/api/token/refresh/", json={"refresh": pat}, timeout=TIMEOUT_S)
    except requests.RequestException:
        return False
    return r.status_code == 200


def legacy_token_is_valid(url: str, token: str) -> bool:
    if not token:
        return False
    try:
        r = requests.get(
            f"{url}/api/current-user/whoami", headers={"Authorization": f"Token {token}"}, timeout=TIMEOUT_S
        )
    except requests.RequestException:
        return False
    return r.status_code == 200


def obtain_tokens(
    url: str,
    username: str,
    password: str,
    credentials_path: Path,
    *,
    reset_password: PasswordReset | None = None,
) -> Credentials:
    """Return working PAT and legacy tokens for `username`, reusing the stored ones when they still work."""
    stored = load_credentials(credentials_path)
    same_user = stored.get("username") == username and stored.get("password") == password
    if (
        same_user
        and pat_is_valid(url, stored.get("pat", ""))
        and legacy_token_is_valid(url, stored.get("legacy_token", ""))
    ):
        creds = Credentials(stored["pat"], stored["legacy_token"])
    else:
        session = _login(url, username, password, reset_password)
        _enable_legacy_tokens(session, url)
        legacy = _json(session.get(f"{url}/api/current-user/token", timeout=TIMEOUT_S), "read legacy token")["token"]
        pat = stored.get("pat", "") if same_user and pat_is_valid(url, stored.get("pat", "")) else ""
        creds = Credentials(pat or _create_pat(session, url), str(legacy))
    save_credentials(
        credentials_path,
        {"url": url, "username": username, "password": password, "pat": creds.pat, "legacy_token": creds.legacy_token},
    )
    return creds


def _login(url: str, username: str, password: str, reset_password: PasswordReset | None) -> requests.Session:
    session = _try_login(url, username, password)
    if session is None and reset_password is not None:
        reset_password(username, password)
        session = _try_login(url, username, password)
    if session is None:
        raise TokenError(
            f"cannot log in to {url} as {username}: wrong password for an existing data dir? "
            "(`label-studio reset_password --username U --password P` with LABEL_STUDIO_BASE_DATA_DIR set)"
        )
    return session


def _try_login(url: str, username: str, password: str) -> requests.Session | None:
    session = requests.Session()
    session.get(f"{url}/user/login/", timeout=TIMEOUT_S).raise_for_status()  # sets the csrftoken cookie
    r = session.post(
        f"{url}/user/login/",
        data={"email": username, "password": password, "csrfmiddlewaretoken": _csrf(session)},
        allow_redirects=False,
        timeout=TIMEOUT_S,
    )
    # Success redirects (302) and sets the session cookie; a failed login re-renders the form with 200.
    if r.status_code != 302 or "sessionid" not in session.cookies:
        return None
    # DRF's SessionAuthentication enforces CSRF on unsafe methods; Django rotated the token at login.
    session.headers["X-CSRFToken"] = _csrf(session)
    session.headers["Referer"] = f"{url}/"
    return session


def _csrf(session: requests.Session) -> str:
    value = ""
    for cookie in session.cookies:  # `.get` raises on duplicates (one per path); the latest one wins
        if cookie.name == "csrftoken" and cookie.value:
            value = cookie.value
    return value


def _enable_legacy_tokens(session: requests.Session, url: str) -> None:
    """The env flag only applies when the organization is created: fix an older data dir through the API."""
    settings = _json(session.get(f"{url}/api/jwt/settings", timeout=TIMEOUT_S), "read JWT settings")
    if not settings.get("legacy_api_tokens_enabled") or not settings.get("api_tokens_enabled"):
        body = {"api_tokens_enabled": True, "legacy_api_tokens_enabled": True}
        _json(session.post(f"{url}/api/jwt/settings", json=body, timeout=TIMEOUT_S), "enable legacy tokens")


def _create_pat(session: requests.Session, url: str) -> str:
    r = session.post(f"{url}/api/token/", timeout=TIMEOUT_S)
    if r.status_code == 409:  # one valid PAT per user, and we don't hold it: revoke, then create
        for item in _json(session.get(f"{url}/api/token/", timeout=TIMEOUT_S), "list tokens"):
            session.post(f"{url}/api/token/blacklist/", json={"refresh": item["token"]}, timeout=TIMEOUT_S)
        r = session.post(f"{url}/api/token/", timeout=TIMEOUT_S)
    return str(_json(r, "create personal access token")["token"])


def _json(r: requests.Response, what: str) -> Any:
    if r.status_code >= 400:
        raise TokenError(f"{what}: {r.request.method} {r.url} -> {r.status_code} {r.text[:300]}")
    return r.json()
