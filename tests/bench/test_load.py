"""bench/load.py's reading of what locust and gunicorn wrote: percentiles per endpoint, and server errors counted from
both locust's failures and gunicorn's own access log (a 5xx must never read as zero)."""

from __future__ import annotations

from pathlib import Path

from bench.load import access_log_5xx, read_stats

HEADER = (
    "Type,Name,Request Count,Failure Count,Median Response Time,Average Response Time,Min Response Time,"
    "Max Response Time,Average Content Size,Requests/s,Failures/s,50%,66%,75%,80%,90%,95%,98%,99%,99.9%,99.99%,100%"
)


def test_stats_per_endpoint_and_failures_by_status(tmp_path: Path) -> None:
    (tmp_path / "run_stats.csv").write_text(
        f"{HEADER}\n"
        "GET,dashboard: cycle preview (slider),200,3,40,52.1,9.0,610.0,900.0,3.3,0.05,"
        "40,45,50,55,70,120,300,480,610,610,610\n"
        "GET,dashboard: cycle progress poll,400,0,12,14.0,3.0,90.0,300.0,6.6,0.0,12,13,14,15,20,31,50,66,90,90,90\n"
        ",Aggregated,600,3,20,27.0,3.0,610.0,500.0,9.9,0.05,20,25,30,33,45,80,200,400,610,610,610\n"
    )
    (tmp_path / "run_failures.csv").write_text(
        "Method,Name,Error,Occurrences\n"
        "GET,dashboard: cycle preview (slider),CatchResponseError('HTTP 500'),2\n"
        "GET,dashboard: cycle preview (slider),CatchResponseError('HTTP 0'),1\n"
    )
    endpoints, failures = read_stats(tmp_path / "run")
    assert list(endpoints) == ["dashboard: cycle preview (slider)", "dashboard: cycle progress poll"]
    preview = endpoints["dashboard: cycle preview (slider)"]
    assert (preview["requests"], preview["failures"], preview["p50_ms"], preview["p95_ms"], preview["p99_ms"]) == (
        200,
        3,
        40.0,
        120.0,
        480.0,
    )
    assert failures == {"500": 2, "0": 1}


def test_server_errors_in_gunicorns_access_log(tmp_path: Path) -> None:
    log = tmp_path / "access.log"
    log.write_text('GET "/" 200\nGET "/projects/1/" 500\nGET "/api/projects/" 502\nGET "/x 500/" 404\n')
    assert access_log_5xx(log) == 2
    assert access_log_5xx(tmp_path / "missing.log") == 0
