from __future__ import annotations

from django.db.models import QuerySet

from pollen.accounts.caller import Caller
from pollen.audit.models import AuditEvent


def audit_event_list(*, caller: Caller, site_id: int) -> QuerySet[AuditEvent]:
    caller.require_admin(site_id)
    return AuditEvent.objects.filter(site_id=site_id).select_related("site")
