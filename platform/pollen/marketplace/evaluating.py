"""Site evaluation: check a published model on a site's own labelled images, and share the result."""

from __future__ import annotations

from typing import Any

from django.db import transaction
from django.utils import timezone

from pollen.accounts.caller import Caller
from pollen.audit.services import audit_record
from pollen.core.dispatch import send_on_commit
from pollen.core.errors import ApiError, Conflict, NotFound
from pollen.core.task_flows import require_flow
from pollen.datasets.models import Dataset, ImageStatus, Task
from pollen.marketplace.cards import clean_metrics
from pollen.marketplace.models import (
    PublishedVersion,
    SiteEvaluation,
    WorkStatus,
)
from pollen.marketplace.versions import (
    finish_claimed,
    require_member,
    require_usable,
    slug_of_site,
)
from pollen.training.weights import model_ref
from pollen_contracts import queues, tasks
from pollen_contracts.contract import contract_task
from pollen_contracts.specs import EvaluationSpec

# --- Evaluate at my site --------------------------------------------------------------------------


def evaluation_create(
    *, caller: Caller, published_version: PublishedVersion, dataset: Dataset, tta: bool = True
) -> SiteEvaluation:
    """Run a published model on the caller's labelled dataset at their site; metrics stay private.

    Every accepted, labelled image whose label the model knows is used (not just the test split):
    the model never saw this site's images, so all of them are unseen data.
    """
    caller.require_clinical()
    if dataset.site_id not in caller.site_ids:
        raise NotFound("There is no such dataset at your sites.", code="dataset_not_found")
    require_usable(published_version)
    known = set(published_version.model_version.label_names)
    require_flow(published_version.model_version.task, "evaluate")
    require_flow(dataset.task, "evaluate")
    if published_version.model_version.task != dataset.task:
        raise ApiError(
            f"This model does {published_version.model_version.task} but the dataset is "
            f"labelled for {dataset.task}. Choose a dataset labelled the way the model works.",
            code="task_mismatch",
        )
    if dataset.task == Task.SEGMENTATION:
        _check_outline_dataset(published_version.model_version.label_names, dataset)
        known = set()
    usable = (
        dataset.images.filter(status=ImageStatus.ACCEPTED, label__in=known)
        .values("label")
        .distinct()
    )
    if dataset.task != Task.SEGMENTATION and not usable.exists():
        raise ApiError(
            "None of this dataset's labelled images has a label the model knows "
            f"({', '.join(sorted(known))}). Label the images with the model's label names.",
            code="no_matching_labels",
        )
    with transaction.atomic():
        evaluation = SiteEvaluation.objects.create(
            site_id=dataset.site_id,
            published_version=published_version,
            dataset=dataset,
            created_by_id=caller.user_id if caller.token is None else None,
            metrics={"tta": tta},
        )
        audit_record(
            caller=caller,
            action="marketplace.evaluate",
            site_id=dataset.site_id,
            target_type="evaluation",
            target_id=evaluation.pk,
            detail={"published_version": published_version.pk, "dataset": dataset.pk},
        )
        slug = slug_of_site(dataset.site_id)
        send_on_commit(
            tasks.EVALUATE,
            {"site": slug, "kind": "evaluation", "id": evaluation.pk},
            queue=queues.infer_queue(slug),
        )
    return evaluation


def _check_outline_dataset(label_names: list[str], dataset: Dataset) -> None:
    """An outlining model is scored on masks of the same classes, in the same order."""
    if list(label_names[1:]) != list(dataset.mask_classes):
        raise ApiError(
            f"The model outlines {', '.join(label_names[1:])}; this dataset's masks mark "
            f"{', '.join(dataset.mask_classes) or 'nothing yet'}. Evaluate it on masks of the "
            "same classes.",
            code="mask_classes_mismatch",
        )
    if not dataset.images.filter(
        status=ImageStatus.ACCEPTED, masks__status=ImageStatus.ACCEPTED
    ).exists():
        raise ApiError(
            "None of this dataset's images has an accepted mask to score the model against.",
            code="no_matching_labels",
        )


def evaluation_spec(evaluation: SiteEvaluation) -> EvaluationSpec:
    version = evaluation.published_version
    require_usable(version)
    if evaluation.dataset_id is None:
        raise Conflict("The dataset of this evaluation was deleted.", code="dataset_not_found")
    return EvaluationSpec(
        evaluation_id=evaluation.pk,
        dataset_id=evaluation.dataset_id,
        tta=bool(evaluation.metrics.get("tta", True)),
        model=model_ref(version.model_version, published=version, site_id=evaluation.site_id),
        # Sensitivity at this site is about the same finding as on the model's card.
        positive_class=version.model_version.positive_class or None,
        task=contract_task(version.model_version.task),
    )


def evaluation_share(
    *, caller: Caller, evaluation: SiteEvaluation, shared: bool = True
) -> SiteEvaluation:
    """Show (or hide again) this site's aggregate metrics in the model's per-site table."""
    require_member(caller, evaluation.site_id)
    if evaluation.status != WorkStatus.SUCCEEDED:
        raise Conflict("Only a finished evaluation can be shared.", code="evaluation_not_finished")
    with transaction.atomic():
        SiteEvaluation.objects.filter(pk=evaluation.pk).update(
            shared=shared, shared_at=timezone.now() if shared else None
        )
        audit_record(
            caller=caller,
            action="marketplace.evaluation_share" if shared else "marketplace.evaluation_unshare",
            site_id=evaluation.site_id,
            target_type="evaluation",
            target_id=evaluation.pk,
        )
    evaluation.refresh_from_db()
    return evaluation


def evaluation_complete(
    *, evaluation: SiteEvaluation, claim_id: str, metrics: dict[str, Any]
) -> SiteEvaluation:
    if not finish_claimed(
        SiteEvaluation,
        evaluation.pk,
        claim_id=claim_id,
        active={WorkStatus.RUNNING},
        status=WorkStatus.SUCCEEDED,
        metrics=clean_metrics(metrics),
        finished_at=timezone.now(),
    ):
        raise Conflict("This evaluation is not running.", code="not_running")
    evaluation.refresh_from_db()
    return evaluation
