"""The `revrec` command (SPEC §7): a thin driver of the Dagster jobs against the instance in DAGSTER_HOME,
so its runs appear in the UI. It exits non-zero with a one-line reason on failure."""

from __future__ import annotations

import argparse
import os
import shutil
import sys
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parents[1]


class CliError(Exception):
    pass


def _instance():
    from dagster import DagsterInstance

    if not os.environ.get("DAGSTER_HOME"):
        home = Path("data/dagster_home").resolve()
        home.mkdir(parents=True, exist_ok=True)
        src = PROJECT_ROOT / "dagster.yaml"
        if src.exists() and not (home / "dagster.yaml").exists():
            shutil.copyfile(src, home / "dagster.yaml")
        os.environ["DAGSTER_HOME"] = str(home)
    return DagsterInstance.get()


def _failure_reason(result) -> str:
    for event in result.all_events:
        if event.is_step_failure:
            data = event.step_failure_data
            if data.user_failure_data and data.user_failure_data.description:
                return data.user_failure_data.description
            error = data.error
            while error is not None and error.cause is not None:
                error = error.cause
            if error is not None:
                return error.message.strip()
    for event in result.all_events:
        if event.event_type_value == "ASSET_CHECK_EVALUATION":
            ev = event.event_specific_data
            if not ev.passed:
                return f"check {ev.check_name} on {ev.asset_key.to_user_string()} failed: {ev.description or ''}"
    return "the run failed; open it in the Dagster UI for details"


def run_job(name: str, run_config: dict | None = None, tags: dict | None = None, quiet: bool = False):
    from revrec_pipelines.definitions import defs

    job = defs.resolve_job_def(name)
    # the console shows warnings and errors only; every event is in the run's log in the UI
    config = {"loggers": {"console": {"config": {"log_level": os.environ.get("REVREC_LOG_LEVEL", "WARNING")}}}}
    config.update(run_config or {})
    result = job.execute_in_process(run_config=config, instance=_instance(), raise_on_error=False, tags=tags or {})
    if not result.success:
        raise CliError(f"{name} failed: {_failure_reason(result)}")
    if not quiet:
        print(f"{name}: run {result.run_id} succeeded")
    return result


def _settings():
    from revrec_pipelines.lib.settings import Settings

    return Settings.from_env()


def cmd_import(args) -> None:
    config = {}
    if args.source:
        config["source"] = args.source
    if args.full:
        config["incremental"] = False
    run_job("import_files", {"ops": {"raw_inputs": {"config": config}}})


def close_outputs(period: int) -> None:
    from revrec_pipelines.defs.close.sensors import close_outputs_run_config

    run_job("close_outputs", close_outputs_run_config(period), tags={"revrec/period": str(period)})


def cmd_close(args) -> None:
    from revrec_pipelines.defs.close.sensors import INLINE_TAG
    from revrec_pipelines.lib.periods import InvalidPeriod, parse_period

    try:
        period = parse_period(args.period)
    except InvalidPeriod as exc:
        raise CliError(str(exc)) from exc
    run_job(
        "close_period",
        {"ops": {"closed_periods": {"config": {"period": str(period), "closed_by": args.by}}}},
        tags={INLINE_TAG: "inline", "revrec/period": str(period)},
    )
    close_outputs(period)
    print(f"closed {period}; exports written to {_settings().export_dest}")


def cmd_reopen(args) -> None:
    run_job("reopen_period", {"ops": {"reopen_period_op": {"config": {"period": args.period, "reopened_by": args.by}}}})
    print(f"reopened {args.period} and every later closed period")


def cmd_bench(args) -> None:
    from revrec_pipelines.lib.bench import run_bench

    if not 0 < args.modified <= 1:
        sys.exit(f"--modified is the fraction of the lines the batch changes, above 0 and at most 1 (0.01 is 1%); got {args.modified}")
    if args.closed < 1:
        sys.exit(f"--closed is the number of periods closed before the continuous export, at least 1; got {args.closed}")
    s = _settings()
    run_bench(args.lines, args.seed, threads=s.duckdb_threads, memory_limit=s.duckdb_memory_limit,
              continuous=not args.skip_continuous, modified=args.modified, closed=args.closed)


def cmd_export_continuous(_args) -> None:
    result = run_job("continuous_export_job")
    mat = [e for e in result.all_events if e.is_step_materialization]
    version = mat[-1].event_specific_data.materialization.metadata.get("version") if mat else None
    print(f"continuous export: {getattr(version, 'value', version)}")


def cmd_sync_rillet(args) -> None:
    run_job("rillet_sync", {"ops": {"rillet_objects": {"config": {"full": bool(args.full)}}}})


def cmd_post(args) -> None:
    config = {"period": args.period} if args.period else {}
    run_job("post_journals", {"ops": {"post_journals_op": {"config": config}}})


def cmd_not_available(what: str, issue: str):
    def run(_args) -> None:
        raise CliError(f"{what} is not available in this version yet ({issue})")

    return run


def cmd_generate(args) -> None:
    from revrec_pipelines.lib.generator import generate

    summary = generate(Path(args.out), lines=args.lines, seed=args.seed)
    print(summary)


def cmd_demo(args) -> None:
    from revrec_pipelines.demo import run_demo

    run_demo(run_job, close_outputs)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="revrec", description="revrec-pipelines: ASC 606 revenue recognition on Dagster + DuckDB")
    sub = p.add_subparsers(dest="command", required=True)
    s = sub.add_parser("demo", help="fresh warehouse from the bundled sample data: import, compute, close, export, summary")
    s.set_defaults(func=cmd_demo)
    s = sub.add_parser("import", help="the import job on REVREC_SOURCE")
    s.add_argument("--source", help="override REVREC_SOURCE for this run")
    s.add_argument("--full", action="store_true", help="reload every file (incremental off); still idempotent")
    s.set_defaults(func=cmd_import)
    s = sub.add_parser("sync-rillet", help="the Rillet sync job (incremental)")
    s.add_argument("--full", action="store_true", help="re-read and re-map every object")
    s.set_defaults(func=cmd_sync_rillet)
    s = sub.add_parser("close", help="close a period: checks, freeze, close-period exports, posting when on")
    s.add_argument("period", help="YYYYMM")
    s.add_argument("--by", default=os.environ.get("USER", "revrec-cli"), help="who closes (audit)")
    s.set_defaults(func=cmd_close)
    s = sub.add_parser("reopen", help="reopen a period and every later closed period")
    s.add_argument("period", help="YYYYMM")
    s.add_argument("--by", default=os.environ.get("USER", "revrec-cli"), help="who reopens (audit)")
    s.set_defaults(func=cmd_reopen)
    s = sub.add_parser("export-continuous", help="the continuous export job")
    s.set_defaults(func=cmd_export_continuous)
    s = sub.add_parser("post", help="post Pending and Failed journal entries")
    s.add_argument("--period", help="YYYYMM")
    s.set_defaults(func=cmd_post)
    s = sub.add_parser("generate", help="realistic synthetic input files")
    s.add_argument("--lines", type=int, required=True)
    s.add_argument("--seed", type=int, default=1)
    s.add_argument("--out", required=True)
    s.set_defaults(func=cmd_generate)
    s = sub.add_parser("bench", help="end-to-end timing and peak memory on generated data")
    s.add_argument("--lines", type=int, required=True)
    s.add_argument("--seed", type=int, default=1)
    s.add_argument("--skip-continuous", action="store_true",
                   help="leave out the two continuous-export stages (e.g. for the 10M-line memory run)")
    s.add_argument("--modified", type=float, default=0.01, metavar="FRACTION",
                   help="fraction of the lines the modification batch changes (default 0.01: 1%%)")
    s.add_argument("--closed", type=int, default=1, metavar="N",
                   help="periods closed before the continuous export (default 1); those after the first are "
                        "timed apart, not in the total: the export then runs over that much history")
    s.set_defaults(func=cmd_bench)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        args.func(args)
    except CliError as exc:
        print(f"revrec {args.command}: " + " ".join(str(exc).split()), file=sys.stderr)
        return 1
    except Exception as exc:  # a setting or source problem: one line, no traceback
        from revrec_pipelines.lib.settings import SettingsError

        if isinstance(exc, SettingsError | OSError):
            print(f"revrec {args.command}: {exc}", file=sys.stderr)
            return 1
        raise
    return 0


if __name__ == "__main__":
    sys.exit(main())
