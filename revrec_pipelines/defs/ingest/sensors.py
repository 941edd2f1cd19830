"""New files on the source trigger an import run (SPEC §7). The sensor only lists; it never downloads
and never opens the warehouse. Its cursor holds the file identities it has acted on."""


import dagster as dg

from revrec_pipelines.defs.jobs import import_job
from revrec_pipelines.lib.file_watch import WatchState, decide
from revrec_pipelines.lib.settings import Settings
from revrec_pipelines.lib.sources import SourceError, open_source


@dg.sensor(
    job=import_job,
    minimum_interval_seconds=60,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description=(
        "Watches REVREC_SOURCE for new or changed input files; a file triggers one import run once it has been "
        "listed unchanged on two ticks (so half-written files wait). Run key: the identities of the files."
    ),
)
def new_file_sensor(context: dg.SensorEvaluationContext):
    settings = Settings.from_env()
    try:
        listed = open_source(settings.source).list_files()
    except SourceError as exc:
        return dg.SkipReason(f"cannot list {settings.source}: {exc}")
    decision = decide(listed, WatchState.from_json(context.cursor))
    context.update_cursor(decision.state.to_json())
    if not decision.ready:
        waiting = f"; {len(decision.waiting)} file(s) waiting to be stable" if decision.waiting else ""
        return dg.SkipReason(f"no new files at {settings.source}{waiting}")
    names = ", ".join(f.path for f in decision.ready[:10])
    return dg.RunRequest(run_key=decision.run_key, tags={"revrec/files": names[:200]})
