"""Who is calling, and at which sites: the one place tenancy decisions start from."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from pollen.accounts.models import ApiToken, Membership, Role, Site, TokenKind
from pollen.core.errors import Forbidden, NotFound

# What the URL's ``pk`` names on an agent view that a job token may call: its job, or its dataset.
JobScopeKind = Literal["job", "dataset"]


@dataclass(frozen=True)
class JobScope:
    """Exactly what a job token may touch: the objects its job names, and nothing else."""

    job_id: int
    dataset_id: int | None


@dataclass(frozen=True)
class Caller:
    user_id: int | None
    username: str
    token: ApiToken | None
    roles: dict[int, str] = field(default_factory=dict)  # site id -> role
    slugs: dict[int, str] = field(default_factory=dict)  # site id -> slug
    job_scope: JobScope | None = None  # set for job tokens only

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

    def require_job_scope(self, kind: JobScopeKind | None, pk: Any) -> None:
        """A job token reaches only its own job's endpoints, and only the objects its job names.

        A job token is handed to the training process on claim and lives as long as the job. It
        must not become a site-wide agent token: with it, a compromised or buggy training run
        could read other datasets' images, report ingest results, or claim other work at the
        site. So it is refused on every endpoint that is not declared job-scoped (``kind`` is
        None), and on a job-scoped one unless ``pk`` is its own job or its job's dataset. Other
        objects answer 404, as if missing. Site-agent, system and session callers pass.
        """
        scope = self.job_scope
        if self.token is None or self.token.kind != TokenKind.JOB:
            return
        if scope is None or kind is None:
            raise Forbidden(
                "A job token can only report on its own job. Use the site-agent token here.",
                code="job_token_out_of_scope",
            )
        allowed = scope.job_id if kind == "job" else scope.dataset_id
        if str(pk) != str(allowed):
            raise NotFound(f"There is no such {kind} for this job.", code=f"{kind}_not_found")

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


def _job_scope(token: ApiToken) -> JobScope | None:
    if token.kind != TokenKind.JOB or token.job_id is None:
        return None
    # Imported here: accounts is below training, and only job tokens need the job's row.
    from pollen.training.models import Job

    job = Job.objects.filter(pk=token.job_id, site_id=token.site_id).values("dataset_id").first()
    # A token whose job is gone keeps an empty scope: it reaches nothing.
    return JobScope(job_id=token.job_id, dataset_id=job["dataset_id"] if job else None)


def caller_for_token(token: ApiToken) -> Caller:
    site: Site = token.site
    role = token.role if token.kind == TokenKind.SYSTEM else "agent"
    return Caller(
        user_id=token.created_by_id,
        username=f"token:{token.name}",
        token=token,
        roles={site.pk: role},
        slugs={site.pk: site.slug},
        job_scope=_job_scope(token),
    )


def caller_from_request(request: Any) -> Caller:
    cached = getattr(request, "_pollen_caller", None)
    if cached is not None:
        return cached
    auth = getattr(request, "auth", None)
    caller = caller_for_token(auth) if isinstance(auth, ApiToken) else caller_for_user(request.user)
    request._pollen_caller = caller
    return caller
