import django_filters
from django.db.models import QuerySet

from pollen.accounts.caller import caller_from_request
from pollen.federation.models import FederatedJob, FederatedStatus, Participant, Strategy


class FederatedJobFilter(django_filters.FilterSet):
    site = django_filters.CharFilter(
        method="filter_site",
        help_text="One of your sites (slug): the jobs it takes part in. Any other value, like an "
        "unknown site, matches nothing.",
    )
    status = django_filters.ChoiceFilter(choices=FederatedStatus.choices)
    strategy = django_filters.ChoiceFilter(choices=Strategy.choices)

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
