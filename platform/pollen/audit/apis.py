from __future__ import annotations

from drf_spectacular.utils import extend_schema
from rest_framework import generics, serializers

from pollen.accounts.caller import caller_from_request
from pollen.audit.filters import AuditEventFilter
from pollen.audit.models import AuditEvent
from pollen.audit.selectors import audit_event_list


class AuditEventOut(serializers.ModelSerializer):
    site: serializers.SlugRelatedField = serializers.SlugRelatedField(
        slug_field="slug", read_only=True
    )
    actor = serializers.CharField(source="actor_label")

    class Meta:
        model = AuditEvent
        fields = [
            "id",
            "site",
            "actor",
            "action",
            "target_type",
            "target_id",
            "detail",
            "ip_address",
            "created_at",
        ]


@extend_schema(tags=["audit"], summary="Audit log of one site (site administrators)")
class AuditEventListApi(generics.ListAPIView):
    serializer_class = AuditEventOut
    filterset_class = AuditEventFilter

    def get_queryset(self):  # type: ignore[no-untyped-def]
        if getattr(self, "swagger_fake_view", False):  # schema generation: no request to scope by
            return self.serializer_class.Meta.model.objects.none()
        caller = caller_from_request(self.request)
        return audit_event_list(caller=caller, site_id=caller.member_site(self.kwargs["slug"]))
