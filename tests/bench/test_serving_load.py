"""The serving load generator: open-loop sends, latency from the schedule, errors by kind, `--at`
hooks at their offsets, and the service's Prometheus metrics read back.

The generator runs against a small real HTTP server started here, whose answer depends on the
requested user id. Nothing asserts a wall-clock figure: only orders and relations that hold on a
busy machine (a request that waited for a stall finished after the stall, a hook ran no earlier
than asked)."""

from __future__ import annotations

import asyncio
import importlib
import json
import socket
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

BENCH_DIR = Path(__file__).resolve().parents[2] / "bench"
# Users with a scripted answer; every other user (the CLI draws 1..50 and unknowns) gets a plain one.
(OK_USER, SERVER_ERROR_USER, BAD_REQUEST_USER, SLOW_USER, HANG_UP_USER, DEGRADED_USER, NOT_JSON_USER,
 STALL_USER) = range(9001, 9009)


@pytest.fixture(scope="module")
def bench_on_path():
    """bench/ first on sys.path, as `python bench/serving_load.py` has it. Undone after this file."""
    sys.path.insert(0, str(BENCH_DIR))
    yield
    sys.path.remove(str(BENCH_DIR))
    for name in [name for name in sys.modules if name.startswith(("serving_load", "serving_metrics"))]:
        sys.modules.pop(name)


@pytest.fixture(scope="module")
def engine(bench_on_path):
    return importlib.import_module("serving_load_engine")


@pytest.fixture(scope="module")
def report(bench_on_path):
    return importlib.import_module("serving_load_report")


@pytest.fixture(scope="module")
def metrics(bench_on_path):
    return importlib.import_module("serving_metrics")


@pytest.fixture(scope="module")
def cli(bench_on_path):
    return importlib.import_module("serving_load")


class FakeService(ThreadingHTTPServer):
    """Answers /recommend by user id; `serial` makes it handle one request at a time, like one
    saturated worker, and records (monotonic) when the stalled request finished."""

    daemon_threads = True
    request_queue_size = 256

    def __init__(self, serial: bool = False, stall_s: float = 1.0, versions_after: float | None = None):
        super().__init__(("127.0.0.1", 0), Handler)
        self.lock = threading.Lock() if serial else None
        self.stall_s = stall_s
        self.stall_finished: float | None = None
        self.versions_after = versions_after  # monotonic time from which answers carry version 2
        self.metrics_text = ""  # what /metrics says; empty: a counter of the /recommend answers so far
        self.served = 0
        self.count_lock = threading.Lock()

    def handle_error(self, request, client_address) -> None:  # the hang-up user breaks its own answer
        pass

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


class Handler(BaseHTTPRequestHandler):
    server: FakeService

    def log_message(self, *args) -> None:  # keep test output quiet
        pass

    def do_GET(self) -> None:
        served = (
            "# TYPE vidrec_requests_total counter\n"
            f"vidrec_requests_total {self.server.served}\n"
        )
        self._answer(200, (self.server.metrics_text or served).encode(), "text/plain; version=0.0.4")

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        if self.server.lock is None:
            self._recommend(body)
        else:
            with self.server.lock:
                self._recommend(body)

    def _recommend(self, body: dict) -> None:
        with self.server.count_lock:
            self.server.served += 1
        user = body["user_id"]
        if user == STALL_USER:
            time.sleep(self.server.stall_s)
            self.server.stall_finished = time.monotonic()
        if user == SLOW_USER:
            time.sleep(1.0)
        if user == HANG_UP_USER:
            self.connection.shutdown(socket.SHUT_RDWR)  # no status line: the client sees a broken answer
            return
        if user == SERVER_ERROR_USER:
            return self._answer(500, b'{"error": "boom"}')
        if user == BAD_REQUEST_USER:
            return self._answer(400, b'{"error": "bad"}')
        if user == NOT_JSON_USER:
            return self._answer(200, b"<html>not json</html>", "text/html")
        after = self.server.versions_after
        version = "2" if after is not None and time.monotonic() >= after else "1"
        answer = {
            "user_id": user,
            "items": [{"video_id": 1, "score": 1.0}],
            "known_user": user < 1000,
            "model_versions": {"ranker": version, "retrieval": version},
        }
        if user == DEGRADED_USER:
            answer["degraded"] = ["user_features"]
        self._answer(200, json.dumps(answer).encode())

    def _answer(self, status: int, payload: bytes, content_type: str = "application/json") -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)


@pytest.fixture
def serve():
    servers = []

    def start(**options) -> FakeService:
        server = FakeService(**options)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


def _body(user: int) -> dict:
    return {"user_id": user, "k": 20, "surface": "home"}


def test_requests_due_during_a_stall_are_sent_on_time_and_their_latency_includes_the_wait(engine, serve):
    service = serve(serial=True, stall_s=1.0)
    rate = 20.0
    bodies = [_body(STALL_USER)] + [_body(OK_USER)] * 29  # 1.5 s of load; the first request stalls 1 s
    run = asyncio.run(engine.run_open_loop(f"{service.url}/recommend", bodies, rate, warmup_s=0, timeout_s=10))

    stall_end = service.stall_finished - run.monotonic_start  # on the run's clock
    queued = [o for o in run.outcomes[1:] if o.due_s < stall_end]
    # Open loop: a closed-loop client would have sent nothing while the first request hung.
    assert len([o for o in queued if o.sent_s < stall_end]) >= 10
    assert all(o.error is None for o in run.outcomes)
    # The serial service answered them only after the stall, and the latency counts from the due time.
    for outcome in queued:
        assert outcome.finished_s >= stall_end
        assert outcome.latency_ms >= (stall_end - outcome.due_s) * 1000
        assert outcome.latency_ms >= outcome.service_ms
    # Requests due earlier in the stall waited longer.
    latencies = [o.latency_ms for o in sorted(queued, key=lambda o: o.due_s)]
    assert latencies[0] > latencies[-1]


def test_errors_are_counted_by_kind_and_degraded_answers_are_counted(engine, report, serve):
    service = serve()
    users = [OK_USER, SERVER_ERROR_USER, BAD_REQUEST_USER, SLOW_USER, HANG_UP_USER, DEGRADED_USER, NOT_JSON_USER,
             OK_USER]
    run = asyncio.run(
        engine.run_open_loop(f"{service.url}/recommend", [_body(u) for u in users], 50.0, warmup_s=0, timeout_s=0.5)
    )
    summary = report.summarise(run)

    assert summary["errors"] == {"timeout": 1, "http_5xx": 1, "http_4xx": 1, "connection": 1, "invalid_response": 1}
    assert summary["ok"] == 3
    assert summary["degraded"] == 1 and summary["degraded_by_kind"] == {"user_features": 1}
    by_user = {o.body["user_id"]: o for o in run.outcomes}
    assert by_user[SLOW_USER].error == "timeout" and by_user[SERVER_ERROR_USER].status == 500


def test_a_service_that_refuses_connections_counts_connection_errors(engine, report):
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    run = asyncio.run(engine.run_open_loop(f"http://127.0.0.1:{port}/recommend", [_body(OK_USER)] * 3, 50.0, 0, 1.0))
    assert report.summarise(run)["errors"]["connection"] == 3


def test_warmup_answers_are_left_out_of_the_figures(engine, report, serve):
    service = serve()
    bodies = [_body(SERVER_ERROR_USER)] * 5 + [_body(OK_USER)] * 5
    run = asyncio.run(engine.run_open_loop(f"{service.url}/recommend", bodies, 50.0, warmup_s=0.1, timeout_s=5))
    summary = report.summarise(run)
    assert summary["requests"] == 5 and summary["ok"] == 5 and sum(summary["errors"].values()) == 0
    assert all(o.due_s < 0 for o in run.outcomes if o.phase == "warmup")


def test_at_hooks_run_at_their_offset_and_record_exit_status(cli, serve, tmp_path):
    service = serve(versions_after=None)
    marker = tmp_path / "ran"
    results = tmp_path / "results.json"
    summary = cli.main([
        "--url", service.url, "--rate", "40", "--duration", "1", "--warmup", "0.25", "--max-user-id", "50",
        "--at", f"0.5:touch {marker}", "--at", "0.2:exit 3", "--results-json", str(results),
    ])
    first, second = summary["commands"]
    assert marker.exists() and first["exit_status"] == 0 and second["exit_status"] == 3
    assert first["started_s"] >= 0.5 and second["started_s"] >= 0.2
    assert first["finished_s"] >= first["started_s"]
    assert json.loads(results.read_text())["commands"][0]["command"] == f"touch {marker}"


def test_the_cli_reports_rates_unknown_users_and_a_per_second_timeline(cli, serve, tmp_path, capsys):
    service = serve()
    summary = cli.main(["--url", service.url, "--rate", "50", "--duration", "2", "--warmup", "0",
                        "--max-user-id", "50", "--unknown-share", "0.5", "--seed", "1"])
    out = capsys.readouterr().out
    assert summary["requests"] == 100 and summary["ok"] == 100
    # Unknown users get ids above every known one; the fake service calls users >= 1000 unknown.
    assert summary["unknown_user_answers"] > 20 and summary["known_user_answers"] > 20
    assert [row["second"] for row in summary["timeline"]] == [0, 1]
    assert sum(row["requests"] for row in summary["timeline"]) == 100
    assert summary["latency"]["p50_ms"] <= summary["latency"]["p99_ms"] <= summary["latency"]["max_ms"]
    assert "| offered req/s |" in out and "| second |" in out


def test_service_metrics_cover_the_measured_phase_not_the_warmup(cli, serve):
    service = serve()
    summary = cli.main(["--url", service.url, "--rate", "20", "--duration", "1", "--warmup", "1",
                        "--max-user-id", "50", "--metrics"])
    (counter,) = summary["metrics"]["values"]
    assert service.served == 40 and summary["requests"] == 20
    # Read as the measured phase starts: the warmup's 20 answers, less those still in flight then
    # (a few at 20 requests/s when the suite loads both cores: 17 were counted once), never the
    # measured phase's 20 as well (that would be ~40) nor nothing (0).
    assert 14 <= counter["value"] <= 25 and summary["metrics_scope"] == "the run"


def test_request_bodies_draw_unknown_users_beyond_the_corpus(cli):
    bodies = cli.request_bodies([3, 7, 11], 2000, unknown_share=0.05, k=20, surfaces=("home", "search"), seed=0)
    unknown = [body for body in bodies if body["user_id"] > 11]
    assert {body["user_id"] for body in bodies} - {b["user_id"] for b in unknown} == {3, 7, 11}
    assert 50 <= len(unknown) <= 150  # 5% of 2000, seeded
    assert {body["surface"] for body in bodies} == {"home", "search"} and {body["k"] for body in bodies} == {20}


def test_bad_options_are_usage_errors_naming_the_option(cli, capsys):
    for argv, named in (
        (["--rate", "0", "--max-user-id", "5"], "--rate"),
        (["--rate", "5", "--max-user-id", "5", "--at", "soon:ls"], "--at"),
        (["--rate", "5", "--max-user-id", "5", "--duration", "2", "--at", "9:ls"], "--at"),
        (["--rate", "5", "--max-user-id", "5", "--surfaces", "feed"], "--surfaces"),
        (["--rate", "5", "--max-user-id", "5", "--unknown-share", "2"], "--unknown-share"),
    ):
        with pytest.raises(SystemExit):
            cli.main(argv)
        assert named in capsys.readouterr().err


def test_model_versions_are_reported_as_segments_in_answer_order(engine, report, serve):
    service = serve()
    service.versions_after = time.monotonic() + 0.3
    run = asyncio.run(engine.run_open_loop(f"{service.url}/recommend", [_body(OK_USER)] * 30, 50.0, 0, 5))
    summary = report.summarise(run)
    assert summary["version_switches"] == 1
    first, second = summary["version_segments"]
    assert first["model_versions"] == {"ranker": "1", "retrieval": "1"} and second["model_versions"]["ranker"] == "2"
    assert first["answers"] + second["answers"] == 30 and first["last_s"] <= second["first_s"]
    assert {tuple(row["model_versions"]) for row in summary["timeline"]} <= {(1,), (2,), (1, 2)}
    assert "| 2 | ranker=2, retrieval=2 |" in report.markdown(summary)


SAMPLE_METRICS = """\
# HELP vidrec_stage_seconds Time per request stage.
# TYPE vidrec_stage_seconds histogram
vidrec_stage_seconds_bucket{stage="ranking",le="0.005"} 10.0
vidrec_stage_seconds_bucket{stage="ranking",le="0.01"} 90.0
vidrec_stage_seconds_bucket{stage="ranking",le="0.05"} 100.0
vidrec_stage_seconds_bucket{stage="ranking",le="+Inf"} 100.0
vidrec_stage_seconds_sum{stage="ranking"} 0.8
vidrec_stage_seconds_count{stage="ranking"} 100.0
vidrec_stage_seconds_bucket{stage="ann",le="0.005"} 0.0
vidrec_stage_seconds_bucket{stage="ann",le="0.01"} 0.0
vidrec_stage_seconds_bucket{stage="ann",le="0.05"} 0.0
vidrec_stage_seconds_bucket{stage="ann",le="+Inf"} 4.0
vidrec_stage_seconds_sum{stage="ann"} 0.4
vidrec_stage_seconds_count{stage="ann"} 4.0
# HELP vidrec_fallbacks_total Fallbacks by kind.
# TYPE vidrec_fallbacks_total counter
vidrec_fallbacks_total{kind="user_features"} 3.0
vidrec_fallbacks_created{kind="user_features"} 1.7e9
# HELP bentoml_service_request_duration_seconds Not ours.
# TYPE bentoml_service_request_duration_seconds histogram
bentoml_service_request_duration_seconds_bucket{le="+Inf"} 5.0
bentoml_service_request_duration_seconds_sum 1.0
bentoml_service_request_duration_seconds_count 5.0
"""


def test_prometheus_histograms_are_summarised_per_label_set(metrics):
    summary = metrics.summarise_metrics(metrics.parse_metrics(SAMPLE_METRICS))
    rows = {row["labels"]["stage"]: row for row in summary["histograms"]}
    assert set(rows) == {"ranking", "ann"}  # bentoml_* series are left out
    ranking = rows["ranking"]
    assert ranking["count"] == 100 and ranking["mean"] == pytest.approx(0.008)
    assert 0.005 < ranking["p50"] < 0.01 and ranking["p50"] == pytest.approx(0.005 + 0.005 * 40 / 80)
    assert 0.01 < ranking["p99"] <= 0.05
    assert rows["ann"]["p99"] == 0.05  # beyond the last finite bucket: its bound, as Prometheus says
    assert summary["values"] == [
        {"name": "vidrec_fallbacks_total", "labels": {"kind": "user_features"}, "kind": "counter", "value": 3.0}
    ]
    table = metrics.metrics_markdown(summary)
    assert "| vidrec_stage_seconds | stage=ranking | 100 | 8.00 ms |" in table


def test_metrics_over_a_run_are_the_difference_of_two_scrapes(metrics):
    before = metrics.parse_metrics(SAMPLE_METRICS)
    after_text = (
        SAMPLE_METRICS.replace('le="+Inf"} 100.0', 'le="+Inf"} 150.0')
        .replace('le="0.05"} 100.0', 'le="0.05"} 150.0')
        .replace('vidrec_stage_seconds_count{stage="ranking"} 100.0',
                 'vidrec_stage_seconds_count{stage="ranking"} 150.0')
        .replace('vidrec_stage_seconds_sum{stage="ranking"} 0.8', 'vidrec_stage_seconds_sum{stage="ranking"} 2.3')
        .replace('vidrec_fallbacks_total{kind="user_features"} 3.0', 'vidrec_fallbacks_total{kind="user_features"} 5.0')
    )
    run = metrics.parse_metrics(after_text).minus(before)
    summary = metrics.summarise_metrics(run)
    ranking = next(row for row in summary["histograms"] if row["labels"]["stage"] == "ranking")
    assert ranking["count"] == 50 and ranking["mean"] == pytest.approx(0.03)
    assert 0.01 < ranking["p50"] <= 0.05  # the 50 new observations all fell in (0.01, 0.05]
    assert summary["values"][0]["value"] == 2.0


def test_a_malformed_exposition_is_an_error(metrics):
    with pytest.raises(ValueError, match="not-a-number"):
        metrics.parse_metrics('# TYPE vidrec_x histogram\nvidrec_x_bucket{le="0.1"} not-a-number\n')
