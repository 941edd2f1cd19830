"""The import schedule (SPEC §7): daily at 00:00 America/New_York by default; daily, weekly (Mondays) or
monthly (the 1st) at REVREC_IMPORT_TIME in REVREC_IMPORT_TIMEZONE."""


import dagster as dg

from revrec_pipelines.defs.jobs import import_job
from revrec_pipelines.lib.settings import Settings, SettingsError


def import_cron(frequency: str, at: str) -> str:
    try:
        hour, minute = (int(x) for x in at.split(":"))
        assert 0 <= hour < 24 and 0 <= minute < 60
    except (ValueError, AssertionError) as exc:
        raise SettingsError(f"REVREC_IMPORT_TIME must be HH:MM (24-hour), got {at!r}") from exc
    return {"daily": f"{minute} {hour} * * *", "weekly": f"{minute} {hour} * * 1", "monthly": f"{minute} {hour} 1 * *"}[frequency]


def build_import_schedule(settings: Settings | None = None) -> dg.ScheduleDefinition:
    s = settings or Settings.from_env()
    return dg.ScheduleDefinition(
        name="import_schedule",
        job=import_job,
        cron_schedule=import_cron(s.import_schedule, s.import_time),
        execution_timezone=s.import_timezone,
        default_status=dg.DefaultScheduleStatus.RUNNING,
        description=f"Import new files {s.import_schedule} at {s.import_time} {s.import_timezone}.",
    )
