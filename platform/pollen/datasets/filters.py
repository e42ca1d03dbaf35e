import django_filters

from pollen.datasets.models import Dataset, Image, ImageStatus, Modality, Split


class DatasetFilter(django_filters.FilterSet):
    site = django_filters.CharFilter(field_name="site__slug")
    modality = django_filters.ChoiceFilter(choices=Modality.choices)
    search = django_filters.CharFilter(field_name="name", lookup_expr="icontains")

    class Meta:
        model = Dataset
        fields: list[str] = []


class ImageFilter(django_filters.FilterSet):
    status = django_filters.ChoiceFilter(choices=ImageStatus.choices)
    split = django_filters.ChoiceFilter(choices=Split.choices)
    label = django_filters.CharFilter()
    patient_id = django_filters.CharFilter()
    search = django_filters.CharFilter(field_name="filename", lookup_expr="icontains")
    reject_code = django_filters.CharFilter()

    class Meta:
        model = Image
        fields: list[str] = []
