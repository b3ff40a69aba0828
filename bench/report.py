#!/usr/bin/env python3
"""Writes the measured section of BENCHMARKS.md from one bench/compare.sh run.

Usage: bench/report.py RESULTS_DIR BENCHMARKS.md

RESULTS_DIR holds machine.json and one SERVER__TAG.json per run of millrace-bench. Only the text between the
`<!-- measured:begin -->` and `<!-- measured:end -->` markers is replaced, so hand-written notes around it stay.
"""

import json
import pathlib
import sys

BEGIN = "<!-- measured:begin -->"
END = "<!-- measured:end -->"

SERVERS = [
    ("millrace-always", "Millrace, fsync always"),
    ("millrace-never", "Millrace, fsync never"),
    ("millrace-enforce", "Millrace, fsync always, --auth enforce"),
    ("ferrokinesis-memory", "ferrokinesis, in memory"),
    ("ferrokinesis-durable", "ferrokinesis, durable (--state-dir)"),
    ("kinesalite", "kinesalite, in memory"),
    ("ceiling", "ceiling (minimal hyper server)"),
]
WORKLOADS = [
    ("put-1k", "PutRecords 500 x 1 KiB, 8 connections, 4 shards"),
    ("put-100b", "PutRecords 500 x 100 B, 8 connections, 4 shards"),
    ("put-single", "PutRecord 100 B, 16 connections, 4 shards"),
    ("get", "GetRecords drain, 1 KiB records, 4 shards (one connection each)"),
    ("mixed", "mixed: 20,000 rec/s offered (100 x 1 KiB batches), 4 consumers; latency is put-to-GetRecords"),
]


def load(results):
    runs = {}
    for path in sorted(results.glob("*__*.json")):
        server, tag = path.stem.split("__", 1)
        try:
            runs[(server, tag)] = json.loads(path.read_text())
        except json.JSONDecodeError:
            pass
    return runs


def num(value, digits=0):
    if value is None:
        return "-"
    if digits == 0:
        return f"{value:,.0f}"
    return f"{value:,.{digits}f}"


def ratio(a, b):
    if not a or not b:
        return "-"
    return f"{a / b:.2f}x"


def throughput_tables(runs, lines):
    for tag, title in WORKLOADS:
        rows = [(key, label, runs.get((key, tag))) for key, label in SERVERS]
        rows = [row for row in rows if row[2]]
        if not rows:
            continue
        always = (runs.get(("millrace-always", tag)) or {}).get("records_per_s")
        never = (runs.get(("millrace-never", tag)) or {}).get("records_per_s")
        lines.append(f"### {title}")
        lines.append("")
        lines.append(
            "| server | records/s | MB/s | p50 ms | p90 ms | p99 ms | max ms | server CPU s | server CPU s per M records "
            "| server peak RSS MB | client CPU s | failed | Millrace always / this | Millrace never / this |"
        )
        lines.append("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
        for key, label, run in rows:
            latency = run.get("latency") or {}
            server = run.get("server") or {}
            client = run.get("client") or {}
            rate = run.get("records_per_s")
            lines.append(
                f"| {label} | {num(rate)} | {num(run.get('mb_per_s'), 1)} | {num(latency.get('p50_ms'), 1)} "
                f"| {num(latency.get('p90_ms'), 1)} | {num(latency.get('p99_ms'), 1)} | {num(latency.get('max_ms'), 1)} "
                f"| {num(server.get('cpu_seconds'), 1)} | {num(server.get('cpu_seconds_per_million_records'), 1)} "
                f"| {num(server.get('peak_rss_mb_lifetime'))} | {num(client.get('cpu_seconds'), 1)} "
                f"| {num(run.get('failed_records', 0))} "
                f"| {'-' if key == 'millrace-always' else ratio(always, rate)} "
                f"| {'-' if key == 'millrace-never' else ratio(never, rate)} |"
            )
        lines.append("")


def shards_table(runs, lines):
    rows = [(label, runs.get((key, "shards"))) for key, label in SERVERS]
    rows = [row for row in rows if row[1]]
    if not rows:
        return
    lines.append("### Streams x shards: create, then idle")
    lines.append("")
    lines.append(
        "| server | streams x shards | create time s | shards/s | server RSS MB before | server RSS MB idle after "
        "| after one record per shard: write time s | server RSS MB idle |"
    )
    lines.append("|---|---:|---:|---:|---:|---:|---:|---:|")
    for label, run in rows:
        params = run.get("parameters") or {}
        lines.append(
            f"| {label} | {params.get('streams')} x {params.get('shards_per_stream')} | {num(run.get('duration_s'), 2)} "
            f"| {num(run.get('shards_per_s'))} | {num(run.get('server_rss_mb_before'))} "
            f"| {num(run.get('server_rss_mb_idle_after'))} | {num(run.get('touch_seconds'), 2)} "
            f"| {num(run.get('server_rss_mb_idle_after_touch'))} |"
        )
    lines.append("")


def mean(values):
    values = [v for v in values if v is not None]
    return sum(values) / len(values) if values else None


def scaling_rows(runs):
    """(shards, figures) per shard count; with several rounds (tags scaling-N, scaling-N-r2, ...) the figures are
    the mean of the rounds, and "rounds" lists each round's records/s in the order they ran."""
    by_count = {}
    for (server, tag), run in sorted(runs.items()):
        if server == "millrace-always" and tag.startswith("scaling-"):
            parts = tag.split("-")
            round_no = int(parts[2][1:]) if len(parts) > 2 else 1
            by_count.setdefault(int(parts[1]), []).append((round_no, run))
    rows = []
    for shards, rounds in sorted(by_count.items()):
        rounds = [run for _, run in sorted(rounds, key=lambda r: r[0])]
        rows.append(
            (
                shards,
                {
                    "records_per_s": mean([r.get("records_per_s") for r in rounds]),
                    "latency": {
                        key: mean([(r.get("latency") or {}).get(key) for r in rounds]) for key in ("p50_ms", "p99_ms")
                    },
                    "server": {
                        "cpu_seconds_per_million_records": mean(
                            [(r.get("server") or {}).get("cpu_seconds_per_million_records") for r in rounds]
                        )
                    },
                    "rounds": [r.get("records_per_s") for r in rounds],
                },
            )
        )
    return rows


def scaling_table(runs, lines):
    rows = scaling_rows(runs)
    if not rows:
        return
    base = rows[0][1].get("records_per_s")
    lines.append("### Millrace (fsync always): PutRecords 500 x 1 KiB against shard count")
    lines.append("")
    if any(len(run["rounds"]) > 1 for _, run in rows):
        lines.append(
            "Each count ran once per round, the sweep going up in odd rounds and down in even ones; the figures are "
            "the mean of the rounds."
        )
        lines.append("")
    lines.append(
        "| shards | records/s | each round's records/s | p50 ms | p99 ms | server CPU s per M records "
        "| relative to the first row |"
    )
    lines.append("|---:|---:|---:|---:|---:|---:|---:|")
    for shards, run in rows:
        latency = run.get("latency") or {}
        server = run.get("server") or {}
        lines.append(
            f"| {shards:,} | {num(run.get('records_per_s'))} | {', '.join(num(r) for r in run['rounds'])} "
            f"| {num(latency.get('p50_ms'), 1)} "
            f"| {num(latency.get('p99_ms'), 1)} | {num(server.get('cpu_seconds_per_million_records'), 1)} "
            f"| {ratio(run.get('records_per_s'), base)} |"
        )
    lines.append("")


def restart_table(runs, lines):
    rows = [(label, runs.get((key, "restart"))) for key, label in SERVERS]
    rows = [row for row in rows if row[1]]
    if not rows:
        return
    lines.append("### Restart after SIGKILL")
    lines.append("")
    lines.append(
        "| server | data stored GB | fill MB/s | time to first answer s | time to serving records s "
        "| RSS MB after restart |"
    )
    lines.append("|---|---:|---:|---:|---:|---:|")
    for label, run in rows:
        after = run.get("server_after_restart") or {}
        lines.append(
            f"| {label} | {num(run.get('stored_bytes', 0) / 1e9, 2)} | {num(run.get('mb_per_s'))} "
            f"| {num(run.get('time_to_first_answer_s'), 3)} | {num(run.get('time_to_serving_s'), 3)} "
            f"| {num(after.get('rss_mb'))} |"
        )
    lines.append("")


def neighbour_table(runs, lines):
    quiet = runs.get(("millrace-always", "neighbour-quiet"))
    busy = runs.get(("millrace-always", "neighbour-busy"))
    if not quiet or not busy:
        return
    lines.append("### Millrace (fsync always): PutRecords 500 x 1 KiB, 4 shards, with and without a neighbour writing to the same file system")
    lines.append("")
    lines.append("| neighbour | records/s | p50 ms | p99 ms | max ms | server CPU s per M records | relative throughput | relative p99 |")
    lines.append("|---|---:|---:|---:|---:|---:|---:|---:|")
    base = quiet.get("records_per_s")
    base_p99 = (quiet.get("latency") or {}).get("p99_ms")
    for label, run in (("none", quiet), ("`dd` writing gigabytes", busy)):
        latency = run.get("latency") or {}
        server = run.get("server") or {}
        lines.append(
            f"| {label} | {num(run.get('records_per_s'))} | {num(latency.get('p50_ms'), 1)} "
            f"| {num(latency.get('p99_ms'), 1)} | {num(latency.get('max_ms'), 1)} "
            f"| {num(server.get('cpu_seconds_per_million_records'), 1)} "
            f"| {ratio(run.get('records_per_s'), base)} | {ratio(latency.get('p99_ms'), base_p99)} |"
        )
    lines.append("")


def rate(runs, server, tag):
    return (runs.get((server, tag)) or {}).get("records_per_s")


def verdict(ok):
    if ok is None:
        return "not measured"
    return "met" if ok else "**missed**"


def cpu_per_million(runs, server, tag):
    return ((runs.get((server, tag)) or {}).get("server") or {}).get("cpu_seconds_per_million_records")


def targets(runs, lines):
    """The targets of issue 16 (the write path), each with its measured figure and ratio."""
    lines.append("### Targets")
    lines.append("")
    lines.append("| target | measured | verdict |")
    lines.append("|---|---|---|")

    def compare(peer, tag, factor, text):
        other = rate(runs, peer, tag)
        mine = rate(runs, "millrace-always", tag)
        if not mine or not other:
            lines.append(f"| {text} | - | not measured |")
            return
        lines.append(f"| {text} | {mine / other:.2f}x ({num(mine)} vs {num(other)} rec/s) | {verdict(mine / other >= factor)} |")

    def cpu(tag, limit, text):
        value = cpu_per_million(runs, "millrace-always", tag)
        ok = None if value is None else value <= limit
        lines.append(f"| {text} | {num(value, 1)} s | {verdict(ok)} |")

    put = rate(runs, "millrace-always", "put-1k")
    ceiling = rate(runs, "ceiling", "put-1k")
    if put and ceiling:
        lines.append(
            f"| PutRecords 500 x 1 KiB, 8 connections: >= 40 % of the ceiling row "
            f"| {100 * put / ceiling:.0f} % ({num(put)} vs {num(ceiling)} rec/s) | {verdict(put / ceiling >= 0.4)} |"
        )
    cpu("put-1k", 3.0, "... <= 3 server CPU seconds per million records")
    compare("ferrokinesis-memory", "put-single", 1.5, "PutRecord 100 B, 16 connections: >= 1.5x ferrokinesis in memory")
    cpu("put-single", 30.0, "... <= 30 server CPU seconds per million records")
    rows = scaling_rows(runs)
    if len(rows) >= 2:
        rates = [run.get("records_per_s") or 0 for _, run in rows]
        spread = min(rates) / max(rates) if max(rates) else 0
        lines.append(
            f"| PutRecords 1 KiB from {rows[0][0]:,} to {rows[-1][0]:,} shards: lowest / highest >= 0.8 "
            f"| {spread:.2f} ({num(min(rates))} to {num(max(rates))} rec/s) | {verdict(spread >= 0.8)} |"
        )
    compare("ferrokinesis-memory", "get", 3.0, "GetRecords drain: >= 3x ferrokinesis in memory")
    get = runs.get(("millrace-always", "get"))
    if get:
        peak = (get.get("server") or {}).get("peak_rss_mb_during_run")
        lines.append(f"| ... server peak RSS <= 100 MB | {num(peak)} MB | {verdict(None if peak is None else peak <= 100)} |")
    quiet = runs.get(("millrace-always", "neighbour-quiet"))
    busy = runs.get(("millrace-always", "neighbour-busy"))
    if quiet and busy and quiet.get("records_per_s"):
        change = busy.get("records_per_s", 0) / quiet["records_per_s"] - 1
        p99_quiet = (quiet.get("latency") or {}).get("p99_ms") or 0
        p99_busy = (busy.get("latency") or {}).get("p99_ms") or 0
        p99_change = p99_busy / p99_quiet - 1 if p99_quiet else 0
        lines.append(
            f"| a neighbour writing gigabytes changes PutRecords throughput and p99 by <= 10 % "
            f"| throughput {100 * change:+.0f} %, p99 {100 * p99_change:+.0f} % "
            f"| {verdict(abs(change) <= 0.1 and abs(p99_change) <= 0.1)} |"
        )
    enforce = rate(runs, "millrace-enforce", "put-1k")
    if put and enforce:
        lines.append(
            f"| PutRecords with --auth enforce >= 95 % of open | {100 * enforce / put:.1f} % ({num(enforce)} vs "
            f"{num(put)} rec/s) | {verdict(enforce / put >= 0.95)} |"
        )
    shards = runs.get(("millrace-always", "shards"))
    if shards:
        fresh = shards.get("server_rss_mb_idle_after")
        touched = shards.get("server_rss_mb_idle_after_touch")
        rss = touched if touched is not None else fresh
        total = shards.get("total_shards")
        lines.append(
            f"| {num(total)} idle shards: server RSS <= 300 MB | {num(fresh)} MB after creating them, "
            f"{num(touched)} MB once each holds a record | "
            f"{verdict(rss is not None and total >= 10000 and rss <= 300)} |"
        )
    restart = runs.get(("millrace-always", "restart"))
    if restart:
        stored = restart.get("stored_bytes", 0) / 1e9
        serving = restart.get("time_to_serving_s")
        lines.append(
            f"| restart after SIGKILL with 10 GB: serving within 2 s | {num(serving, 3)} s with {stored:.1f} GB "
            f"| {verdict(stored >= 9.5 and serving is not None and serving <= 2.0) if stored >= 9.5 else 'not measured at 10 GB'} |"
        )
    lines.append("")


def render(results, runs):
    machine = json.loads((results / "machine.json").read_text())
    lines = [BEGIN, ""]
    lines.append(f"Run `{machine.get('run_id')}`, Millrace `{machine.get('millrace_commit')}`, "
                 f"ferrokinesis {machine.get('ferrokinesis')}, kinesalite {machine.get('kinesalite')}.")
    lines.append("")
    lines.append(f"Machine: {machine.get('cores')} cores ({machine.get('cpu')}), {machine.get('memory_gib')} GiB, "
                 f"kernel {machine.get('kernel')}; disk: {num(machine.get('fsync_4k_per_s'))} "
                 f"4 KiB write + fdatasync per second.")
    lines.append("")
    lines.append(f"Command: `{machine.get('command', '').strip()}` (raw JSON results in `target/bench-results/{machine.get('run_id')}/`).")
    lines.append("")
    targets(runs, lines)
    throughput_tables(runs, lines)
    shards_table(runs, lines)
    scaling_table(runs, lines)
    neighbour_table(runs, lines)
    restart_table(runs, lines)
    lines.append(END)
    return "\n".join(lines)


def main():
    results = pathlib.Path(sys.argv[1])
    output = pathlib.Path(sys.argv[2])
    measured = render(results, load(results))
    if output.exists() and BEGIN in output.read_text() and END in output.read_text():
        text = output.read_text()
        head, rest = text.split(BEGIN, 1)
        _, tail = rest.split(END, 1)
        output.write_text(head + measured + tail)
    else:
        output.write_text("# Benchmarks\n\n" + measured + "\n")
    print(f"wrote {output}", file=sys.stderr)


if __name__ == "__main__":
    main()
