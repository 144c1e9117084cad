#!/usr/bin/env python3
"""Gathers what scripts/bench.sh measured into one JSON file and one table.

    scripts/bench-report.py OUT_DIR [--smoke] [--update DOC]

Reads, from OUT_DIR: criterion's estimates (criterion/**/new/), the end to
end medians (e2e.json), and, when present, the peer comparison (peer.json)
and the partition runs (partitions.json, stages.json, scale-4.json and
scale-1000.json). Writes OUT_DIR/results.json and prints a Markdown report with the ratios that matter. With --update,
the report replaces what lies between the markers `<!-- bench.sh: begin -->`
and `<!-- bench.sh: end -->` in DOC.
"""

import datetime
import json
import os
import subprocess
import sys

BEGIN, END = "<!-- bench.sh: begin -->", "<!-- bench.sh: end -->"


def criterion(root):
    """Per-element mean time (ns) of every criterion benchmark under root."""
    found = {}
    for dirpath, _, files in os.walk(root):
        if os.path.basename(dirpath) != "new" or "benchmark.json" not in files:
            continue
        with open(os.path.join(dirpath, "benchmark.json")) as f:
            bench = json.load(f)
        with open(os.path.join(dirpath, "estimates.json")) as f:
            mean = json.load(f)["mean"]["point_estimate"]
        elements = (bench.get("throughput") or {}).get("Elements") or 1
        found[bench["full_id"]] = {"ns_per_element": mean / elements, "elements": elements}
    return found


def load(path):
    if not os.path.exists(path):
        return None
    with open(path) as f:
        return json.load(f)


def commit():
    try:
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True,
                              text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return None


def fmt(v, spec="{:,.0f}"):
    return "n/a" if v is None else spec.format(v)


def ratio(a, b):
    return None if a is None or b is None or b == 0 else a / b


def report(r):
    lines = []
    add = lines.append
    mode = " (smoke: tiny sizes, debug build; not figures)" if r["smoke"] else ""
    add(f"Measured by `scripts/bench.sh` on {r['date']}, commit {r['commit']}, "
        f"{r['cores']} cores{mode}. Ratios compare runs of the same command.")
    add("")
    e = r["engine"]
    add("**Engine**, records in memory (criterion, ns per record):")
    add("")
    add("| batch | native 100 B | Partita 100 B | overhead | native 1 KB | Partita 1 KB | overhead |")
    add("|---:|---:|---:|---:|---:|---:|---:|")
    for size in (1, 64, 512):
        row = [str(size)]
        for shape in ("100B", "1KB"):
            n = e.get(f"records/{shape}/native/{size}")
            p = e.get(f"records/{shape}/passthrough/{size}")
            n, p = (n or {}).get("ns_per_element"), (p or {}).get("ns_per_element")
            over = None if n is None or p is None else p - n
            row += [fmt(n, "{:.1f}"), fmt(p, "{:.1f}"), fmt(over, "{:.1f}")]
        add("| " + " | ".join(row) + " |")
    pt, ct = e.get("state/passthrough/512"), e.get("state/count/512")
    pt, ct = (pt or {}).get("ns_per_element"), (ct or {}).get("ns_per_element")
    add("")
    add(f"`count` over 4,096 keys at batch 512: {fmt(ct, '{:.0f}')} ns per record, "
        f"{fmt(ratio(ct, pt), '{:.1f}')}× passthrough's {fmt(pt, '{:.0f}')} ns.")
    add("")
    durable, memory = e.get("engine_1m/count/durable"), e.get("engine_1m/count/memory")
    few = e.get("engine_1m/count_4096_keys/durable")
    if durable and memory and few:
        add(f"**State**, `count` over {durable['elements']:,} records in batches of 512 "
            f"(criterion, `host/benches/state.rs`): with a key per record, "
            f"{durable['ns_per_element'] / 1000:.2f} µs per record with the durable store "
            f"and {memory['ns_per_element'] / 1000:.2f} µs with the in-memory one "
            f"(target: 1); over 4,096 keys, durable, {few['ns_per_element']:.0f} ns "
            f"(target: 300).")
        add("")
    peer = r.get("peer")
    if peer:
        add(f"**Against a peer**, {peer['peer']}, same records in the same process "
            f"({peer['records']:,} records of {peer['value_bytes']} B, batches of "
            f"{peer['batch']}, median of {peer['rounds']} rounds), ns per record:")
        add("")
        add("| map | Partita | Fluvio | Partita's records/s over Fluvio's |")
        add("|---|---:|---:|---:|")
        for c in peer["cases"]:
            add(f"| {c['map']} | {c['partita_ns_per_record']:.0f} | "
                f"{c['fluvio_ns_per_record']:.0f} | {c['ratio']:.1f} |")
        add("")
    e2e = r["e2e"]
    if e2e:
        runs = next(iter(e2e["settings"].values()))
        bare, part, cnt = runs.get("bare", {}), runs.get("partita", {}), runs.get("count", {})
        add(f"**End to end** on Tansu (memory://), {e2e['records']:,} records of 100 B with "
            "distinct keys, 4 partitions, `fetch.wait.max.ms = 10`:")
        add("")
        add("| | bare loop | passthrough | count (durable state) | passthrough/bare | count/passthrough |")
        add("|---|---:|---:|---:|---:|---:|")
        for label, key, spec in (
            ("records/s, total", "total_rate", "{:,.0f}"),
            ("records/s, steady", "steady_rate", "{:,.0f}"),
            ("CPU µs per record, total", "total_cpu", "{:.2f}"),
            ("broker CPU µs per record, total", "broker_total_cpu", "{:.2f}"),
        ):
            b, p, c = bare.get(key), part.get(key), cnt.get(key)
            add(f"| {label} | {fmt(b, spec)} | {fmt(p, spec)} | {fmt(c, spec)} | "
                f"{fmt(ratio(p, b), '{:.2f}')} | {fmt(ratio(c, p), '{:.2f}')} |")
        latency = next(iter((e2e.get("latency") or {}).values()), {})
        if latency:
            rate = next(iter(latency.values()))["rate"]
            for label, key in (("latency p50, ms", "p50_ms"), ("latency p99, ms", "p99_ms")):
                b, p, c = (latency.get(k, {}).get(key) for k in ("bare", "partita", "count"))
                add(f"| {label} at {rate:,} records/s | {fmt(b)} | {fmt(p)} | {fmt(c)} | "
                    f"{fmt(ratio(p, b), '{:.2f}')} | {fmt(ratio(c, p), '{:.2f}')} |")
        add("")
        if latency:
            add("Latency: from a record's timestamp (set when it is sent) to when its output is "
                "read, at half the slowest kind's total records/s (at half the bare loop's, count "
                "fell behind without end: the sending and reading probe shares the 2 cores), "
                "after a warm-up; it includes the reader's own fetch wait (10 ms at most).")
            add("")
    parts = r["partitions"]
    if parts:
        add(f"**Partitions**, one passthrough stage, {parts['records_per_partition']} records "
            "per partition:")
        add("")
        add("| partitions | threads, peak | threads at the end | peak RSS | first commit | all committed |")
        add("|---:|---:|---:|---:|---:|---:|")
        for run in parts["runs"]:
            add(f"| {run['partitions']:,} | {run['threads_peak']} | {run['threads_end']} | "
                f"{run['peak_rss_mib']:.0f} MiB | {run['first_commit_s']:.2f} s | "
                f"{run['all_committed_s']:.2f} s |")
        staged = r.get("stages")
        for run in (staged or {}).get("runs", []):
            n = staged["stages"]
            add(f"| {run['partitions']:,} ({n} chained stages of {run['partitions'] // n:,}) | "
                f"{run['threads_peak']} | {run['threads_end']} | "
                f"{run['peak_rss_mib']:.0f} MiB | {run['first_commit_s']:.2f} s | "
                f"{run['all_committed_s']:.2f} s |")
        add("")
        if staged:
            add(f"With chained stages, each stage's partitions hold "
                f"{staged['records_per_partition']} input records each and every record goes "
                "through every stage; the commits timed are the last stage's.")
            add("")
    few, many = r.get("scale_few"), r.get("scale_many")
    if few and many:
        f, m = few["runs"][0], many["runs"][0]
        total = f["partitions"] * few["records_per_partition"]
        add(f"The same {total:,} records on {f['partitions']} and on {m['partitions']:,} "
            f"partitions: {fmt(f['records_per_s'])} and {fmt(m['records_per_s'])} records/s "
            f"(ratio {fmt(ratio(m['records_per_s'], f['records_per_s']), '{:.2f}')}), "
            f"peak RSS {f['peak_rss_mib']:.0f} and {m['peak_rss_mib']:.0f} MiB.")
        add("")
    return "\n".join(lines)


def main():
    args = sys.argv[1:]
    if not args or args[0].startswith("-"):
        sys.exit(__doc__)
    out, smoke, doc = args[0], "--smoke" in args, None
    if "--update" in args:
        doc = args[args.index("--update") + 1]
    r = {
        "date": datetime.date.today().isoformat(),
        "commit": commit(),
        "cores": os.cpu_count(),
        "smoke": smoke,
        "engine": criterion(os.path.join(out, "criterion")),
        "peer": load(os.path.join(out, "peer.json")),
        "e2e": load(os.path.join(out, "e2e.json")),
        "partitions": load(os.path.join(out, "partitions.json")),
        "stages": load(os.path.join(out, "stages.json")),
        "scale_few": load(os.path.join(out, "scale-4.json")),
        "scale_many": load(os.path.join(out, "scale-1000.json")),
    }
    if not r["engine"]:
        sys.exit(f"error: no criterion estimates under {out}/criterion")
    with open(os.path.join(out, "results.json"), "w") as f:
        json.dump(r, f, indent=2)
    text = report(r)
    print(text)
    if doc:
        with open(doc) as f:
            old = f.read()
        if BEGIN not in old or END not in old:
            sys.exit(f"error: {doc} has no {BEGIN} ... {END} block to replace")
        head, rest = old.split(BEGIN, 1)
        _, tail = rest.split(END, 1)
        with open(doc, "w") as f:
            f.write(f"{head}{BEGIN}\n{text}\n{END}{tail}")


if __name__ == "__main__":
    main()
