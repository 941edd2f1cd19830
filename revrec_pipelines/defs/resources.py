"""Resources, each built from the environment with the embedded default of SPEC §7."""


from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import dagster as dg
import duckdb
from dagster_duckdb import DuckDBResource

from revrec_pipelines.lib import warehouse as warehouse_lib
from revrec_pipelines.lib.settings import Settings
from revrec_pipelines.lib.warehouse import ensure_schema

WAREHOUSE_POOL = "revrec_warehouse"  # every step that writes DuckDB runs in this pool (limit 1, dagster.yaml)


class Warehouse(DuckDBResource):
    """The DuckDB warehouse. `connect()` opens it with the project's schema, thread and memory settings."""

    @contextmanager
    def connect(self) -> Iterator[duckdb.DuckDBPyConnection]:
        path = Path(self.database)
        path.parent.mkdir(parents=True, exist_ok=True)
        with self.get_connection() as con:
            try:
                con.execute(f"SET temp_directory = '{(path.parent / '.duckdb_tmp').as_posix()}'")
                ensure_schema(con)
                yield con
            finally:
                # DuckDBResource does not close the connection when the body raises; a leaked
                # connection would keep the file open in this process.
                con.close()


class RevrecSettings(dg.ConfigurableResource):
    """Non-secret settings of the run (SPEC §7), shown in the UI's resource page."""

    home_currency: str = "USD"
    source: str = "file://./data/inbox"
    export_dest: str = "file://./data/exports"
    incremental: bool = True
    # "none" rather than the setting's "off": YAML reads a bare `off` as false in the Launchpad's scaffold
    posting: str = "none"
    posting_dimensions: list[str] = ["Class", "Location", "Department"]
    intacct_journal: str = "APJ"

    @classmethod
    def from_settings(cls, s: Settings) -> "RevrecSettings":
        return cls(
            home_currency=s.home_currency,
            source=s.source,
            export_dest=s.export_dest,
            incremental=s.incremental,
            posting="none" if s.posting == "off" else s.posting,
            posting_dimensions=list(s.posting_dimensions),
            intacct_journal=s.intacct_journal,
        )


def build_resources(settings: Settings | None = None) -> dict[str, object]:
    s = settings or Settings.from_env()
    config: dict[str, object] = {}
    if s.duckdb_threads:
        config["threads"] = s.duckdb_threads
    # a deliberate memory limit (DuckDB's own default is 80% of the RAM); what does not fit spills beside the warehouse
    config["memory_limit"] = s.duckdb_memory_limit or warehouse_lib.DEFAULT_MEMORY_LIMIT
    config["preserve_insertion_order"] = warehouse_lib.PRESERVE_INSERTION_ORDER
    return {
        "warehouse": Warehouse(database=s.warehouse, connection_config=config),
        "revrec": RevrecSettings.from_settings(s),
    }


def resource_defs() -> dg.Definitions:
    return dg.Definitions(resources=build_resources())
