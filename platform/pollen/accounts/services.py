"""Writes for sites, memberships and API tokens. Each checks permission, then acts atomically."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.contrib.auth import get_user_model
from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import IntegrityError, transaction
from django.utils import timezone

from pollen.accounts.caller import Caller
from pollen.accounts.models import ApiToken, Membership, Role, Site, TokenKind
from pollen.accounts.tokens import token_generate
from pollen.audit.services import audit_record
from pollen.core.errors import ApiError, Conflict, NotFound

User = get_user_model()


def site_create(*, slug: str, name: str) -> Site:
    """Operators create sites (Django admin or the seed command); there is no public endpoint."""
    with transaction.atomic():
        if Site.objects.filter(slug=slug).exists():
            raise Conflict(f"A site called '{slug}' already exists.", code="site_exists")
        site = Site(slug=slug, name=name)
        site.full_clean()
        site.save()
        audit_record(
            caller=None,
            action="site.create",
            site_id=site.pk,
            target_type="site",
            target_id=site.pk,
        )
    return site


def user_create(*, username: str, password: str, email: str = "", first_name: str = "") -> Any:
    try:
        User.username_validator(username)
    except DjangoValidationError as exc:
        raise ApiError(
            "A username may hold letters, digits and @ . + - _ only (no spaces).",
            code="invalid_username",
            fields={"username": exc.messages},
        ) from exc
    if not 1 <= len(username) <= 150:
        raise ApiError(
            "A username has 1 to 150 characters.",
            code="invalid_username",
            fields={"username": ["1 to 150 characters."]},
        )
    try:
        validate_password(password)
    except DjangoValidationError as exc:
        raise ApiError(
            " ".join(exc.messages), code="weak_password", fields={"password": exc.messages}
        ) from exc
    if User.objects.filter(username__iexact=username).exists():
        raise Conflict(
            f"The username '{username}' is taken. Choose another one.",
            code="username_taken",
            fields={"username": ["Taken: choose another one."]},
        )
    return User.objects.create_user(
        username=username, password=password, email=email, first_name=first_name
    )


def membership_add(
    *,
    caller: None,
    site: Site,
    username: str,
    role: str,
    password: str | None = None,
    email: str = "",
) -> Membership:
    """Operators and seed commands only: add a person to a site, creating the account if needed.

    There is deliberately no caller: site administrators invite people instead
    (``pollen.accounts.invitations``). Adding an existing account by name would let one site
    annex another site's users and learn which usernames exist.
    """
    with transaction.atomic():
        user = User.objects.filter(username__iexact=username).first()
        if user is None:
            if not password:
                raise ApiError(
                    f"There is no account '{username}'. Give a password to create one.",
                    code="user_not_found",
                    fields={"password": ["Required to create a new account."]},
                )
            user = user_create(username=username, password=password, email=email)
        try:
            with transaction.atomic():
                membership = Membership.objects.create(user=user, site=site, role=role)
        except IntegrityError as exc:
            raise Conflict(
                f"'{username}' is already a member of this site.", code="already_member"
            ) from exc
        audit_record(
            caller=caller,
            action="member.add",
            site_id=site.pk,
            target_type="user",
            target_id=user.pk,
            detail={"username": user.get_username(), "role": role},
        )
    return membership


def _last_admin_guard(membership: Membership) -> None:
    admins = Membership.objects.filter(site_id=membership.site_id, role=Role.ADMIN).count()
    if membership.role == Role.ADMIN and admins <= 1:
        raise Conflict("A site must keep at least one administrator.", code="last_admin")


def membership_update(*, caller: Caller, membership: Membership, role: str) -> Membership:
    caller.require_admin(membership.site_id)
    with transaction.atomic():
        if role != Role.ADMIN:
            _last_admin_guard(membership)
        old = membership.role
        membership.role = role
        membership.save(update_fields=["role"])
        audit_record(
            caller=caller,
            action="member.update",
            site_id=membership.site_id,
            target_type="user",
            target_id=membership.user_id,
            detail={"from": old, "to": role},
        )
    return membership


def membership_remove(*, caller: Caller, membership: Membership) -> None:
    caller.require_admin(membership.site_id)
    with transaction.atomic():
        _last_admin_guard(membership)
        audit_record(
            caller=caller,
            action="member.remove",
            site_id=membership.site_id,
            target_type="user",
            target_id=membership.user_id,
        )
        membership.delete()


def token_create(
    *,
    caller: Caller | None,
    site: Site,
    name: str,
    kind: str = TokenKind.SYSTEM,
    role: str = Role.CLINICIAN,
    expires_in_days: int | None = None,
    job_id: int | None = None,
    expires_in: timedelta | None = None,
) -> tuple[ApiToken, str]:
    """Create a token and return it with its plaintext, which is never stored and shown once."""
    if caller is not None and kind != TokenKind.JOB:
        caller.require_admin(site.pk)
    plaintext, prefix, digest = token_generate()
    expires_at = None
    if expires_in_days:
        expires_at = timezone.now() + timedelta(days=expires_in_days)
    if expires_in:
        expires_at = timezone.now() + expires_in
    with transaction.atomic():
        token = ApiToken.objects.create(
            site=site,
            name=name,
            kind=kind,
            role=role,
            prefix=prefix,
            digest=digest,
            job_id=job_id,
            created_by_id=caller.user_id if caller and caller.token is None else None,
            expires_at=expires_at,
        )
        if kind != TokenKind.JOB:
            audit_record(
                caller=caller,
                action="token.create",
                site_id=site.pk,
                target_type="token",
                target_id=token.pk,
                detail={"name": name, "kind": kind, "role": role},
            )
    return token, plaintext


def token_revoke(*, caller: Caller | None, token: ApiToken) -> ApiToken:
    if caller is not None:
        caller.require_admin(token.site_id)
    with transaction.atomic():
        updated = ApiToken.objects.filter(pk=token.pk, revoked_at__isnull=True).update(
            revoked_at=timezone.now()
        )
        if not updated:
            raise Conflict("This token was already revoked.", code="already_revoked")
        audit_record(
            caller=caller,
            action="token.revoke",
            site_id=token.site_id,
            target_type="token",
            target_id=token.pk,
            detail={"name": token.name},
        )
    token.refresh_from_db()
    return token


def job_tokens_revoke(*, job_id: int, now: Any = None) -> None:
    """End every live token of one job: it finished, failed, or another worker took it over."""
    ApiToken.objects.filter(kind=TokenKind.JOB, job_id=job_id, revoked_at__isnull=True).update(
        revoked_at=now or timezone.now()
    )


def site_for_member(*, caller: Caller, slug: str) -> Site:
    site_id = caller.member_site(slug)
    try:
        return Site.objects.get(pk=site_id)
    except Site.DoesNotExist as exc:  # deleted between the two reads
        raise NotFound(
            f"There is no site '{slug}' among your sites.", code="site_not_found"
        ) from exc
