from __future__ import annotations

from django.db.models import QuerySet

from pollen.accounts.caller import Caller
from pollen.accounts.models import ApiToken, Membership, Site, TokenKind


def site_list(*, caller: Caller, consortium: bool = False) -> QuerySet[Site]:
    """The caller's sites; or, with consortium=True, the directory of every site (names only)."""
    if consortium:
        return Site.objects.all()
    return Site.objects.filter(pk__in=caller.site_ids)


def membership_list(*, caller: Caller, site_id: int) -> QuerySet[Membership]:
    caller.require_admin(site_id)
    return Membership.objects.filter(site_id=site_id).select_related("user", "site")


def membership_get(*, caller: Caller, site_id: int, membership_id: int) -> Membership:
    return membership_list(caller=caller, site_id=site_id).get(pk=membership_id)


def token_list(*, caller: Caller, site_id: int) -> QuerySet[ApiToken]:
    caller.require_admin(site_id)
    return (
        ApiToken.objects.filter(site_id=site_id).exclude(kind=TokenKind.JOB).select_related("site")
    )
