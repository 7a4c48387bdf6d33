"""Reads of datasets: lookups by name, a version's items (with their split), pages."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.db.models import Case, CharField, Count, F, FloatField, IntegerField, QuerySet, Value, When, Window
from django.db.models.fields.json import KeyTextTransform
from django.db.models.functions import MD5, Cast, Concat, Round, RowNumber

from config.errors import NotFound, ValidationFailed
from datasets.models import Dataset, DatasetItem, DatasetVersion, in_version
from projects.models import Project

SPLITS = ("train", "test")
PAGE_DEFAULT = 50
PAGE_MAX = 1_000


def datasets_for(*, project: Project) -> list[Dataset]:
    return list(Dataset.objects.filter(project=project).order_by("name"))


def dataset_get(*, project: Project, name: str) -> Dataset:
    dataset = Dataset.objects.select_related("project").filter(project=project, name=name).first()
    if dataset is None:
        raise NotFound(f"No dataset named {name!r} in this project.")
    return dataset


def version_number(dataset: Dataset, raw: Any) -> int:
    """`?version=` (default: the current one); an unknown version is a 404."""
    if raw in (None, ""):
        return dataset.current_version
    try:
        number = int(raw)
    except (TypeError, ValueError):
        raise ValidationFailed(f"version: {raw!r} is not a version number",
                               detail={"version": ["a whole number"]}) from None
    if not 0 <= number <= dataset.current_version:
        raise NotFound(f"Dataset {dataset.name!r} has no version {number} (current: {dataset.current_version}).")
    return number


def version_get(dataset: Dataset, number: int) -> DatasetVersion | None:
    """None for version 0 (created, never changed)."""
    return dataset.versions.filter(number=number).first()


def versions_of(*, dataset: Dataset, limit: int = 100) -> list[DatasetVersion]:
    return list(dataset.versions.select_related("created_by").order_by("-number")[:limit])


def split_of(raw: Any) -> str | None:
    if raw in (None, ""):
        return None
    if raw not in SPLITS:
        raise ValidationFailed(f"split: {raw!r} is not one of train, test", detail={"split": ["train or test"]})
    return raw


def version_items(*, dataset: Dataset, number: int, split: str | None = None) -> QuerySet[DatasetItem]:
    """The items of one version, in id order, each annotated with `split` ("train",
    "test" or None when the version has no split).

    The split is recomputed from the version's own items, not stored: within each
    stratum (the value of the stratify key, missing = its own stratum) items are ranked
    by md5(seed || id), and the first round(test_fraction x stratum size) are test. Same
    version, same items, same seed: the same split, forever."""
    items = DatasetItem.objects.filter(in_version(number), dataset=dataset)
    spec = (version_get(dataset, number).split if number else {}) or {}
    if not spec:
        items = items.annotate(split=Value(None, output_field=CharField()))
        if split is not None:
            raise ValidationFailed(f"split: version {number} has no train/test split",
                                   detail={"split": ["this version has no split"]})
        return items.order_by("id")
    partition = [KeyTextTransform(spec["stratify_by"], "metadata")] if spec.get("stratify_by") else []
    order = MD5(Concat(Value(str(spec["seed"])), Cast("id", CharField())))
    items = items.annotate(
        split_rank=Window(RowNumber(), partition_by=partition or None, order_by=order.asc()),
        stratum_size=Window(Count("id"), partition_by=partition or None),
    ).annotate(
        test_quota=Round(Cast(F("stratum_size"), FloatField()) * Value(float(spec["test_fraction"]))),
    ).annotate(
        split=Case(When(split_rank__lte=Cast(F("test_quota"), IntegerField()), then=Value("test")),
                   default=Value("train"), output_field=CharField()),
    )
    if split is not None:
        items = items.filter(split=split)
    return items.order_by("id")


@dataclass(frozen=True)
class ItemPage:
    items: list[DatasetItem]
    next_cursor: int | None


def items_page(*, dataset: Dataset, number: int, split: str | None = None, after: int | None = None,
               limit: int = PAGE_DEFAULT) -> ItemPage:
    """Keyset pages by item id."""
    qs = version_items(dataset=dataset, number=number, split=split)
    if after is not None:
        qs = qs.filter(id__gt=after)
    rows = list(qs[:limit + 1])
    more = len(rows) > limit
    rows = rows[:limit]
    return ItemPage(rows, rows[-1].pk if more and rows else None)


def split_counts(*, dataset: Dataset, number: int) -> dict[str, int]:
    """Items per split of a version ({} when it has no split)."""
    version = version_get(dataset, number) if number else None
    if version is None or not version.split:
        return {}
    counts = dict.fromkeys(SPLITS, 0)
    for split in version_items(dataset=dataset, number=number).values_list("split", flat=True).iterator(5_000):
        counts[split] += 1
    return counts


def metadata_keys(*, dataset: Dataset, number: int, limit: int = 50) -> list[str]:
    """Metadata keys of a version's items (for the stratify and slice pickers)."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT k, count(*) FROM datasets_datasetitem i, jsonb_object_keys(i.metadata) k "
            "WHERE i.dataset_id = %s AND i.added_in <= %s AND (i.removed_in IS NULL OR i.removed_in > %s) "
            "AND jsonb_typeof(i.metadata) = 'object' GROUP BY k ORDER BY count(*) DESC, k LIMIT %s",
            [dataset.pk, number, number, limit])
        return [row[0] for row in cursor.fetchall()]


def datasets_with_counts(*, project: Project) -> list[tuple[Dataset, int]]:
    """Each dataset with the item count of its current version."""
    from django.db.models import OuterRef, Subquery

    count = DatasetVersion.objects.filter(dataset=OuterRef("pk"), number=OuterRef("current_version")) \
        .values("item_count")[:1]
    rows = Dataset.objects.filter(project=project).annotate(n=Subquery(count)).order_by("name")
    return [(d, d.n or 0) for d in rows]
