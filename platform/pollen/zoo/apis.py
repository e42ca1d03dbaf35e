from __future__ import annotations

import django_filters
from drf_spectacular.utils import extend_schema
from rest_framework import generics, serializers

from pollen.accounts.caller import caller_from_request
from pollen.zoo.models import WeightSource, ZooEntry
from pollen.zoo.selectors import zoo_entry_list


class ZooEntryOut(serializers.ModelSerializer):
    class Meta:
        model = ZooEntry
        fields = [
            "id",
            "slug",
            "name",
            "architecture",
            "task",
            "source",
            "description",
            "licence",
            "input_size",
            "recommended",
            "weights_sha256",
        ]


class ZooFilter(django_filters.FilterSet):
    architecture = django_filters.CharFilter()
    source = django_filters.ChoiceFilter(choices=WeightSource.choices)
    recommended = django_filters.BooleanFilter()
    task = django_filters.ChoiceFilter(
        choices=[("classification", "classification"), ("segmentation", "segmentation")]
    )

    class Meta:
        model = ZooEntry
        fields: list[str] = []


@extend_schema(tags=["training"], summary="Starting points for training (the model zoo)")
class ZooEntryListApi(generics.ListAPIView):
    serializer_class = ZooEntryOut
    filterset_class = ZooFilter

    def get_queryset(self):  # type: ignore[no-untyped-def]
        if getattr(self, "swagger_fake_view", False):
            return ZooEntry.objects.none()
        caller_from_request(self.request).require_clinical()
        return zoo_entry_list()
