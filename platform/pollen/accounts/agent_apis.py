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
        Site.objects.filter(pk=site_id).update(agent_last_seen_at=now)
        # An agent that answers can take over jobs whose worker died.
        from pollen.training.services import jobs_requeue_abandoned, jobs_resend_stale_queued

        requeued = jobs_requeue_abandoned(site_id=site_id) + jobs_resend_stale_queued(
            site_id=site_id
        )
        # ... and marketplace work (predictions, evaluations, exports, publications) too.
        from pollen.marketplace.work import work_requeue_abandoned

        requeued_work = work_requeue_abandoned(site_id=site_id, site_slug=caller.slugs[site_id])
        # ... and cross-site jobs it takes part in move on (deadlines, lapsed turns, aggregation).
        from pollen.federation.services import federation_tick

        federation_tick(site_id=site_id)
        # ... and a dataset deletion the agent never confirmed is asked for again.
        from pollen.datasets.deletion import datasets_purge_resend

        datasets_purge_resend(site_id=site_id, now=now)
        # ... and upload slots left unfinished expire (their files are removed by this agent).
        from pollen.datasets.uploads import upload_slots_expire

        upload_slots_expire(site_id=site_id, now=now)
        return Response(
            {
                "site": caller.slugs[site_id],
                "server_time": now,
                "requeued_jobs": requeued,
                "requeued_work": requeued_work,
            }
        )
