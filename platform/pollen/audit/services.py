from __future__ import annotations

from typing import Any

from pollen.accounts.caller import Caller
from pollen.audit.models import AuditEvent


def audit_record(
    *,
    caller: Caller | None,
    action: str,
    site_id: int | None,
    target_type: str = "",
    target_id: object = "",
    detail: dict[str, Any] | None = None,
    ip_address: str | None = None,
    actor_label: str | None = None,
) -> AuditEvent:
    """Append one event. Called by services inside their transaction, so it commits with them.

    ``actor_label`` without a caller names an actor that is not a person of this site, such as
    ``site:<slug>`` for what another site did: no user or token of that site is linked.
    """
    if caller is not None and actor_label is not None:
        raise ValueError("Give a caller or an actor_label, not both.")
    return AuditEvent.objects.create(
        site_id=site_id,
        actor_user_id=caller.user_id if caller and caller.token is None else None,
        actor_token=caller.token if caller else None,
        actor_label=caller.username if caller else (actor_label or "system"),
        action=action,
        target_type=target_type,
        target_id=str(target_id),
        detail=detail or {},
        ip_address=ip_address,
    )
