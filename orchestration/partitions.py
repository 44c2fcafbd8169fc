"""Daily partitions of the raw events and the validated layer: one partition per day that holds data.

The partitions are dynamic (`raw_days`), registered from the `day=YYYY-MM-DD` directories present
under the raw and validated event tables, not a calendar from a start date: the logs are not on
today's wall clock (the simulator writes 2026-01-01.., MovieLens 1997-98, the event intake today),
so any fixed calendar would either leave some source's days outside every partition (their rows
never validated, never in the marts) or hold decades of empty days. A day that only the validated
layer still has (its raw files were replaced by an import) stays a partition, so re-validating it
removes it from the validated layer.

Dynamic partitions keep the order they were registered in, which is what a partition range spans.
Days are registered sorted, so the order is the calendar's unless older days arrive after newer
ones (an import of older data); a range then still covers the days between its ends in that
order, which `range_tags` always chooses wide enough to hold every day asked for.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from pathlib import Path

from dagster import DagsterInstance, DynamicPartitionsDefinition
from dagster._core.storage.tags import ASSET_PARTITION_RANGE_END_TAG, ASSET_PARTITION_RANGE_START_TAG

from vidrec.settings import VidrecSettings

RAW_DAYS = DynamicPartitionsDefinition(name="raw_days")
# Event tables are partitioned by day; users and videos are the catalogue every event refers to,
# validated whole (a video's upload day reaches back to the 1920s in MovieLens: no useful partition).
PARTITIONED_TABLES = ("impressions", "watches", "searches", "subscriptions")
CATALOG_TABLES = ("users", "videos")
# Asset tag of the day-partitioned assets, for selections: `--select 'tag:partitions=raw_days'`.
PARTITIONED_TAG = {"partitions": RAW_DAYS.name}
_DAY_DIRECTORY = re.compile(r"^day=(\d{4}-\d{2}-\d{2})$")


class NoDaysError(ValueError):
    """There is no day partition to run over; the message says why."""


def day_directories(table_dir: Path) -> dict[str, Path]:
    """`{day: directory}` of a table's `day=YYYY-MM-DD` directories (none if the table is absent)."""
    if not table_dir.is_dir():
        return {}
    return {match.group(1): path for path in table_dir.iterdir()
            if path.is_dir() and (match := _DAY_DIRECTORY.match(path.name))}


def days_with_data(settings: VidrecSettings) -> list[str]:
    """Every day some event table holds, raw or validated, sorted."""
    days: set[str] = set()
    for table in PARTITIONED_TABLES:
        days |= day_directories(settings.raw_dir / table).keys()
        days |= day_directories(settings.validated_dir / table).keys()
    return sorted(days)


def register_days(instance: DagsterInstance, days: Iterable[str]) -> list[str]:
    """Add the days not yet partitions (sorted); returns those added."""
    known = set(instance.get_dynamic_partitions(RAW_DAYS.name))
    new = sorted(set(days) - known)
    if new:
        instance.add_dynamic_partitions(RAW_DAYS.name, new)
    return new


def range_tags(instance: DagsterInstance, days: Iterable[str]) -> dict[str, str]:
    """Tags of one run over the narrowest partition range holding every one of `days`."""
    order = instance.get_dynamic_partitions(RAW_DAYS.name)
    wanted = set(days)
    unknown = sorted(wanted - set(order))
    if unknown:
        raise NoDaysError(f"days {unknown} are not partitions of {RAW_DAYS.name!r}; register them first")
    if not wanted:
        raise NoDaysError("no day to run over: no event table under the raw or validated layer has a day= directory")
    positions = [position for position, day in enumerate(order) if day in wanted]
    return {ASSET_PARTITION_RANGE_START_TAG: order[positions[0]], ASSET_PARTITION_RANGE_END_TAG: order[positions[-1]]}


def days_between(instance: DagsterInstance, first: str, last: str) -> list[str]:
    """The registered days from `first` to `last`, inclusive, in calendar order."""
    known = instance.get_dynamic_partitions(RAW_DAYS.name)
    for day in (first, last):
        if day not in known:
            raise NoDaysError(f"{day} is not a partition of {RAW_DAYS.name!r} (no raw data that day?); "
                              f"known days run from {min(known, default='none')} to {max(known, default='none')}")
    return sorted(day for day in known if first <= day <= last)
