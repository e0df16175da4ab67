"""``POST /v1/traces`` with its CPU part in worker processes (`bot.otlp.pool`), as `warroom serve`
runs it on a machine with more than one core: real spawned processes, real HTTP, both databases."""

from __future__ import annotations

import gzip
import json
import os
import random
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path

import httpx
import pytest
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceResponse
from opentelemetry.proto.common.v1.common_pb2 import AnyValue
from sqlalchemy import select

from bot.otlp.decode import Share
from bot.otlp.genai import MappingOptions
from bot.otlp.pool import ExportJob, merged, prepare_export, shares
from bot.store.db import transaction
from bot.store.models import Trace
from bot.traces.rules import FailureRules
from tests.conftest import ALERT_TOKEN, ROOT, Warroom, make_settings, serve_warroom
from tests.otlp.spans import Recorder, json_body, protobuf_body, request_id
from tests.routes.test_otlp import JSON, PROTOBUF, status_of
from tests.support import free_port, wait_for


@pytest.fixture
def pooled(database_url: str) -> Iterator[Warroom]:
    with serve_warroom(make_settings(database_url, WARROOM_OTLP_PROCESSES=2)) as running:
        wait_for(lambda: running.warroom.otlp.ready, timeout=60, what="the OTLP worker processes to start")
        yield running


def outputs(warroom: Warroom) -> dict[str, str | None]:
    with transaction(warroom.runtime.engine) as session:
        return {t.request_id: t.data.get("output") for t in session.execute(select(Trace)).scalars()}


def pool_processes(parent: int | None = None) -> list[int]:
    """The children of ``parent`` (default: this process) that multiprocessing spawned for the pool."""
    parent = parent or os.getpid()
    children = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            command = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        if int(stat.rsplit(")", 1)[1].split()[1]) == parent and b"spawn_main" in command:
            children.append(int(entry.name))
    return children


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


@pytest.mark.parametrize("headers, encode", [(PROTOBUF, protobuf_body), (JSON, json_body)], ids=["protobuf", "json"])
def test_an_export_prepared_in_worker_processes_is_stored_as_in_the_serving_process(pooled, headers, encode):
    recorder = Recorder()
    spans = [recorder.answer(output=f"answer {i}", hallucination=0.9 if i % 2 else 0.1) for i in range(6)]
    response = pooled.post("/v1/traces", content=gzip.compress(encode(recorder.spans())),
                           headers={**headers, "Content-Encoding": "gzip"})
    assert response.status_code == 200, response.text
    assert outputs(pooled) == {request_id(span): f"answer {i}" for i, span in enumerate(spans)}
    assert len(pool_processes()) == 2
    assert pooled.http.get("/healthz").json()["otlp_workers"] == "ready"


def large_export(kind: str) -> tuple[bytes, dict[str, str | None]]:
    """An export big enough to be prepared in two shares, with what a share could get wrong: answers
    with tool calls in their trace, a tool span without its answer, a span with a malformed trace
    id, and one answer sent twice (the same request id and times) in traces that fall in different
    shares (the first in the first share). Also the outputs that should be stored, by request id."""
    recorder = Recorder()
    words = random.Random(7)  # answers that gzip does not shrink to nothing, as real ones
    texts = [f"answer {i}: " + " ".join(f"{words.getrandbits(40):x}" for _ in range(150)) for i in range(60)]
    answers = [recorder.answer(output=text, hallucination=0.9 if i % 3 else 0.1,
                               tools=[("search", i % 4 != 0)] if i % 2 else ()) for i, text in enumerate(texts)]
    with recorder.tracer.start_as_current_span("execute_tool search") as tool:
        tool.set_attributes({"gen_ai.operation.name": "execute_tool", "gen_ai.tool.name": "search"})
    trace_of = {request_id(span): f"{span.get_span_context().trace_id:032x}" for span in answers}
    first = next(a for a in answers if Share(0, 2).holds(trace_of[request_id(a)]))
    second = next(a for a in answers[answers.index(first) + 1:] if Share(1, 2).holds(trace_of[request_id(a)]))
    renamed = {request_id(first): "given-twice", request_id(second): "given-twice"}
    expected = {request_id(a): texts[i] for i, a in enumerate(answers) if a is not second}
    expected["given-twice"] = expected.pop(request_id(first))
    if kind == "json":
        body = json.loads(json_body(recorder.spans()))
        spans = body["resourceSpans"][0]["scopeSpans"][0]["spans"]
        times = {}
        for span in spans:
            if (key := f"{span['traceId']}-{span['spanId']}") in renamed:
                span["attributes"].append({"key": "warroom.request_id", "value": {"stringValue": renamed[key]}})
                times.setdefault("given-twice", (span["startTimeUnixNano"], span["endTimeUnixNano"]))
                span["startTimeUnixNano"], span["endTimeUnixNano"] = times["given-twice"]
        spans.append({**spans[0], "traceId": "not-hex"})
        return json.dumps(body).encode(), expected
    message = encode_spans(recorder.spans())
    pb_spans = message.resource_spans[0].scope_spans[0].spans
    pb_times: dict[str, tuple[int, int]] = {}
    for span in pb_spans:
        if (key := f"{span.trace_id.hex()}-{span.span_id.hex()}") in renamed:
            span.attributes.add(key="warroom.request_id", value=AnyValue(string_value=renamed[key]))
            pb_times.setdefault("given-twice", (span.start_time_unix_nano, span.end_time_unix_nano))
            span.start_time_unix_nano, span.end_time_unix_nano = pb_times["given-twice"]
    malformed = pb_spans.add()
    malformed.CopyFrom(pb_spans[0])
    malformed.trace_id = b"\x01"
    return message.SerializeToString(), expected


@pytest.mark.parametrize("kind", ["protobuf", "json"])
def test_an_export_prepared_in_shares_comes_to_what_it_does_whole(kind):
    body, expected = large_export(kind)
    job = ExportJob(gzip.compress(body), PROTOBUF["Content-Type"] if kind == "protobuf" else JSON["Content-Type"],
                    "gzip", 1 << 26, MappingOptions(), FailureRules(), 4000, datetime.now(timezone.utc))
    parts = shares(job, 2)
    assert [part.share for part in parts] == [Share(0, 2), Share(1, 2)]
    whole, split = prepare_export(job), merged([prepare_export(part) for part in parts])

    def rows(prepared):
        traces = prepared.traces
        return sorted((row["request_id"], row["data"], kinds) for row, kinds in zip(traces.rows, traces.kinds,
                                                                                      strict=True))
    assert rows(split) == rows(whole)
    assert {row["request_id"] for row in split.traces.rows} == set(expected)
    assert (split.spans, split.rejected, split.orphans, split.traces.duplicates) == (
        whole.spans, whole.rejected, whole.orphans, whole.traces.duplicates) == (92, 1, 1, 1)
    assert split.warning == whole.warning and "without their GenAI answer span" in split.warning
    assert sorted(split.reasons) == sorted(whole.reasons)


def test_a_small_export_is_not_split():
    job = ExportJob(protobuf_body(Recorder().spans()), PROTOBUF["Content-Type"], "", 1 << 20, MappingOptions(),
                    FailureRules(), None, datetime.now(timezone.utc))
    assert shares(job, 4) == [job]


def test_a_large_export_is_stored_whole_from_the_shares_of_two_workers(pooled):
    body, expected = large_export("protobuf")
    response = pooled.post("/v1/traces", content=gzip.compress(body), headers={**PROTOBUF, "Content-Encoding": "gzip"})
    assert response.status_code == 200, response.text
    partial = ExportTraceServiceResponse.FromString(response.content).partial_success
    assert partial.rejected_spans == 1 and "traceId must be 16 bytes" in partial.error_message
    assert "without their GenAI answer span" in partial.error_message
    assert outputs(pooled) == expected


def test_a_request_whose_workers_die_while_preparing_it_is_answered_503_and_its_retry_stored(pooled):
    """What an exporter sees when the workers die mid-request: 503 with ``Retry-After`` and nothing
    stored (the request may be what killed them, so the serving process does not run it); the
    exporter's retry is stored once new workers are up. The export is 15,000 answers, so the
    workers are killed long before they could finish it."""
    recorder = Recorder()
    recorder.answer(output="many times over")
    message = encode_spans(recorder.spans())
    spans = message.resource_spans[0].scope_spans[0].spans
    for number in range(1, 15_000):
        copy = spans.add()
        copy.CopyFrom(spans[0])
        copy.trace_id, copy.span_id = number.to_bytes(16, "big"), number.to_bytes(8, "big")
    body = gzip.compress(message.SerializeToString())
    headers = {**PROTOBUF, "Content-Encoding": "gzip"}

    answered: list[httpx.Response] = []
    sender = threading.Thread(target=lambda: answered.append(pooled.post("/v1/traces", content=body, headers=headers)))
    sender.start()
    wait_for(lambda: pooled.warroom.otlp.in_flight > 0, timeout=30, what="the export to reach the workers")
    for pid in pool_processes():
        os.kill(pid, signal.SIGKILL)
    sender.join(timeout=60)
    [response] = answered
    assert response.status_code == 503 and response.headers["retry-after"], response.text
    assert "worker process died" in status_of(response.content)[1]
    assert outputs(pooled) == {}

    wait_for(lambda: pooled.warroom.otlp.ready, timeout=60, what="new OTLP worker processes")
    retry = pooled.post("/v1/traces", content=body, headers=headers)
    assert retry.status_code == 200, retry.text
    assert len(outputs(pooled)) == 15_000


def test_a_body_that_is_no_export_request_is_refused_with_the_workers_reason(pooled):
    response = pooled.post("/v1/traces", content=b"\x0a\xff\xff", headers=PROTOBUF)
    assert response.status_code == 400
    code, message = status_of(response.content)
    assert code == 3 and "not a protobuf ExportTraceServiceRequest" in message, message


def test_a_worker_process_that_dies_is_replaced_and_the_export_still_stored(pooled):
    recorder = Recorder()
    first = recorder.answer(output="before")
    assert pooled.post("/v1/traces", content=protobuf_body(recorder.spans()), headers=PROTOBUF).status_code == 200
    for pid in pool_processes():
        os.kill(pid, signal.SIGKILL)

    later = Recorder()
    second = later.answer(output="while new ones start")
    body = protobuf_body(later.spans())
    response = pooled.post("/v1/traces", content=body, headers=PROTOBUF)
    if response.status_code == 503:  # sent before the pool knew its workers were dead: try again
        assert response.headers["retry-after"], response.text
        response = pooled.post("/v1/traces", content=body, headers=PROTOBUF)
    assert response.status_code == 200, response.text  # prepared in the serving process meanwhile
    wait_for(lambda: pooled.warroom.otlp.ready, timeout=60, what="new OTLP worker processes")
    assert len(pool_processes()) == 2

    last = Recorder()
    third = last.answer(output="after")
    assert pooled.post("/v1/traces", content=protobuf_body(last.spans()), headers=PROTOBUF).status_code == 200
    assert outputs(pooled) == {request_id(first): "before", request_id(second): "while new ones start",
                               request_id(third): "after"}


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)  # about processes, not storage
def test_worker_processes_of_a_serving_process_killed_with_sigkill_exit_with_it(database_url, tmp_path):
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("WARROOM_", "SLACK_"))}
    env.update({"PYTHONPATH": str(ROOT), "WARROOM_ENV": "test", "WARROOM_DATABASE_URL": database_url,
                "WARROOM_ALERT_TOKEN": ALERT_TOKEN, "WARROOM_WORKER": "false", "WARROOM_SCHEDULER": "false",
                "WARROOM_RUNBOOKS_DIR": str(ROOT / "runbooks"), "WARROOM_PLAYBOOKS_DIR": str(ROOT / "playbooks"),
                "WARROOM_OTLP_PROCESSES": "2"})
    with (tmp_path / "serve.log").open("wb") as log:
        serving = subprocess.Popen([sys.executable, "-m", "bot", "serve", "--port", str(port)], env=env, cwd=ROOT,
                                   stdout=log, stderr=subprocess.STDOUT)
    try:
        workers = wait_for(lambda: len(found := pool_processes(serving.pid)) == 2 and found, timeout=60,
                           what="the serving process's two OTLP workers")
        os.kill(serving.pid, signal.SIGKILL)
        serving.wait(timeout=10)
        wait_for(lambda: not any(alive(pid) for pid in workers), timeout=30,
                 what="the workers of the killed process to exit")
    finally:
        if serving.poll() is None:
            serving.kill()


CANNOT_SPAWN = """
import asyncio, logging, threading
from datetime import datetime, timezone
from bot.otlp.genai import MappingOptions
from bot.otlp.pool import ExportJob, ExportPreparer
from bot.traces.rules import FailureRules
from tests.otlp.spans import Recorder, protobuf_body

failures = threading.Semaphore(0)
class Heard(logging.Handler):
    def emit(self, record):
        print("logged:", record.getMessage(), flush=True)
        if "did not start" in record.getMessage():
            failures.release()
logging.getLogger("bot.otlp.pool").addHandler(Heard())

def export(output):
    recorder = Recorder()
    recorder.answer(output=output)
    job = ExportJob(protobuf_body(recorder.spans()), "application/x-protobuf", "", 1 << 24, MappingOptions(),
                    FailureRules(), None, datetime.now(timezone.utc))
    prepared = asyncio.run(preparer.prepare(job))
    stored = [output for row in prepared.traces.rows if output in row["data"]]
    print("state:", preparer.state, "stored:", stored, flush=True)

preparer = ExportPreparer(2, restart_failed_after_s=3600)
preparer.start()
assert failures.acquire(timeout=60)
export("still stored")
preparer.restart_failed_after_s = 0  # as if an hour had gone by
export("stored while they start again")
assert failures.acquire(timeout=60)
print("state:", preparer.state, flush=True)
preparer.stop()
"""


def test_a_pool_whose_processes_cannot_start_says_so_and_requests_are_prepared_in_process():
    """A program read from stdin cannot be imported again by a spawned process: its workers die
    at start. The log says so, exports are still prepared, in the serving process, and the first
    request once the wait for a restart is over starts the pool again."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run([sys.executable, "-"], input=CANNOT_SPAWN, text=True, capture_output=True, timeout=180,
                          cwd=ROOT, env=env)
    assert done.returncode == 0, done.stderr[-2000:]
    lines = done.stdout.splitlines()
    failed = "logged: OTLP worker processes did not start"
    restarted = "logged: starting the OTLP worker processes again: the last start failed"
    assert [line.split(" (")[0] for line in lines if line.startswith("logged:")] == [failed, restarted, failed], lines
    assert "state: failed stored: ['still stored']" in lines, lines  # no restart within the wait
    # prepared here whether the new processes are still starting or have failed again already
    again = next(line for line in lines if line.endswith("stored: ['stored while they start again']"))
    assert lines.index(restarted) < lines.index(again)
    assert lines[-1] == "state: failed", lines
