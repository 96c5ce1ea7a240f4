"""The load generator: runs in its own process, never in the server's, and times only the load.

``run_in_process`` starts a fresh interpreter (``spawn``) that loads its pre-signed packages
from a file, opens its connections, and only then starts the clock, so neither signing nor
start-up is measured. It reports its own CPU time for the timed window (``getrusage``), so a
reader can see how much of the machine the generator took from the server.

Three shapes of load:

- ``closed``: ``concurrency`` connections each send the next package as soon as the previous
  one is answered, until ``duration`` passes or the packages run out. Gives throughput.
- ``open``: sends are scheduled at fixed intervals (``rate`` a second) whatever the server
  does, on as many connections as needed (up to ``max_connections``), and each latency is
  measured from the *scheduled* time, so a server that falls behind is charged for the wait
  (no coordinated omission). Gives latency at a given load.
- ``drain``: a recipient empties its inbox: one lister pages through ``GET /v1/inbox`` and
  feeds ids to ``concurrency`` workers, each doing ``GET /v1/inbox/{id}`` then
  ``POST /v1/inbox/{id}/ack``. Gives fetch+ack throughput.

And the same through the VDXP endpoints, as software on VNPT's SDK calls them (``bench.sdk``
builds the requests; each connection is one SDK object with its carried parameters):

- ``sdk_closed``: the closed loop of ``POST /vxp/sendEdoc`` (the package plus CRLF,
  ``application/octet-stream``, signed headers). Gives SDK intake throughput.
- ``sdk_drain``: one lister calls ``getReceivedEdocList`` (the oldest open deliveries, a page
  by offset: it lists page 1 again once the workers have nearly emptied what it gave them,
  skipping what it gave before) and ``concurrency`` workers each call ``getEdoc`` then
  ``updateStatus done``. Gives SDK fetch+ack throughput.

An SDK answer is a success when its JSON says ``"status": "OK"`` (the HTTP status of a
failure is for proxies; the SDK reads the JSON).

Every mode stops by itself: at ``duration`` (plus at most ``drain_timeout`` for answers
still in flight), or when its packages or the inbox run out.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import multiprocessing
import resource
import struct
import time
from collections import Counter
from pathlib import Path
from typing import Any

import orjson

from bench import sdk
from bench.client import Answer, Connection, connect

_LEN = struct.Struct(">I")


# --- package files: written by the parent, read by the generator ----------------------------


def write_docs(path: Path, docs: list[bytes]) -> None:
    with path.open("wb") as out:
        for doc in docs:
            out.write(_LEN.pack(len(doc)))
            out.write(doc)


def read_docs(path: Path) -> list[bytes]:
    data = path.read_bytes()
    docs = []
    pos = 0
    while pos < len(data):
        (size,) = _LEN.unpack_from(data, pos)
        pos += _LEN.size
        docs.append(data[pos : pos + size])
        pos += size
    return docs


# --- statistics ------------------------------------------------------------------------------


def percentile(sorted_values: list[float], q: float) -> float:
    """Nearest-rank percentile of an already sorted list (``nan`` when empty)."""
    if not sorted_values:
        return math.nan
    rank = max(1, math.ceil(q / 100 * len(sorted_values)))
    return sorted_values[min(rank, len(sorted_values)) - 1]


def summarize(latencies: list[float]) -> dict[str, float]:
    values = sorted(latencies)
    return {
        "p50_ms": percentile(values, 50) * 1000,
        "p90_ms": percentile(values, 90) * 1000,
        "p99_ms": percentile(values, 99) * 1000,
        "max_ms": (values[-1] * 1000) if values else math.nan,
    }


class _Outcomes:
    """Answers by status, with the first few unexpected ones kept for the report."""

    def __init__(self, expected: tuple[int, ...]) -> None:
        self.expected = expected
        self.statuses: Counter[str] = Counter()
        self.samples: list[str] = []
        self.ok = 0

    def judge(self, status: int, body: bytes) -> tuple[bool, str]:
        """Whether an answer is a success, and the key it is counted under."""
        return status in self.expected, str(status)

    def answer(self, status: int, body: bytes, *, count: bool = True) -> bool:
        """Record an answer; ``count`` whether an expected one completes a unit of work."""
        good, key = self.judge(status, body)
        self.statuses[key] += 1
        if good:
            self.ok += count
            return True
        if len(self.samples) < 3:
            self.samples.append(f"{status}: {body[:300].decode(errors='replace')}")
        return False

    def error(self, exc: BaseException) -> None:
        self.statuses[type(exc).__name__] += 1
        if len(self.samples) < 3:
            self.samples.append(f"{type(exc).__name__}: {exc}")

    def json(self) -> dict[str, Any]:
        return {"ok": self.ok, "statuses": dict(self.statuses), "samples": self.samples}


class _SdkOutcomes(_Outcomes):
    """VDXP answers: a success is ``200`` with ``"status": "OK"``; a failure is counted
    under its HTTP status and ``ErrorCode`` (``"400 ErrorCode 10"``)."""

    def __init__(self) -> None:
        super().__init__((200,))

    def judge(self, status: int, body: bytes) -> tuple[bool, str]:
        try:
            parsed = orjson.loads(body)
        except orjson.JSONDecodeError:
            return False, f"{status} not JSON"
        if not isinstance(parsed, dict):
            return False, f"{status} not a JSON object"
        if status == 200 and parsed.get("status") == "OK":
            return True, "200"
        return False, f"{status} ErrorCode {parsed.get('ErrorCode')}"


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _auth(token: str, xml: bool = False) -> bytes:
    head = f"Authorization: Bearer {token}\r\n".encode()
    if xml:
        head += b"Content-Type: application/xml\r\n"
    return head


# --- closed loop -----------------------------------------------------------------------------


def _sdk_sends(spec: dict[str, Any], docs: list[bytes]) -> list[tuple[bytes, bytes]]:
    """Each package as the SDK sends it: signed headers, the package plus CRLF.

    Built before the clock starts, as the /v1 loop's requests are (the packages in place, so
    the corpus is not held twice); one SDK object per connection would carry the same
    parameters, so one object signs them all.
    """
    session = sdk.Session(spec["systemid"], spec["secret"])
    out = []
    for i, doc in enumerate(docs):
        out.append((session.send_edoc(doc, spec["from"]), doc + sdk.CRLF))
        docs[i] = b""
    return out


async def closed_loop(spec: dict[str, Any]) -> dict[str, Any]:
    docs = read_docs(Path(spec["docs_file"]))
    host, port, path = spec["host"], spec["port"], spec["path"]
    outcomes: _Outcomes
    if spec["mode"] == "sdk_closed":
        requests = _sdk_sends(spec, docs)
        outcomes = _SdkOutcomes()
    else:
        headers = _auth(spec["token"], xml=True)
        requests = [(headers, doc) for doc in docs]
        outcomes = _Outcomes((201,))
    warmup = min(spec.get("warmup", 0), len(requests) // 10)
    conns = [await connect(host, port) for _ in range(spec["concurrency"])]
    warm_ok = 0
    for head, body in requests[:warmup]:  # first requests pay for lazy start-up in the server
        answer = await conns[0].request("POST", path, head, body)
        warm_ok += outcomes.judge(answer.status, answer.body)[0]
    latencies: list[float] = []
    next_doc = warmup
    deadline = 0.0

    async def worker(conn: Connection) -> None:
        nonlocal next_doc
        while next_doc < len(requests) and time.perf_counter() < deadline:
            head, body = requests[next_doc]
            next_doc += 1
            started = time.perf_counter()
            try:
                answer = await conn.request("POST", path, head, body)
            except Exception as exc:  # a broken connection ends this worker, not the run
                outcomes.error(exc)
                return
            latencies.append(time.perf_counter() - started)
            outcomes.answer(answer.status, answer.body)

    cpu0 = _cpu()
    start = time.perf_counter()
    deadline = start + spec["duration"]
    await asyncio.gather(*(worker(c) for c in conns))
    elapsed = time.perf_counter() - start
    cpu = _cpu() - cpu0
    for c in conns:
        c.close()
    return {
        "mode": spec["mode"],
        "sent": next_doc - warmup,
        "warmup_ok": warm_ok,
        "elapsed_s": elapsed,
        "rate": outcomes.ok / elapsed if elapsed else 0.0,
        "concurrency": spec["concurrency"],
        "generator_cpu_s": cpu,
        "latency": summarize(latencies),
        **outcomes.json(),
    }


# --- open loop -------------------------------------------------------------------------------


async def open_loop(spec: dict[str, Any]) -> dict[str, Any]:
    docs = read_docs(Path(spec["docs_file"]))
    host, port, path = spec["host"], spec["port"], spec["path"]
    headers = _auth(spec["token"], xml=True)
    rate: float = spec["rate"]
    total = min(len(docs), int(rate * spec["duration"]))
    max_conns: int = spec["max_connections"]
    idle: asyncio.Queue[Connection] = asyncio.Queue()
    opened = 0
    for _ in range(min(spec.get("initial_connections", 64), max_conns)):
        idle.put_nowait(await connect(host, port))
        opened += 1
    warm = await idle.get()
    warmup = min(spec.get("warmup", 0), len(docs) - total)
    warm_ok = 0
    for doc in docs[total : total + warmup]:  # the tail of the file is spare packages
        warm_ok += (await warm.request("POST", path, headers, doc)).status == 201
    idle.put_nowait(warm)
    outcomes = _Outcomes((201,))
    latencies: list[float] = []
    most_open = opened
    in_flight = most_in_flight = 0
    worst_lag = 0.0

    async def one(doc: bytes, scheduled: float) -> None:
        nonlocal opened, most_open, in_flight, most_in_flight
        conn: Connection | None = None
        in_flight += 1
        most_in_flight = max(most_in_flight, in_flight)
        try:
            try:
                conn = idle.get_nowait()
            except asyncio.QueueEmpty:
                if opened < max_conns:
                    opened += 1
                    most_open = max(most_open, opened)
                    conn = await connect(host, port)
                else:
                    conn = await idle.get()
            answer = await conn.request("POST", path, headers, doc)
        except Exception as exc:  # any failure is a figure to report, not a crash
            opened -= 1
            if conn is not None:
                conn.close()
            outcomes.error(exc)
            return
        finally:
            in_flight -= 1
        latencies.append(time.perf_counter() - scheduled)
        outcomes.answer(answer.status, answer.body)
        idle.put_nowait(conn)

    tasks: list[asyncio.Task[None]] = []
    interval = 1.0 / rate
    cpu0 = _cpu()
    start = time.perf_counter()
    for i in range(total):
        scheduled = start + i * interval
        now = time.perf_counter()
        if scheduled > now:
            await asyncio.sleep(scheduled - now)
        else:
            worst_lag = max(worst_lag, now - scheduled)
        tasks.append(asyncio.create_task(one(docs[i], scheduled)))
    scheduled_until = time.perf_counter()
    _, pending = await asyncio.wait(tasks, timeout=spec["drain_timeout"]) if tasks else ((), ())
    for task in pending:
        task.cancel()
    elapsed = time.perf_counter() - start
    cpu = _cpu() - cpu0
    unfinished = len(pending)
    # A request still unanswered at the end is slower than anything measured: count it as such.
    summary = summarize(latencies + [math.inf] * unfinished)
    with contextlib.suppress(asyncio.QueueEmpty):
        while True:
            idle.get_nowait().close()
    return {
        "mode": "open",
        "offered_rate": rate,
        "scheduled": total,
        "warmup_ok": warm_ok,
        "schedule_s": scheduled_until - start,
        "elapsed_s": elapsed,
        "achieved_rate": outcomes.ok / elapsed if elapsed else 0.0,
        "unfinished": unfinished,
        "connections_used": most_open,
        "most_in_flight": most_in_flight,
        "worst_schedule_lag_ms": worst_lag * 1000,
        "generator_cpu_s": cpu,
        "latency": summary,
        **outcomes.json(),
    }


# --- drain: list, fetch, ack -----------------------------------------------------------------


async def drain(spec: dict[str, Any]) -> dict[str, Any]:
    host, port = spec["host"], spec["port"]
    headers = _auth(spec["token"])
    ack_headers = headers + b"Content-Type: application/json\r\n"
    ack_body = b'{"result":"done"}'
    lister = await connect(host, port)
    conns = [await connect(host, port) for _ in range(spec["concurrency"])]
    ids: asyncio.Queue[str | None] = asyncio.Queue()
    outcomes = _Outcomes((200,))
    listed = 0
    pages = 0
    deadline = 0.0
    most = spec.get("max_messages", 1 << 62)

    async def list_inbox() -> None:
        nonlocal listed, pages
        cursor = ""
        try:
            while time.perf_counter() < deadline and listed < most:
                target = f"/v1/inbox?kind=edoc&limit={spec['page']}{cursor}"
                answer = await lister.request("GET", target, headers)
                pages += 1
                if answer.status != 200:
                    outcomes.answer(answer.status, answer.body)
                    return
                page = orjson.loads(answer.body)
                for item in page["items"][: most - listed]:
                    ids.put_nowait(item["id"])
                    listed += 1
                if not page["next_cursor"]:
                    return
                cursor = f"&cursor={page['next_cursor']}"
                # don't list far ahead of the workers (polling a queue size is the point)
                while ids.qsize() > 4 * spec["page"] and time.perf_counter() < deadline:  # noqa: ASYNC110
                    await asyncio.sleep(0.005)
        finally:
            for _ in conns:
                ids.put_nowait(None)

    async def worker(conn: Connection) -> None:
        while True:
            message_id = await ids.get()
            if message_id is None or time.perf_counter() >= deadline:
                return
            try:
                got = await conn.request("GET", f"/v1/inbox/{message_id}", headers)
                # a message counts once, when its ack is answered
                if not outcomes.answer(got.status, got.body, count=False):
                    continue
                acked = await conn.request(
                    "POST", f"/v1/inbox/{message_id}/ack", ack_headers, ack_body
                )
                outcomes.answer(acked.status, acked.body)
            except Exception as exc:  # a broken connection ends this worker, not the run
                outcomes.error(exc)
                return

    cpu0 = _cpu()
    start = time.perf_counter()
    deadline = start + spec["duration"]
    await asyncio.gather(list_inbox(), *(worker(c) for c in conns))
    elapsed = time.perf_counter() - start
    cpu = _cpu() - cpu0
    for c in [lister, *conns]:
        c.close()
    return {
        "mode": "drain",
        "listed": listed,
        "pages": pages,
        "elapsed_s": elapsed,
        "rate": outcomes.ok / elapsed if elapsed else 0.0,
        "concurrency": spec["concurrency"],
        "generator_cpu_s": cpu,
        **outcomes.json(),
    }


# --- the same drain through the SDK's operations ---------------------------------------------


async def sdk_drain(spec: dict[str, Any]) -> dict[str, Any]:
    host, port = spec["host"], spec["port"]
    systemid, secret = spec["systemid"], spec["secret"]
    page_size: int | None = spec.get("page")
    lister = await connect(host, port)
    listing = sdk.Session(systemid, secret)
    conns = [await connect(host, port) for _ in range(spec["concurrency"])]
    ids: asyncio.Queue[str | None] = asyncio.Queue()
    outcomes = _SdkOutcomes()
    seen: set[str] = set()
    listed = 0
    pages = 0
    emptied = False
    deadline = 0.0
    most = spec.get("max_messages", 1 << 62)
    low_water = 2 * spec["concurrency"]
    expect = spec.get("expect_continue", True)  # as the SDK's Apache HttpClient; False: A/B

    async def list_inbox() -> None:
        nonlocal listed, pages, emptied
        try:
            while time.perf_counter() < deadline and listed < most:
                head = listing.received_list("edoc", page_size)
                answer = await lister.request("POST", "/vxp/getReceivedEdocList", head)
                pages += 1
                if not outcomes.judge(answer.status, answer.body)[0]:
                    outcomes.answer(answer.status, answer.body)
                    return
                items = orjson.loads(answer.body).get("data") or []
                if not items:
                    emptied = True
                    return
                fresh = 0
                for item in items:
                    doc_id = item["docId"]
                    if doc_id in seen or listed >= most:
                        continue
                    seen.add(doc_id)
                    ids.put_nowait(doc_id)
                    listed += 1
                    fresh += 1
                # page 1 again once the workers have nearly emptied the queue: it then holds
                # the next oldest open deliveries (and the few still in flight, skipped)
                while ids.qsize() > low_water and time.perf_counter() < deadline:  # noqa: ASYNC110
                    await asyncio.sleep(0.002)
                if not fresh:  # all of it in flight: let the workers finish some
                    await asyncio.sleep(0.002)
        finally:
            for _ in conns:
                ids.put_nowait(None)

    async def worker(conn: Connection) -> None:
        session = sdk.Session(systemid, secret)
        while True:
            doc_id = await ids.get()
            if doc_id is None or time.perf_counter() >= deadline:
                return
            try:
                got: Answer = await conn.request(
                    "POST",
                    "/vxp/getEdoc",
                    session.get_edoc(doc_id),
                    sdk.EMPTY_JSON,
                    expect_continue=expect,
                )
                # a message counts once, when its updateStatus is answered
                if not outcomes.answer(got.status, got.body, count=False):
                    continue
                done = await conn.request(
                    "POST",
                    "/vxp/updateStatus",
                    session.update_status(doc_id, "done"),
                    sdk.EMPTY_JSON,
                    expect_continue=expect,
                )
                outcomes.answer(done.status, done.body)
            except Exception as exc:  # a broken connection ends this worker, not the run
                outcomes.error(exc)
                return

    cpu0 = _cpu()
    start = time.perf_counter()
    deadline = start + spec["duration"]
    await asyncio.gather(list_inbox(), *(worker(c) for c in conns))
    elapsed = time.perf_counter() - start
    cpu = _cpu() - cpu0
    for c in [lister, *conns]:
        c.close()
    return {
        "mode": "sdk_drain",
        "listed": listed,
        "pages": pages,
        "emptied": emptied,
        "elapsed_s": elapsed,
        "rate": outcomes.ok / elapsed if elapsed else 0.0,
        "concurrency": spec["concurrency"],
        "generator_cpu_s": cpu,
        **outcomes.json(),
    }


# --- the process -----------------------------------------------------------------------------

_MODES = {
    "closed": closed_loop,
    "open": open_loop,
    "drain": drain,
    "sdk_closed": closed_loop,
    "sdk_drain": sdk_drain,
}


def _child(spec: dict[str, Any], out: Any) -> None:
    """Entry point of the generator process: run one load, send back its figures."""
    import uvloop

    try:
        with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
            result = runner.run(_MODES[spec["mode"]](spec))
        out.send(result)
    except BaseException as exc:
        out.send({"error": f"{type(exc).__name__}: {exc}"})
        raise
    finally:
        out.close()


def run_in_process(spec: dict[str, Any], timeout: float) -> dict[str, Any]:
    """Run one load in a fresh process and return its figures (``timeout`` is a hard stop)."""
    ctx = multiprocessing.get_context("spawn")
    receive, send = ctx.Pipe(duplex=False)
    proc = ctx.Process(target=_child, args=(spec, send), name=f"bench-load-{spec['mode']}")
    proc.start()
    send.close()
    try:
        if not receive.poll(timeout):
            raise TimeoutError(f"load generator ({spec['mode']}) gave no answer in {timeout} s")
        result: dict[str, Any] = receive.recv()
    finally:
        proc.join(5)
        if proc.is_alive():
            proc.kill()
            proc.join()
    if "error" in result:
        raise RuntimeError(f"load generator ({spec['mode']}) failed: {result['error']}")
    result["generator_pid"] = proc.pid
    result["generator_cores"] = result["generator_cpu_s"] / result["elapsed_s"]
    return result
