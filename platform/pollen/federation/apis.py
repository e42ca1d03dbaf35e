"""Cross-site training endpoints for clinicians, site administrators and hospital systems."""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import extend_schema, extend_schema_field
from rest_framework import generics, serializers, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from pollen.accounts.caller import Caller, caller_from_request
from pollen.accounts.models import Site
from pollen.core.errors import ApiError, NotFound
from pollen.core.serializers import StrictSerializer
from pollen.datasets.selectors import dataset_get
from pollen.federation import lifecycle, selectors
from pollen.federation.filters import FederatedJobFilter
from pollen.federation.models import (
    FederatedJob,
    HeldOutEvaluation,
    Participant,
    Round,
    Strategy,
    Update,
)
from pollen.training.selectors import model_version_get
from pollen.zoo.selectors import zoo_entry_get


class UpdateOut(serializers.ModelSerializer):
    site = serializers.CharField(source="site.slug")

    class Meta:
        model = Update
        fields = ["site", "status", "sample_count", "metrics", "code", "reason", "created_at"]


class RoundOut(serializers.ModelSerializer):
    expected_sites = serializers.SerializerMethodField()
    current_site = serializers.SerializerMethodField()
    model_version = serializers.IntegerField(source="model_version_id", allow_null=True)
    updates = UpdateOut(many=True)

    class Meta:
        model = Round
        fields = [
            "number",
            "status",
            "expected_sites",
            "current_site",
            "deadline_at",
            "weights_sha256",
            "metrics",
            "model_version",
            "updates",
            "started_at",
            "finished_at",
        ]

    def _slugs(self) -> dict[int, str]:
        return self.context.get("slugs", {})

    def get_expected_sites(self, round_: Round) -> list[str]:
        return [self._slugs().get(s, "") for s in round_.expected_sites]

    def get_current_site(self, round_: Round) -> str | None:
        if round_.status != "running" or not round_.expected_sites:
            return None
        return self._slugs().get(round_.expected_sites[round_.relay_position])


class ParticipantOut(serializers.ModelSerializer):
    site = serializers.CharField(source="site.slug")
    site_name = serializers.CharField(source="site.name")
    dataset = serializers.SerializerMethodField()
    dataset_name = serializers.SerializerMethodField()

    class Meta:
        model = Participant
        fields = [
            "site",
            "site_name",
            "order",
            "status",
            "dataset",
            "dataset_name",
            "train_count",
            "responded_at",
            "work_round",
            "work_state",
            "attempt",
            "progress",
        ]

    def _own(self, participant: Participant) -> bool:
        # Another site's dataset is named only to that site; others see its image count.
        return participant.site_id in self.context.get("own_sites", set())

    def get_dataset(self, participant: Participant) -> int | None:
        return participant.dataset_id if self._own(participant) else None

    def get_dataset_name(self, participant: Participant) -> str | None:
        return participant.dataset.name if self._own(participant) and participant.dataset else None

    def to_representation(self, instance: Participant) -> dict[str, Any]:
        data = super().to_representation(instance)
        progress = data.get("progress") or {}
        data["progress"] = {k: v for k, v in progress.items() if not k.startswith("input_")}
        return data


class HeldOutMetricsOut(serializers.Serializer):
    """One model on a site's held-out images: aggregate numbers only (shareable between the sites)."""

    n = serializers.IntegerField(help_text="Held-out images evaluated")
    class_counts = serializers.DictField(child=serializers.IntegerField(), required=False)
    positive_class = serializers.CharField(required=False)
    auc = serializers.FloatField(allow_null=True, required=False)
    auc_ci = serializers.ListField(
        child=serializers.FloatField(),
        allow_null=True,
        required=False,
        help_text="95 %: [low, high]",
    )
    accuracy = serializers.FloatField(allow_null=True, required=False)
    accuracy_ci = serializers.ListField(
        child=serializers.FloatField(), allow_null=True, required=False
    )
    sensitivity = serializers.FloatField(allow_null=True, required=False)
    sensitivity_ci = serializers.ListField(
        child=serializers.FloatField(), allow_null=True, required=False
    )
    specificity = serializers.FloatField(allow_null=True, required=False)
    specificity_ci = serializers.ListField(
        child=serializers.FloatField(), allow_null=True, required=False
    )
    warnings = serializers.ListField(child=serializers.CharField(), required=False)
    # An outlining model (segmentation) is scored by how well its outlines overlap the masks.
    dice = serializers.FloatField(
        allow_null=True, required=False, help_text="Segmentation: mean Dice per image"
    )
    dice_ci = serializers.ListField(child=serializers.FloatField(), allow_null=True, required=False)
    lesion_dice = serializers.FloatField(
        allow_null=True,
        required=False,
        help_text="Segmentation: mean Dice over the images whose mask outlines a finding",
    )
    lesion_dice_ci = serializers.ListField(
        child=serializers.FloatField(), allow_null=True, required=False
    )
    iou = serializers.FloatField(allow_null=True, required=False)
    hd95_median = serializers.FloatField(
        allow_null=True, required=False, help_text="Median 95 % Hausdorff distance, in pixels"
    )


class HeldOutComparisonOut(serializers.Serializer):
    """The federated model's AUC minus the local model's, on the same images (paired bootstrap);
    for an outlining model its mean Dice minus the local model's (the AUC fields are null).

    ``verdict``: better, worse, no_clear_difference or too_few (too few images of some label,
    or an interval too wide to tell).
    """

    auc_difference = serializers.FloatField(allow_null=True)
    auc_difference_ci = serializers.ListField(child=serializers.FloatField(), allow_null=True)
    verdict = serializers.CharField()
    dice_difference = serializers.FloatField(allow_null=True, required=False)
    dice_difference_ci = serializers.ListField(
        child=serializers.FloatField(), allow_null=True, required=False
    )


class HeldOutOut(serializers.ModelSerializer):
    """A site's check of the final model on its held-out (test) images, beside its local model.

    ``local_source`` says what the local model is (``first_round``: the site's own round-1
    model, trained on its images alone from the same starting model); when empty,
    ``local_note`` says why the site has none. ``federated`` and ``local`` are empty until
    ``status`` is ``succeeded``; a ``failed`` check carries ``error_code`` and ``message``.
    """

    site = serializers.CharField(source="site.slug")
    site_name = serializers.CharField(source="site.name")
    federated = serializers.SerializerMethodField()
    local = serializers.SerializerMethodField()
    comparison = serializers.SerializerMethodField()

    class Meta:
        model = HeldOutEvaluation
        fields = [
            "site",
            "site_name",
            "status",
            "attempt",
            "federated",
            "local",
            "comparison",
            "local_source",
            "local_note",
            "error_code",
            "message",
            "finished_at",
        ]

    # Empty until the check succeeds: null then, never a half-filled object.
    @extend_schema_field(HeldOutMetricsOut(allow_null=True))
    def get_federated(self, check: HeldOutEvaluation) -> dict[str, Any] | None:
        return check.federated or None

    @extend_schema_field(HeldOutMetricsOut(allow_null=True))
    def get_local(self, check: HeldOutEvaluation) -> dict[str, Any] | None:
        return check.local or None

    @extend_schema_field(HeldOutComparisonOut(allow_null=True))
    def get_comparison(self, check: HeldOutEvaluation) -> dict[str, Any] | None:
        return check.comparison or None


class FederatedJobOut(serializers.ModelSerializer):
    initiator_site = serializers.CharField(source="initiator_site.slug")
    starting_point = serializers.IntegerField(source="starting_point_id", allow_null=True)
    start_version = serializers.IntegerField(source="start_version_id", allow_null=True)
    final_version = serializers.IntegerField(source="final_version_id", allow_null=True)
    status_text = serializers.CharField(source="get_status_display")
    participants = ParticipantOut(many=True)
    round_details = RoundOut(many=True, source="round_set")
    held_out = HeldOutOut(
        many=True,
        help_text="Once the job has finished: each site's check of the final model and of its "
        "local model on its held-out images",
    )

    class Meta:
        model = FederatedJob
        fields = [
            "id",
            "name",
            "initiator_site",
            "strategy",
            "rounds",
            "local_epochs",
            "min_participants",
            "round_deadline_seconds",
            "starting_point",
            "start_version",
            "architecture",
            "input_size",
            "task",
            "label_names",
            "config",
            "status",
            "status_text",
            "current_round",
            "final_version",
            "error_code",
            "message",
            "events",
            "participants",
            "round_details",
            "held_out",
            "created_at",
            "started_at",
            "finished_at",
        ]


def _out(caller: Caller, job: FederatedJob) -> dict[str, Any]:
    slugs = {p.site_id: p.site.slug for p in job.participants.all()}
    return FederatedJobOut(job, context={"own_sites": caller.site_ids, "slugs": slugs}).data


class AdvancedIn(StrictSerializer):
    batch_size = serializers.IntegerField(required=False)
    input_size = serializers.IntegerField(required=False)
    learning_rate = serializers.FloatField(required=False)
    seed = serializers.IntegerField(required=False)


class FederatedJobIn(StrictSerializer):
    name = serializers.CharField(max_length=200, required=False, allow_blank=True)
    strategy = serializers.ChoiceField(choices=Strategy.choices, default=Strategy.FEDAVG)
    dataset = serializers.IntegerField(help_text="Your site's dataset")
    sites = serializers.ListField(
        child=serializers.CharField(max_length=50),
        min_length=1,
        max_length=50,
        help_text="The other participating sites (slugs); their administrators must accept",
    )
    starting_point = serializers.IntegerField(required=False, help_text="A zoo entry id")
    start_version = serializers.IntegerField(
        required=False, help_text="A model version at your site"
    )
    rounds = serializers.IntegerField(min_value=1, max_value=100, default=5)
    local_epochs = serializers.IntegerField(min_value=1, max_value=50, default=1)
    min_participants = serializers.IntegerField(min_value=1, max_value=50, default=2)
    round_deadline_seconds = serializers.IntegerField(
        min_value=10, max_value=7 * 24 * 3600, default=3600
    )
    advanced = AdvancedIn(required=False)


def _sites(slugs: list[str]) -> list[Site]:
    found = {s.slug: s for s in Site.objects.filter(slug__in=slugs)}
    unknown = [slug for slug in slugs if slug not in found]
    if unknown:
        raise ApiError(
            f"There is no site '{unknown[0]}' in the consortium. Check the site's short name.",
            code="site_not_found",
            fields={"sites": f"Unknown site '{unknown[0]}'."},
        )
    return [found[slug] for slug in slugs]


class FederatedJobListApi(generics.ListAPIView):
    serializer_class = FederatedJobOut
    filterset_class = FederatedJobFilter

    def get_queryset(self):  # type: ignore[no-untyped-def]
        if getattr(self, "swagger_fake_view", False):
            return FederatedJob.objects.none()
        caller = caller_from_request(self.request)
        caller.require_clinical()
        return selectors.federated_job_list(caller=caller)

    def get_serializer_context(self) -> dict[str, Any]:
        context = dict(super().get_serializer_context())
        if not getattr(self, "swagger_fake_view", False):
            caller = caller_from_request(self.request)
            context["own_sites"] = caller.site_ids
            context["slugs"] = dict(Site.objects.values_list("pk", "slug"))
        return context

    @extend_schema(
        tags=["federation"],
        summary="Cross-site jobs my sites take part in",
        description="Filter with ?site=<one of your sites>&status=&strategy=; "
        "?site=<slug>&awaiting_answer=true lists the invitations that site has still to answer.",
    )
    def get(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return super().get(request, *args, **kwargs)

    @extend_schema(
        tags=["federation"],
        summary="Propose cross-site training (relay or FedAvg); each site's administrator must accept",
        request=FederatedJobIn,
        responses={201: FederatedJobOut},
    )
    def post(self, request: Request) -> Response:
        caller = caller_from_request(request)
        caller.require_clinical()
        data = FederatedJobIn(data=request.data)
        data.is_valid(raise_exception=True)
        fields: dict[str, Any] = dict(data.validated_data)
        dataset = dataset_get(caller=caller, dataset_id=fields.pop("dataset"))
        entry_id = fields.pop("starting_point", None)
        version_id = fields.pop("start_version", None)
        job = lifecycle.federated_job_create(
            caller=caller,
            dataset=dataset,
            sites=_sites(fields.pop("sites")),
            starting_point=zoo_entry_get(entry_id=entry_id) if entry_id is not None else None,
            start_version=(
                model_version_get(caller=caller, version_id=version_id)
                if version_id is not None
                else None
            ),
            advanced=dict(fields.pop("advanced", {}) or {}),
            **fields,
        )
        return Response(
            _out(caller, selectors.federated_job_get(caller=caller, job_id=job.pk)),
            status=status.HTTP_201_CREATED,
        )


class FederatedJobDetailApi(APIView):
    @extend_schema(
        tags=["federation"],
        summary="A cross-site job with per-round and per-site progress and its history",
        responses=FederatedJobOut,
    )
    def get(self, request: Request, pk: int) -> Response:
        caller = caller_from_request(request)
        caller.require_clinical()
        return Response(_out(caller, selectors.federated_job_get(caller=caller, job_id=pk)))


class RespondIn(StrictSerializer):
    site = serializers.CharField(
        max_length=50, required=False, help_text="Your site (needed only if you administer several)"
    )
    dataset = serializers.IntegerField(required=False, help_text="Your site's dataset to train on")


def _respond_site(caller: Caller, job: FederatedJob, slug: str | None) -> int:
    mine = [p for p in job.participants.all() if p.site_id in caller.site_ids]
    if slug is not None:
        mine = [p for p in mine if p.site.slug == slug]
    if not mine:
        raise NotFound(
            "Your site is not part of this federated job.", code="federated_job_not_found"
        )
    admin = [p for p in mine if caller.is_admin_of(p.site_id)]
    invited = [p for p in admin if p.status == "invited"]
    return (invited or admin or mine)[0].site_id


class FederatedJobAcceptApi(APIView):
    @extend_schema(
        tags=["federation"],
        summary="A site administrator accepts, choosing the site's dataset (same labels as the job)",
        request=RespondIn,
        responses=FederatedJobOut,
    )
    def post(self, request: Request, pk: int) -> Response:
        caller = caller_from_request(request)
        caller.require_clinical()
        job = selectors.federated_job_get(caller=caller, job_id=pk)
        data = RespondIn(data=request.data)
        data.is_valid(raise_exception=True)
        site_id = _respond_site(caller, job, data.validated_data.get("site"))
        dataset_id = data.validated_data.get("dataset")
        dataset = dataset_get(caller=caller, dataset_id=dataset_id) if dataset_id else None
        lifecycle.participant_respond(
            caller=caller, job=job, site_id=site_id, accept=True, dataset=dataset
        )
        return Response(_out(caller, selectors.federated_job_get(caller=caller, job_id=pk)))


class DeclineIn(StrictSerializer):
    site = serializers.CharField(max_length=50, required=False)


class FederatedJobDeclineApi(APIView):
    @extend_schema(
        tags=["federation"],
        summary="A site administrator declines: the site takes no part",
        request=DeclineIn,
        responses=FederatedJobOut,
    )
    def post(self, request: Request, pk: int) -> Response:
        caller = caller_from_request(request)
        caller.require_clinical()
        job = selectors.federated_job_get(caller=caller, job_id=pk)
        data = DeclineIn(data=request.data)
        data.is_valid(raise_exception=True)
        site_id = _respond_site(caller, job, data.validated_data.get("site"))
        lifecycle.participant_respond(caller=caller, job=job, site_id=site_id, accept=False)
        return Response(_out(caller, selectors.federated_job_get(caller=caller, job_id=pk)))


class FederatedJobWithdrawApi(APIView):
    @extend_schema(
        tags=["federation"],
        summary="A site administrator withdraws the site's own part (it accepted before)",
        description=(
            "The site leaves the job; the other sites go on without it. Its current turn ends "
            "(its worker is told to stop and a late update is refused) and the round finishes "
            "with the sites that answered. An invited site declines instead; the initiating "
            "site cancels instead."
        ),
        request=DeclineIn,
        responses=FederatedJobOut,
    )
    def post(self, request: Request, pk: int) -> Response:
        caller = caller_from_request(request)
        caller.require_clinical()
        job = selectors.federated_job_get(caller=caller, job_id=pk)
        data = DeclineIn(data=request.data)
        data.is_valid(raise_exception=True)
        site_id = _respond_site(caller, job, data.validated_data.get("site"))
        lifecycle.participant_withdraw(caller=caller, job=job, site_id=site_id)
        return Response(_out(caller, selectors.federated_job_get(caller=caller, job_id=pk)))


class FederatedJobCancelApi(APIView):
    @extend_schema(
        tags=["federation"],
        summary="Stop a cross-site job for every site (the initiating site's administrators)",
        description=(
            "Only an administrator of the initiating site may cancel. A participating site "
            "declines the invitation or withdraws its own part instead (403 "
            "initiator_admin_required)."
        ),
        request=None,
        responses=FederatedJobOut,
    )
    def post(self, request: Request, pk: int) -> Response:
        caller = caller_from_request(request)
        caller.require_clinical()
        job = selectors.federated_job_get(caller=caller, job_id=pk)
        lifecycle.federated_job_cancel(caller=caller, job=job)
        return Response(_out(caller, selectors.federated_job_get(caller=caller, job_id=pk)))
