"""Bearer-token authentication for hospital systems and site agents."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.utils import timezone
from rest_framework import authentication, exceptions

from pollen.accounts.models import ApiToken, TokenKind
from pollen.accounts.tokens import token_matches, token_split

LAST_USED_RESOLUTION = timedelta(minutes=1)


class TokenPrincipal:
    """Stands in for request.user when a token authenticates."""

    is_authenticated = True
    is_anonymous = False
    is_staff = False
    is_superuser = False
    is_active = True

    def __init__(self, token: ApiToken) -> None:
        self.token = token
        self.pk = None
        self.id = None
        self.username = f"token:{token.name}"

    def get_username(self) -> str:
        return self.username

    def __str__(self) -> str:
        return self.username


class ApiTokenAuthentication(authentication.BaseAuthentication):
    keywords = ("bearer", "token")

    def authenticate_header(self, request: Any) -> str:
        return 'Bearer realm="pollen"'

    def authenticate(self, request: Any) -> tuple[TokenPrincipal, ApiToken] | None:
        header = request.META.get("HTTP_AUTHORIZATION", "")
        if not header:
            return None
        parts = header.split()
        if len(parts) != 2 or parts[0].lower() not in self.keywords:
            raise exceptions.AuthenticationFailed(
                "Send the token as 'Authorization: Bearer <token>'.", code="invalid_token"
            )
        plaintext = parts[1]
        prefix = token_split(plaintext)
        token = (
            ApiToken.objects.select_related("site").filter(prefix=prefix).first()
            if prefix
            else None
        )
        if token is None or not token_matches(plaintext, token.digest):
            raise exceptions.AuthenticationFailed(
                "This API token is not valid. Check that it was copied whole, or create a new one.",
                code="invalid_token",
            )
        now = timezone.now()
        if token.revoked_at is not None:
            raise exceptions.AuthenticationFailed(
                "This API token was revoked. Ask your site administrator for a new one.",
                code="token_revoked",
            )
        if token.expires_at is not None and token.expires_at <= now:
            raise exceptions.AuthenticationFailed(
                "This API token has expired. Ask your site administrator for a new one.",
                code="token_expired",
            )
        if token.last_used_at is None or now - token.last_used_at > LAST_USED_RESOLUTION:
            ApiToken.objects.filter(pk=token.pk).update(last_used_at=now)
            token.last_used_at = now
        if token.kind == TokenKind.JOB:
            job_token_scope_check(request, token)
        return TokenPrincipal(token), token


def job_token_scope_check(request: Any, token: ApiToken) -> None:
    """Refuse a job token outside its job before any view, permission or validation runs.

    Checked here, at authentication, so that it holds for every endpoint, including one added
    later that forgets to ask: a view is open to job tokens only if it declares ``job_scope``
    (what its URL's ``pk`` names), and then only for the objects the token's job names.
    The refusal comes before the body is validated, so the caller learns nothing.
    """
    # Imported here: the caller module imports DRF, which loads this module from settings.
    from pollen.accounts.caller import caller_for_token

    match = getattr(request, "resolver_match", None)  # DRF's request proxies Django's
    view_class = getattr(getattr(match, "func", None), "view_class", None)
    caller = caller_for_token(token)
    caller.require_job_scope(
        getattr(view_class, "job_scope", None), match.kwargs.get("pk") if match else None
    )
    request._pollen_caller = caller  # caller_from_request would build the same one again
