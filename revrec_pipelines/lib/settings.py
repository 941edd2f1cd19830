"""Settings from the environment, each with the embedded default of SPEC §7.

Secrets (passwords, API keys) are not read here: resources take them from the environment with
Dagster `EnvVar`, so they never appear in run config, logs or metadata.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

DEFAULTS: dict[str, str] = {
    "REVREC_WAREHOUSE": "./data/warehouse.duckdb",
    "REVREC_SOURCE": "file://./data/inbox",
    "REVREC_EXPORT_DEST": "file://./data/exports",
    "REVREC_HOME_CURRENCY": "USD",
    "REVREC_INCREMENTAL": "true",
    "REVREC_POSTING": "off",
    "REVREC_POSTING_DIMENSIONS": "Class,Location,Department",
    "RILLET_BASE_URL": "https://api.rillet.com",
    "INTACCT_ENDPOINT_URL": "https://api.intacct.com/ia/xml/xmlgw.phtml",
    "INTACCT_JOURNAL": "APJ",
    "REVREC_IMPORT_SCHEDULE": "daily",
    "REVREC_IMPORT_TIME": "00:00",
    "REVREC_IMPORT_TIMEZONE": "America/New_York",
    "REVREC_DUCKDB_THREADS": "",
    "REVREC_DUCKDB_MEMORY_LIMIT": "",
}

POSTING_TARGETS = ("off", "rillet", "intacct")
DIMENSIONS = ("Class", "Location", "Department")


class SettingsError(ValueError):
    pass


@dataclass(frozen=True)
class Settings:
    warehouse: str
    source: str
    export_dest: str
    home_currency: str
    incremental: bool
    posting: str
    posting_dimensions: tuple[str, ...]
    rillet_base_url: str
    intacct_endpoint_url: str
    intacct_journal: str
    import_schedule: str
    import_time: str
    import_timezone: str
    duckdb_threads: int | None
    duckdb_memory_limit: str | None

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if env is None else env

        def get(name: str) -> str:
            value = env.get(name, "")
            return value.strip() if value and value.strip() else DEFAULTS[name]

        incremental = get("REVREC_INCREMENTAL").lower()
        if incremental not in ("true", "false", "1", "0", "yes", "no"):
            raise SettingsError(f"REVREC_INCREMENTAL must be true or false, got {incremental!r}")
        posting = get("REVREC_POSTING").lower()
        if posting not in POSTING_TARGETS:
            raise SettingsError(f"REVREC_POSTING must be one of {', '.join(POSTING_TARGETS)}, got {posting!r}")
        dims = tuple(d.strip() for d in get("REVREC_POSTING_DIMENSIONS").split(",") if d.strip())
        unknown = [d for d in dims if d not in DIMENSIONS]
        if unknown:
            raise SettingsError(f"REVREC_POSTING_DIMENSIONS accepts {', '.join(DIMENSIONS)}; unknown: {', '.join(unknown)}")
        schedule = get("REVREC_IMPORT_SCHEDULE").lower()
        if schedule not in ("daily", "weekly", "monthly"):
            raise SettingsError(f"REVREC_IMPORT_SCHEDULE must be daily, weekly or monthly, got {schedule!r}")
        home = get("REVREC_HOME_CURRENCY").upper()
        if len(home) != 3 or not home.isalpha():
            raise SettingsError(f"REVREC_HOME_CURRENCY must be a 3-letter ISO code, got {home!r}")
        threads = get("REVREC_DUCKDB_THREADS")
        return cls(
            warehouse=get("REVREC_WAREHOUSE"),
            source=get("REVREC_SOURCE"),
            export_dest=get("REVREC_EXPORT_DEST"),
            home_currency=home,
            incremental=incremental in ("true", "1", "yes"),
            posting=posting,
            posting_dimensions=dims,
            rillet_base_url=get("RILLET_BASE_URL"),
            intacct_endpoint_url=get("INTACCT_ENDPOINT_URL"),
            intacct_journal=get("INTACCT_JOURNAL"),
            import_schedule=schedule,
            import_time=get("REVREC_IMPORT_TIME"),
            import_timezone=get("REVREC_IMPORT_TIMEZONE"),
            duckdb_threads=int(threads) if threads else None,
            duckdb_memory_limit=get("REVREC_DUCKDB_MEMORY_LIMIT") or None,
        )
