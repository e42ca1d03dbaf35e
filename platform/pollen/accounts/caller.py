"""Who is calling, and at which sites: the one place tenancy decisions start from."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from pollen.accounts.models import ApiToken, Membership, Role, Site, TokenKind
from pollen.core.errors import Forbidden, NotFound


@dataclass(frozen=True)
class Caller:
    user_id: int | None
    username: str
    token: ApiToken | None
    roles: dict[int, str] = field(default_factory=dict)  # site id -> role
    slugs: dict[int, str] = field(default_factory=dict)  # site id -> slug

    @property
    def site_ids(self) -> set[int]:
        return set(self.roles)

    @property
    def is_agent(self) -> bool:
        return self.token is not None and self.token.kind in {TokenKind.AGENT, TokenKind.JOB}

    @property
    def is_person_or_system(self) -> bool:
        return self.token is None or self.token.kind == TokenKind.SYSTEM

    @property
    def job_id(self) -> int | None:
        return (
            self.token.job_id
            if self.token is not None and self.token.kind == TokenKind.JOB
            else None
        )

    def is_admin_of(self, site_id: int) -> bool:
        return self.roles.get(site_id) == Role.ADMIN

    def member_site(self, slug: str) -> int:
        """The id of a site the caller belongs to, else 404 (never reveal other sites' objects)."""
        for site_id, site_slug in self.slugs.items():
            if site_slug == slug:
                return site_id
        raise NotFound(f"There is no site '{slug}' among your sites.", code="site_not_found")

    def require_admin(self, site_id: int) -> None:
        if not self.is_admin_of(site_id):
            raise Forbidden(
                "Only a site administrator can do this. Ask your site administrator.",
                code="admin_required",
            )

    def require_clinical(self) -> None:
        """People and hospital systems use the clinical API; agents have their own endpoints."""
        if not self.is_person_or_system:
            raise Forbidden("A site-agent token cannot be used here.", code="wrong_token_kind")


def caller_for_user(user: Any) -> Caller:
    memberships = Membership.objects.filter(user_id=user.pk).select_related("site")
    return Caller(
        user_id=user.pk,
        username=user.get_username(),
        token=None,
        roles={m.site_id: m.role for m in memberships},
        slugs={m.site_id: m.site.slug for m in memberships},
    )


def caller_for_token(token: ApiToken) -> Caller:
    site: Site = token.site
    role = token.role if token.kind == TokenKind.SYSTEM else "agent"
    return Caller(
        user_id=token.created_by_id,
        username=f"token:{token.name}",
        token=token,
        roles={site.pk: role},
        slugs={site.pk: site.slug},
    )


def caller_from_request(request: Any) -> Caller:
    cached = getattr(request, "_pollen_caller", None)
    if cached is not None:
        return cached
    auth = getattr(request, "auth", None)
    caller = caller_for_token(auth) if isinstance(auth, ApiToken) else caller_for_user(request.user)
    request._pollen_caller = caller
    return caller
