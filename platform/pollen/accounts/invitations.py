"""Invitations: the only way a person joins a site from the API.

A site administrator invites by e-mail address and role; the hub answers with a secret link,
shown once, that the administrator passes on through the hospital's own channel. Whoever opens
it either signs in and joins with their existing account, or chooses a new username and
password. Until then nothing changes, and the administrator learns nothing about any account:
there is no lookup by username, so no site can annex another site's users or probe names.
"""

from __future__ import annotations

import secrets
from datetime import timedelta
from typing import Any

from django.contrib.auth import get_user_model
from django.db import IntegrityError, transaction
from django.utils import timezone

from pollen.accounts.caller import Caller
from pollen.accounts.models import Invitation, Membership, Site
from pollen.accounts.services import user_create
from pollen.accounts.tokens import token_digest
from pollen.audit.services import audit_record
from pollen.core.errors import Conflict, NotFound

User = get_user_model()

DEFAULT_DAYS = 7
# One answer for an unknown, used, revoked or expired secret: which one it was is nobody's business.
INVALID = (
    "This invitation link is not valid: it may have expired, been used already or been "
    "withdrawn. Ask your site administrator for a new one."
)


def invitation_create(
    *, caller: Caller, site: Site, email: str, role: str, expires_in_days: int = DEFAULT_DAYS
) -> tuple[Invitation, str]:
    """Invite someone to ``site``; returns the invitation and its secret, which is never stored."""
    caller.require_admin(site.pk)
    # 256 bits of randomness: a fast digest is enough, as for API tokens.
    plaintext = "inv_" + secrets.token_urlsafe(32)
    with transaction.atomic():
        invitation = Invitation.objects.create(
            site=site,
            role=role,
            email=email,
            digest=token_digest(plaintext),
            created_by_id=caller.user_id if caller.token is None else None,
            expires_at=timezone.now() + timedelta(days=expires_in_days),
        )
        audit_record(
            caller=caller,
            action="invitation.create",
            site_id=site.pk,
            target_type="invitation",
            target_id=invitation.pk,
            detail={"email": email, "role": role, "expires_at": invitation.expires_at.isoformat()},
        )
    return invitation, plaintext


def invitation_revoke(*, caller: Caller, invitation: Invitation) -> Invitation:
    caller.require_admin(invitation.site_id)
    with transaction.atomic():
        if not Invitation.objects.filter(
            pk=invitation.pk, accepted_at__isnull=True, revoked_at__isnull=True
        ).update(revoked_at=timezone.now()):
            raise Conflict(
                "This invitation was already accepted or withdrawn.", code="invitation_closed"
            )
        audit_record(
            caller=caller,
            action="invitation.revoke",
            site_id=invitation.site_id,
            target_type="invitation",
            target_id=invitation.pk,
            detail={"email": invitation.email},
        )
    invitation.refresh_from_db()
    return invitation


def _open(queryset: Any) -> Any:
    return queryset.filter(
        accepted_at__isnull=True, revoked_at__isnull=True, expires_at__gt=timezone.now()
    )


def invitation_find(*, token: str) -> Invitation:
    """The open invitation for this secret; one and the same 404 for every other case."""
    invitation = (
        _open(Invitation.objects.filter(digest=token_digest(token))).select_related("site").first()
    )
    if invitation is None:
        raise NotFound(INVALID, code="invitation_invalid")
    return invitation


def invitation_accept(
    *, token: str, user: Any | None, username: str = "", password: str = ""
) -> Membership:
    """Join the invitation's site: ``user`` (signed in) or a new account from username/password.

    The secret is checked first, so only a holder of a valid invitation can learn whether a
    username is taken. A refused username or password leaves the invitation usable; a
    successful accept uses it up (compare-and-set, so two tabs cannot both use it).
    """
    with transaction.atomic():
        invitation = invitation_find(token=token)
        new_account = user is None
        if user is None:
            user = user_create(username=username, password=password, email=invitation.email)
        elif Membership.objects.filter(user=user, site_id=invitation.site_id).exists():
            raise Conflict(
                f"You are already a member of {invitation.site.name}.", code="already_member"
            )
        if not _open(Invitation.objects.filter(pk=invitation.pk)).update(
            accepted_at=timezone.now(), accepted_by=user
        ):
            raise NotFound(INVALID, code="invitation_invalid")
        try:
            with transaction.atomic():
                membership = Membership.objects.create(
                    user=user, site_id=invitation.site_id, role=invitation.role
                )
        except IntegrityError as exc:
            raise Conflict(
                f"You are already a member of {invitation.site.name}.", code="already_member"
            ) from exc
        audit_record(
            caller=Caller(user_id=user.pk, username=user.get_username(), token=None),
            action="invitation.accept",
            site_id=invitation.site_id,
            target_type="invitation",
            target_id=invitation.pk,
            detail={"role": invitation.role, "new_account": new_account},
        )
    return membership
