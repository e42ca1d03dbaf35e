import django_filters
from django.db.models import Q, QuerySet

from pollen.accounts.caller import caller_from_request
from pollen.federation.models import (
    FederatedJob,
    FederatedStatus,
    Participant,
    ParticipantStatus,
    Strategy,
)


class FederatedJobFilter(django_filters.FilterSet):
    site = django_filters.CharFilter(
        method="filter_site",
        help_text="One of your sites (slug): the jobs it takes part in. Any other value, like an "
        "unknown site, matches nothing.",
    )
    status = django_filters.ChoiceFilter(choices=FederatedStatus.choices)
    strategy = django_filters.ChoiceFilter(choices=Strategy.choices)
    # A choice, not a BooleanFilter: that one silently ignores a value it cannot read.
    awaiting_answer = django_filters.ChoiceFilter(
        choices=[("true", "true"), ("false", "false")],
        method="filter_awaiting_answer",
        help_text="true: only invitations still waiting for the answer of the site named by "
        "?site= (or of any of your sites); false: every other job.",
    )

    class Meta:
        model = FederatedJob
        fields: list[str] = []

    def filter_site(self, qs: QuerySet, name: str, value: str) -> QuerySet:
        # Only the caller's own sites: naming another site must not tell which jobs it is in.
        caller = caller_from_request(self.request)
        taking_part = Participant.objects.filter(
            site__slug=value, site_id__in=caller.site_ids
        ).values("job_id")
        return qs.filter(pk__in=taking_part)

    def filter_awaiting_answer(self, qs: QuerySet, name: str, value: str) -> QuerySet:
        caller = caller_from_request(self.request)
        invited = Participant.objects.filter(
            status=ParticipantStatus.INVITED, site_id__in=caller.site_ids
        )
        if self.data.get("site"):
            # The invitation must be that site's own, not another site's in a job it shares.
            invited = invited.filter(site__slug=self.data["site"])
        waiting = Q(status=FederatedStatus.PENDING, pk__in=invited.values("job_id"))
        return qs.filter(waiting) if value == "true" else qs.exclude(waiting)
