"""Validated layer: the raw rows the row rules (expectations/row_rules.py) pass, typed, per day, and
the rows they fail in quarantine with every reason, so clean rows reach dbt and bad rows never do.

One asset per raw table (`validated/<table>`), after `raw/<table>`: users and videos whole (every
event is judged against their validated ids), the event tables one day partition at a time. Each
materialization says how many rows came in, how many are clean and how many were quarantined, per
reason (numbers Dagster plots across materializations), with a Markdown table of example bad rows.
Its check fails when the quarantined share of the rows it judged exceeds
`VIDREC_QUARANTINE_TOLERATED_SHARE`: an ERROR that stops everything downstream in the run when
`VIDREC_QUARANTINE_SEVERITY=block`, a WARN that lets the clean rows flow on when `warn`. Raw stays
untouched; files on disk are written by validated_files.py.
"""


from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime

from dagster import (
    AssetCheckResult,
    AssetCheckSeverity,
    AssetCheckSpec,
    AssetExecutionContext,
    AssetKey,
    BackfillPolicy,
    MaterializeResult,
    MetadataValue,
    asset,
)

from expectations.row_rules import REASONS, SOURCE_FILE, SOURCE_ROW, References, RowVerdicts, RuleSettings, judge_rows
from orchestration.assets.raw import RAW_ASSET_KEYS
from orchestration.assets.validated_files import (
    ensure_empty_file,
    load_references,
    partition_record,
    raw_files_of_day,
    raw_files_of_table,
    remove_days_except,
    split_by_day,
    write_judged_day,
)
from orchestration.partitions import CATALOG_TABLES, PARTITIONED_TABLES, PARTITIONED_TAG, RAW_DAYS
from orchestration.resources import VidrecResource
from vidrec.schema import RAW_TABLES
from vidrec.settings import VidrecSettings

VALIDATED_GROUP = "validated"
VALIDATED_ASSET_KEYS = {name: AssetKey(["validated", name]) for name in RAW_TABLES}
QUARANTINE_CHECK = "quarantined_share_within_tolerance"
EXAMPLE_ROWS = 10
_EXAMPLE_VALUE_CHARS = 60


def rule_settings(settings: VidrecSettings) -> RuleSettings:
    return RuleSettings(now=datetime.now(UTC).replace(tzinfo=None), max_watch_ratio=settings.quarantine_max_watch_ratio)


def rules_record(settings: VidrecSettings) -> dict:
    """The settings a verdict depends on (besides the clock), recorded with each partition."""
    return {"max_watch_ratio": settings.quarantine_max_watch_ratio}


@dataclass
class QuarantineTally:
    """Verdicts added up over the partitions one materialization judged."""

    rows_in: int = 0
    quarantined: int = 0
    reasons: Counter = field(default_factory=Counter)
    examples: list[dict] = field(default_factory=list)
    rewritten_days: list[str] = field(default_factory=list)

    def add(self, verdicts: RowVerdicts) -> None:
        self.rows_in += verdicts.rows_in
        self.quarantined += verdicts.quarantined.num_rows
        self.reasons.update(verdicts.reason_counts)
        room = EXAMPLE_ROWS - len(self.examples)
        if room > 0:
            self.examples += verdicts.quarantined.slice(0, room).to_pylist()

    @property
    def share(self) -> float:
        return self.quarantined / self.rows_in if self.rows_in else 0.0

    def metadata(self) -> dict:
        return {
            "rows_in": self.rows_in,
            "clean_rows": self.rows_in - self.quarantined,
            "quarantined_rows": self.quarantined,
            "quarantined_share": float(self.share),
            **{f"reason {reason}": count for reason, count in sorted(self.reasons.items())},
            "rewritten_days": len(self.rewritten_days),
            "examples": MetadataValue.md(_examples_markdown(self.examples)),
        }


def _examples_markdown(examples: list[dict]) -> str:
    if not examples:
        return "No row was quarantined."
    lines = ["| source file | row | reasons | values |", "| --- | --- | --- | --- |"]
    for row in examples:
        values = "; ".join(f"{name}={_short(value)}" for name, value in row.items()
                           if name not in (REASONS, SOURCE_FILE, SOURCE_ROW) and value is not None)
        cells = (row[SOURCE_FILE], "" if row[SOURCE_ROW] is None else row[SOURCE_ROW], ", ".join(row[REASONS]), values)
        lines.append("| " + " | ".join(str(cell).replace("|", "\\|").replace("\n", " ") for cell in cells) + " |")
    return "\n".join(lines) + "\n"


def _short(value: object) -> str:
    text = str(value)
    return text if len(text) <= _EXAMPLE_VALUE_CHARS else text[: _EXAMPLE_VALUE_CHARS - 1] + "…"


def quarantine_check_result(table_name: str, tally: QuarantineTally, settings: VidrecSettings) -> AssetCheckResult:
    block = settings.quarantine_severity == "block"
    return AssetCheckResult(
        asset_key=VALIDATED_ASSET_KEYS[table_name],
        check_name=QUARANTINE_CHECK,
        passed=tally.share <= settings.quarantine_tolerated_share,
        severity=AssetCheckSeverity.ERROR if block else AssetCheckSeverity.WARN,
        metadata={
            "quarantined_share": float(tally.share),
            "tolerated_share": float(settings.quarantine_tolerated_share),
            "severity": settings.quarantine_severity,
            "quarantined_rows": tally.quarantined,
            "rows_in": tally.rows_in,
        },
    )


def _check_spec(table_name: str) -> AssetCheckSpec:
    return AssetCheckSpec(
        QUARANTINE_CHECK,
        asset=VALIDATED_ASSET_KEYS[table_name],
        blocking=True,  # only an ERROR (severity block) stops what is downstream
        description="The share of rows quarantined in this materialization is within "
                    "VIDREC_QUARANTINE_TOLERATED_SHARE (ERROR when VIDREC_QUARANTINE_SEVERITY=block, else WARN).",
    )


def _catalog_asset(table_name: str):
    @asset(
        key=VALIDATED_ASSET_KEYS[table_name],
        deps=[RAW_ASSET_KEYS[table_name]],
        group_name=VALIDATED_GROUP,
        kinds={"parquet"},
        backfill_policy=BackfillPolicy.single_run(),  # see raw_catalog: CLI range runs take it along
        check_specs=[_check_spec(table_name)],
        description=f"Raw {table_name} that pass the row rules, typed (quarantine: VIDREC_HOME/quarantine).",
    )
    def _validated(context: AssetExecutionContext, vidrec: VidrecResource) -> MaterializeResult:
        settings = vidrec.settings()
        rules = rule_settings(settings)
        ensure_empty_file(settings, table_name)
        files = raw_files_of_table(settings, table_name)
        verdicts = judge_rows(table_name, files, References(), rules)
        tally = QuarantineTally()
        tally.add(verdicts)
        for day, day_verdicts in split_by_day(verdicts, files).items():
            day_files = [raw_file for raw_file in files if raw_file.day and raw_file.day.isoformat() == day]
            record = partition_record(settings, table_name, day_files, rules_record(settings))
            if write_judged_day(settings, table_name, day, day_verdicts, record, rules.now):
                tally.rewritten_days.append(day)
        days = {raw_file.day.isoformat() for raw_file in files if raw_file.day}
        tally.rewritten_days += remove_days_except(settings, table_name, days)
        context.log.info("validated %s: %s rows in, %s quarantined", table_name, tally.rows_in, tally.quarantined)
        return MaterializeResult(
            metadata={**tally.metadata(), "path": str(settings.validated_dir / table_name)},
            check_results=[quarantine_check_result(table_name, tally, settings)],
        )

    return _validated


def _daily_asset(table_name: str):
    @asset(
        key=VALIDATED_ASSET_KEYS[table_name],
        deps=[RAW_ASSET_KEYS[table_name], *(VALIDATED_ASSET_KEYS[name] for name in CATALOG_TABLES)],
        group_name=VALIDATED_GROUP,
        kinds={"parquet"},
        tags=PARTITIONED_TAG,
        partitions_def=RAW_DAYS,
        backfill_policy=BackfillPolicy.single_run(),
        check_specs=[_check_spec(table_name)],
        description=f"Raw {table_name} that pass the row rules (their users and videos validated), typed, "
                    "by day (quarantine: VIDREC_HOME/quarantine).",
    )
    def _validated(context: AssetExecutionContext, vidrec: VidrecResource) -> MaterializeResult:
        settings = vidrec.settings()
        rules = rule_settings(settings)
        ensure_empty_file(settings, table_name)
        references = load_references(settings)
        tally = QuarantineTally()
        for day in context.partition_keys:
            files = raw_files_of_day(settings, table_name, day)
            verdicts = judge_rows(table_name, files, references, rules)
            record = partition_record(settings, table_name, files, rules_record(settings))
            day_tally = QuarantineTally()
            day_tally.add(verdicts)
            if write_judged_day(settings, table_name, day, verdicts, record, rules.now):
                day_tally.rewritten_days.append(day)
                tally.rewritten_days.append(day)
            tally.add(verdicts)
            context.add_asset_metadata({**day_tally.metadata(), "path": str(settings.validated_dir / table_name /
                                                                              f"day={day}")}, partition_key=day)
        context.log.info("validated %s over %s day(s): %s rows in, %s quarantined", table_name,
                         len(context.partition_keys), tally.rows_in, tally.quarantined)
        return MaterializeResult(check_results=[quarantine_check_result(table_name, tally, settings)])

    return _validated


validated_catalog = [_catalog_asset(name) for name in CATALOG_TABLES]
validated_events = [_daily_asset(name) for name in PARTITIONED_TABLES]
