"""`revrec bench` runs every stage on generated data and reports it (a smoke test: speed is measured by
the benchmark itself and recorded in BENCHMARKS.md, never asserted by a timed test)."""

from revrec_pipelines.lib.bench import run_bench


def test_bench_runs_every_stage_on_a_small_data_set(tmp_path):
    lines: list[str] = []
    stages = run_bench(200, seed=3, workdir=tmp_path, print_fn=lines.append)
    names = [s.name for s in stages]
    assert names[:3] == ["import", "compute", "close + close-period export"]
    assert "1% modification: import + compute + continuous export" in names
    assert all(s.rows > 0 and s.seconds >= 0 and s.peak_rss_mb > 0 for s in stages)
    assert lines[-1].startswith("SUMMARY lines=200 ")
    assert any((tmp_path / "out").glob("closedperiodexport-*.csv"))
    assert "continuous_export/compute=" in lines[-1] and "waterfall/baseline=" in lines[-1]


def test_bench_can_leave_out_the_continuous_export_stages(tmp_path):
    lines: list[str] = []
    stages = run_bench(200, seed=3, workdir=tmp_path, print_fn=lines.append, continuous=False)
    assert [s.name for s in stages] == [
        "import", "compute", "close + close-period export", "baseline generate_series + window"]
    assert "continuous=skipped" in lines[-1]
    assert not any((tmp_path / "out").glob("continuousexport-*.csv"))
