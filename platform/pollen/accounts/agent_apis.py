from __future__ import annotations

from django.utils import timezone
from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from pollen.accounts.caller import caller_from_request
from pollen.accounts.models import Site
from pollen.accounts.permissions import IsSiteAgent


class HeartbeatApi(APIView):
    permission_classes = [IsSiteAgent]

    @extend_schema(
        tags=["agent"],
        summary="The site agent says it is alive",
        request=None,
        responses=inline_serializer(
            "Heartbeat",
            {
                "site": serializers.CharField(),
                "server_time": serializers.DateTimeField(),
                "requeued_jobs": serializers.ListField(child=serializers.IntegerField()),
                "requeued_work": serializers.ListField(child=serializers.CharField()),
            },
        ),
    )
    def post(self, request: Request) -> Response:
        caller = caller_from_request(request)
        site_id = next(iter(caller.site_ids))
        now = timezone.now()
        # Only a fact is recorded here. The clock (pollen.ops.clock) acts on it: while a site's
        # agent answers, work whose worker died there is queued again for another worker.
        Site.objects.filter(pk=site_id).update(agent_last_seen_at=now)
        return Response(
            {
                "site": caller.slugs[site_id],
                "server_time": now,
                # The answer keeps its shape; re-queuing is the clock's now, so these stay empty.
                "requeued_jobs": [],
                "requeued_work": [],
            }
        )
