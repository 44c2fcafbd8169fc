"""What a run of `refresh_everything` needs before it starts: raw logs, and its day partitions.

The job holds the day-partitioned raw and validated event assets, so every run of it names a
partition range (one run covers it: their backfill policy is single-run), and a dynamic partition
must be registered before a run may name it. `vidrec pipeline` runs this module first
(`python -m orchestration.refresh [--days FIRST...LAST]`), which simulates the embedded default
data on an empty home, registers every day present and prints the run's tags as JSON; then
`dagster job execute ... --tags <them>`. The sensor and the schedule ask for the days that changed.
"""

from __future__ import annotations

import argparse
import json
import sys

from dagster import DagsterInstance

from orchestration.assets.raw import ensure_raw_logs
from orchestration.assets.validated import rules_record
from orchestration.assets.validated_files import changed_days
from orchestration.partitions import NoDaysError, days_between, days_with_data, range_tags, register_days
from vidrec.settings import VidrecSettings


def prepare_refresh(settings: VidrecSettings, instance: DagsterInstance,
                    first_day: str | None = None, last_day: str | None = None) -> dict[str, str]:
    """Tags of one run over every day with data (or the registered days from `first_day` to
    `last_day`: a backfill), after simulating an empty home and registering the days present."""
    settings.ensure_dirs()
    ensure_raw_logs(settings)
    register_days(instance, days_with_data(settings))
    if first_day or last_day:
        days = days_between(instance, first_day or last_day, last_day or first_day)
    else:
        days = days_with_data(settings)
    return range_tags(instance, days)


def changed_days_tags(settings: VidrecSettings, instance: DagsterInstance) -> tuple[list[str], dict[str, str]]:
    """The days whose raw files changed since they were validated (registered now), and the tags
    of one run over them; ([], {}) when none did."""
    days = changed_days(settings, rules_record(settings))
    if not days:
        return [], {}
    register_days(instance, days)
    return days, range_tags(instance, days)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m orchestration.refresh", description=__doc__.splitlines()[0])
    parser.add_argument("--days", metavar="FIRST...LAST", help="only these days (a backfill), e.g. "
                        "2026-01-03...2026-01-05; default: every day with data")
    arguments = parser.parse_args(argv)
    first = last = None
    if arguments.days:
        first, separator, last = arguments.days.partition("...")
        if not separator or not first or not last:
            parser.error(f"--days expects FIRST...LAST (e.g. 2026-01-03...2026-01-05), got {arguments.days!r}")
    try:
        tags = prepare_refresh(VidrecSettings(), DagsterInstance.get(), first, last)
    except NoDaysError as error:
        sys.stderr.write(f"error: {error}\n")
        return 2
    sys.stdout.write(json.dumps(tags) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
