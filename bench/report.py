"""The printed table: each figure beside its target, one column per number of server workers.

A figure that misses its target says MISS rather than hiding in a column of numbers, and the
rows under it (generator and server CPU, latency, unfinished requests, error samples) say
why a reader should or should not trust it: a load generator that used a whole core, or a
section with refused packages, is visible at a glance.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

TARGETS: dict[str, float] = {
    "intake_rate": 3000.0,  # docs/s, >=
    "intake_ratio": 0.7,  # intake / verify ceiling, >=
    "p99_ms": 50.0,  # at the offered rate, <=
    "fanout_rate": 20000.0,  # deliveries/s, >=
    "drain_rate": 5000.0,  # fetch+ack msgs/s, >=
    "big_ratio": 1.5,  # peak RSS growth / package size, <=
    "sdk_ratio": 0.9,  # the SDK path's intake and fetch+ack / the /v1 figures, >=
}

Run = dict[str, Any]
Cell = Callable[[Run], str]
Check = Callable[[Run], bool] | None


def _n(value: float, digits: int = 0) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    if isinstance(value, float) and math.isinf(value):
        return "∞"
    return f"{value:,.{digits}f}"


def _ms(value: float) -> str:
    return _n(value, 1 if value < 100 else 0)


def _mb(value: float) -> str:
    return f"{value / 1_000_000:,.1f} MB"


def _cpu(section: dict[str, Any]) -> str:
    return " / ".join(_n(section[k], 2) for k in ("generator_cores", "server_cores", "other_cores"))


def _ratio(run: Run, ceiling: dict[str, Any]) -> float:
    return float(run["intake"]["rate"] / ceiling["rate"]) if ceiling["rate"] else math.nan


def _sdk(section: dict[str, Any]) -> str:
    """An SDK figure and its ratio to the /v1 one."""
    ratio = section["ratio"]
    return f"{_n(section['rate'])}; {ratio:.2f}x" if ratio is not None else _n(section["rate"])


def _sdk_ok(section: dict[str, Any]) -> bool:
    return section["ratio"] is not None and section["ratio"] >= TARGETS["sdk_ratio"]


def column(run: Run) -> str:
    """A run's column heading: its server processes, and its SQLite driver if not the
    shipped one."""
    driver = run.get("driver", "sqlite3")
    return f"{run['workers']} worker(s)" + ("" if driver == "sqlite3" else f", {driver}")


def _rows(result: dict[str, Any]) -> list[tuple[str, Cell, str, Check]]:
    t = TARGETS
    c = result["ceiling"]
    p = result["profile"]
    cores = result["machine"]["cores"]
    big_mb = p["big_bytes"] / 1_000_000
    return [
        (
            f"1. intake, ~{p['package_bytes'] // 1024} KB to 1 recipient (docs/s)",
            lambda r: _n(r["intake"]["rate"]),
            f">= {_n(t['intake_rate'])}",
            lambda r: r["intake"]["rate"] >= t["intake_rate"],
        ),
        (
            "   accepted / elapsed",
            lambda r: f"{_n(r['intake']['ok'])} / {r['intake']['elapsed_s']:.1f} s",
            "",
            None,
        ),
        (
            "   mean package size",
            lambda r: f"{r['intake']['package_bytes'] / 1024:,.1f} KB",
            "",
            None,
        ),
        (
            "   connections; latency p50 / p99 (ms)",
            lambda r: (
                f"{r['intake']['concurrency']}; "
                f"{_ms(r['intake']['latency']['p50_ms'])} / {_ms(r['intake']['latency']['p99_ms'])}"
            ),
            "",
            None,
        ),
        (
            f"   load generator CPU (cores of {cores})",
            lambda r: _n(r["intake"]["generator_cores"], 2),
            "",
            None,
        ),
        (
            f"   server CPU (cores of {cores})",
            lambda r: _n(r["intake"]["server_cores"], 2),
            "",
            None,
        ),
        (
            "   other processes' CPU (cores)",
            lambda r: _n(r["intake"]["other_cores"], 2),
            "",
            None,
        ),
        (
            "   same intake, audit log off (docs/s; on/off)",
            lambda r: (
                f"{_n(r['intake_no_audit']['rate'])}; "
                f"{r['intake']['rate'] / r['intake_no_audit']['rate']:.2f}"
                if r.get("intake_no_audit") and r["intake_no_audit"]["rate"]
                else "-"
            ),
            "",
            None,
        ),
        (
            "   SDK path, POST /vxp/sendEdoc (docs/s; / the /v1 intake)",
            lambda r: _sdk(r["sdk_intake"]),
            f">= {t['sdk_ratio']:.2f}x /v1",
            lambda r: _sdk_ok(r["sdk_intake"]),
        ),
        (
            "     accepted / elapsed; latency p50 / p99 (ms)",
            lambda r: (
                f"{_n(r['sdk_intake']['ok'])} / {r['sdk_intake']['elapsed_s']:.1f} s; "
                f"{_ms(r['sdk_intake']['latency']['p50_ms'])} / "
                f"{_ms(r['sdk_intake']['latency']['p99_ms'])}"
            ),
            "",
            None,
        ),
        (
            "     CPU (cores): load generator / server / others",
            lambda r: _cpu(r["sdk_intake"]),
            "",
            None,
        ),
        (
            f"2. latency at {_n(p['rate'])} docs/s offered: p50 (ms)",
            lambda r: _ms(r["latency"]["latency"]["p50_ms"]),
            "",
            None,
        ),
        (
            "   p99 (ms), from the scheduled send time",
            lambda r: _ms(r["latency"]["latency"]["p99_ms"]),
            f"<= {_n(t['p99_ms'])}",
            lambda r: r["latency"]["latency"]["p99_ms"] <= t["p99_ms"],
        ),
        (
            "   max (ms); unfinished at the end",
            lambda r: f"{_ms(r['latency']['latency']['max_ms'])}; {r['latency']['unfinished']}",
            "",
            None,
        ),
        (
            "   achieved (docs/s); most requests outstanding",
            lambda r: f"{_n(r['latency']['achieved_rate'])}; {r['latency']['most_in_flight']}",
            "",
            None,
        ),
        (
            "   CPU (cores): load generator / server / others",
            lambda r: _cpu(r["latency"]),
            "",
            None,
        ),
        (
            "   at half the measured intake rate: rate; p50 / p99 (ms)",
            lambda r: (
                f"{_n(r['latency_half']['offered_rate'])}/s; "
                f"{_ms(r['latency_half']['latency']['p50_ms'])} / "
                f"{_ms(r['latency_half']['latency']['p99_ms'])}"
            ),
            "",
            None,
        ),
        (
            f"3. verify ceiling, {c['processes']} processes (checks/s)",
            lambda r: _n(c["rate"]),
            "",
            None,
        ),
        (
            "   other processes' CPU (cores)",
            lambda r: _n(c["other_cores"], 2),
            "",
            None,
        ),
        (
            "   intake / ceiling",
            lambda r: _n(_ratio(r, c), 2),
            f">= {t['intake_ratio']:.2f}",
            lambda r: _ratio(r, c) >= t["intake_ratio"],
        ),
        (
            "4. fan-out (deliveries/s)",
            lambda r: _n(r["fanout"]["deliveries_rate"]),
            f">= {_n(t['fanout_rate'])}",
            lambda r: r["fanout"]["deliveries_rate"] >= t["fanout_rate"],
        ),
        (
            "   recipients per package; package size",
            lambda r: f"{r['fanout']['recipients']}; {r['fanout']['package_bytes'] / 1024:,.1f} KB",
            "",
            None,
        ),
        (
            "   packages/s; accepted / elapsed",
            lambda r: (
                f"{_n(r['fanout']['rate'], 1)}; "
                f"{_n(r['fanout']['ok'])} / {r['fanout']['elapsed_s']:.1f} s"
            ),
            "",
            None,
        ),
        (
            "   CPU (cores): load generator / server / others",
            lambda r: _cpu(r["fanout"]),
            "",
            None,
        ),
        (
            "5. fetch+ack (msgs/s)",
            lambda r: _n(r["drain"]["rate"]),
            f">= {_n(t['drain_rate'])}",
            lambda r: r["drain"]["rate"] >= t["drain_rate"],
        ),
        (
            "   acked / elapsed; backlog at start",
            lambda r: (
                f"{_n(r['drain']['ok'])} / {r['drain']['elapsed_s']:.1f} s; "
                f"{_n(r['drain']['backlog'])}"
            ),
            "",
            None,
        ),
        (
            "   connections; CPU: generator / server / others",
            lambda r: f"{r['drain']['concurrency']}; {_cpu(r['drain'])}",
            "",
            None,
        ),
        (
            "   SDK path, getEdoc + updateStatus (msgs/s; / the /v1 figure)",
            lambda r: _sdk(r["sdk_drain"]),
            f">= {t['sdk_ratio']:.2f}x /v1",
            lambda r: _sdk_ok(r["sdk_drain"]),
        ),
        (
            "     acked / elapsed; backlog at start; lists",
            lambda r: (
                f"{_n(r['sdk_drain']['ok'])} / {r['sdk_drain']['elapsed_s']:.1f} s; "
                f"{_n(r['sdk_drain']['backlog'])}; {r['sdk_drain']['pages']}"
            ),
            "",
            None,
        ),
        (
            "     CPU (cores): load generator / server / others",
            lambda r: _cpu(r["sdk_drain"]),
            "",
            None,
        ),
        (
            f"6. {big_mb:.0f} MB package: server peak RSS growth",
            lambda r: f"{_mb(r['big']['growth_bytes'])} = {r['big']['growth_ratio']:.2f}x size",
            f"<= {t['big_ratio']}x size",
            lambda r: r["big"]["status"] == 201 and r["big"]["growth_ratio"] <= t["big_ratio"],
        ),
        (
            "   of which heap (sampled RssAnon peak growth)",
            lambda r: (
                f"{_mb(r['big']['anon_growth_bytes'])} = "
                f"{r['big']['anon_growth_bytes'] / r['big']['size']:.2f}x size"
            ),
            "",
            None,
        ),
        (
            "   size; answer; time",
            lambda r: (
                f"{_mb(r['big']['size'])}; {r['big']['status']}; {r['big']['elapsed_s']:.2f} s"
            ),
            "",
            None,
        ),
    ]


SECTIONS = ("intake", "sdk_intake", "latency", "latency_half", "fanout", "drain", "sdk_drain")


def _problems(result: dict[str, Any]) -> list[str]:
    out = []
    for run in result["runs"]:
        name = f"[{column(run)}]"
        sections = [s for s in SECTIONS if s in run]
        for section in sections:
            fig = run[section]
            bad = {k: v for k, v in fig["statuses"].items() if k not in ("200", "201")}
            if bad:
                out.append(f"{name} {section}: unexpected answers {bad}")
                out += [f"    {s}" for s in fig["samples"]]
        if run.get("sdk_drain", {}).get("emptied"):
            out.append(
                f"{name} sdk_drain: the inbox ran out before the time was up (the rate "
                "includes the last, ever less concurrent, fetches); a longer intake fills it"
            )
        for section in sections:
            others = run[section].get("top_others") or []
            if run[section]["other_cores"] >= 0.1:
                named = ", ".join(f"{cmd!r} {cores:.2f}" for cmd, cores in others)
                named = named or "short-lived processes"
                out.append(
                    f"{name} {section}: other processes used "
                    f"{run[section]['other_cores']:.2f} cores ({named}): figures disturbed"
                )
        if run.get("server_log_tail"):
            out.append(f"{name} the server logged (last lines):")
            out += [f"    {line[:300]}" for line in run["server_log_tail"]]
        if run["big"]["status"] != 201:
            out.append(
                f"{name} big package answered {run['big']['status']}: {run['big']['answer']!r}"[
                    :400
                ]
            )
    return out


def render(result: dict[str, Any]) -> str:
    m = result["machine"]
    p = result["profile"]
    runs = result["runs"]
    lines = [
        f"axis benchmark ({p['name']} profile), {m['date']}",
        f"machine: {m['cpu_model']}, {m['cores']} cores, {m['ram_bytes'] / 2**30:.1f} GiB RAM, "
        f"Linux {m['kernel']}, Python {m['python']}; data directory on {m['data_fs']}",
        f"other processes kept {m['others_before_cores']:.2f} cores busy just before the run"
        + ("  (NOT QUIET: figures are disturbed)" if m["others_before_cores"] > 0.2 else ""),
        "server: python -m axis serve (embedded SQLite"
        + (
            "; a bench-only SQLite driver where the column names one: "
            "python -m bench.variant_server"
            if any(r.get("driver", "sqlite3") != "sqlite3" for r in runs)
            else ""
        )
        + "), load generator: one separate process "
        "(uvloop, raw HTTP/1.1 keep-alive) on 127.0.0.1; packages signed RSA-2048/SHA-256 "
        "before timing",
        "SDK path: /vxp/* requests signed and framed as VNPT's Java SDK sends them (bench.sdk), "
        "each right after its /v1 counterpart on the same server",
        "",
    ]
    rows = _rows(result)
    headers = ["figure", *(column(r) for r in runs), "target"]
    table: list[list[str]] = []
    for label, cell, target, check in rows:
        cells = []
        for run in runs:
            try:
                text = cell(run)
                if check is not None:
                    text += "  ok" if check(run) else "  MISS"
            except (KeyError, TypeError, ZeroDivisionError) as exc:
                text = f"n/a ({type(exc).__name__})"
            cells.append(text)
        table.append([label, *cells, target])
    widths = [max(len(row[i]) for row in [headers, *table]) for i in range(len(headers))]

    def fmt(row: list[str]) -> str:
        return "  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip()

    lines.append(fmt(headers))
    lines.append(fmt(["-" * w for w in widths]))
    lines += [fmt(row) for row in table]
    problems = _problems(result)
    if problems:
        lines += ["", "problems:", *problems]
    lines += ["", f"(whole run {result['wall_s']:.0f} s)"]
    return "\n".join(lines)
