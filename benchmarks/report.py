"""Render ``benchmarks/results.json`` as ``BENCHMARKS.md``."""

from __future__ import annotations

from typing import Any

TARGETS = {
    "fanout": "delivered msgs/s >= the websockets peer's (ratio >= 1.0)",
    "idle": "<= 20 KiB RSS per idle connection at 10,000 connections",
    "storm": "10,000 clients fully served in <= 10 s",
    "chain": "p99 <= 100 ms with ws_url; <= poll interval + 100 ms with polling",
    "query": "cursor walk p99 <= 10 ms at 10,000,000 transfers; MiB per million reported",
    "payments": "every settled socket gets its settlement; p50/p99 reported (no target yet)",
}


def _f(value: Any, digits: int = 1) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:,.{digits}f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def _verdict(ok: bool | None) -> str:
    return "-" if ok is None else ("met" if ok else "NOT met")


def render(results: dict[str, Any]) -> str:
    m = results["machine"]
    s = results["scenarios"]
    out: list[str] = []
    add = out.append
    add("# rtserver benchmarks\n")
    add(
        f"Measured by `{results['command'].strip()}` ({results['mode']} sizes) on "
        f"{m['date_utc']}, rtserver commit `{m['rtserver_commit']}`. Raw numbers: "
        "`benchmarks/results.json`. Re-run: `./scripts/bench` (full; this run took "
        f"{_f((results.get('elapsed_s') or 0) / 60, 0)} minutes, plus about 20 the first time, "
        "to generate the 10,000,000 transfers of the query scenario) or `./scripts/bench "
        "--quick` (smoke run); `--only SCENARIO...` picks scenarios (`--help` lists them).\n"
    )
    if m.get("source_note"):
        add(f"**Source measured**: {m['source_note']}\n")
    add(
        f"**Machine**: {m['cpu']}, {m['cores']} cores, {m['memory_gib']} GiB, Linux {m['kernel']}, "
        f"Python {m['python']}, Node {m['node']}, websockets {m['websockets']}, hypercorn "
        f"{m['hypercorn']}, open-file limit {m['open_files_limit']} per process. Server, load "
        "generator (Node `ws`, several processes) and Anvil share these cores on loopback, so "
        "every figure includes the load generator's own CPU use (reported).\n"
    )
    if results.get("skipped"):
        add("**Not measured in this run**:\n")
        for name, why in results["skipped"].items():
            add(f"- {name}: {why}")
        add("")

    _round_two(s, add)

    add("## Summary against the round-1 targets\n")
    add("| scenario | target | measured | verdict |")
    add("|---|---|---|---|")
    fan = s.get("fanout", {}).get("summary", [])
    for row in fan:
        ratios = row.get("ratios_rtserver_over_peer", {})
        ratio = ratios.get(
            "sustained_msgs_per_s_pairwise_median", ratios.get("sustained_msgs_per_s")
        )
        if ratio is not None:
            add(
                f"| 1 fan-out {row['clients']:,} clients / {row['apps']} app(s) | {TARGETS['fanout']} | "
                f"rtserver/peer sustained = {ratio:.2f} | {_verdict(ratio >= 1.0)} |"
            )
    for row in fan:
        rt = row.get("rtserver")
        if rt and row["clients"] >= 10_000:
            kib = rt["kib_per_idle_connection"]
            add(
                f"| 3 idle, {row['clients']:,} clients / {row['apps']} app(s) | {TARGETS['idle']} | "
                f"{_f(kib)} KiB | {_verdict(kib is not None and kib <= 20)} |"
            )
    if "storm" in s and "all_received_s" in s["storm"]:
        st = s["storm"]
        t = st["all_received_s"]
        rc = st["reconnect"]
        if t is not None:
            measured = f"all served in {_f(t, 2)} s"
        else:
            measured = (
                f"{_f(rc['connected'])} of {_f(st['clients'])} reconnected within 120 s; "
                f"those had everything after {_f(rc.get('all_received_s'), 1)} s"
            )
        verdict = (
            _verdict(t is not None and t <= 10) if st["clients"] >= 10_000 else "- (quick size)"
        )
        add(
            f"| 2 reconnect storm, {st['clients']:,} clients | {TARGETS['storm']} | {measured} "
            f"| {verdict} |"
        )
    if "chain" in s and "modes" in s["chain"]:
        # The loaded run has its own (round-2) target.
        for mode in [m for m in s["chain"]["modes"] if m["mode"] != "ws_url_loaded"]:
            add(
                f"| 5 chain to client, {mode['mode']} | {TARGETS['chain']} | p99 {_f(mode.get('p99_ms'))} ms "
                f"| {_verdict(mode.get('target_met'))} |"
            )
    if "payments" in s and "p99_ms" in s["payments"]:
        pay = s["payments"]
        add(
            f"| 7 payment status, {pay['sockets']:,} sockets | {TARGETS['payments']} "
            f"| p50 {_f(pay['p50_ms'])} ms, p99 {_f(pay['p99_ms'])} ms "
            f"| {_verdict(pay['received'] == pay['settled'] and not pay['unexpected_settlements'])} |"
        )
    if "query" in s and "p99_ms" in s["query"]:
        q = s["query"]
        walk_p99 = q.get("walk_p99_ms")
        add(
            f"| 6 query, {q['transfers']:,} transfers | {TARGETS['query']} "
            f"| cursor walk p99 {_f(walk_p99, 2)} ms (all queries {_f(q['p99_ms'], 2)} ms); "
            f"{_f(q.get('db_mib_per_million'))} MiB per million "
            f"| {_verdict(walk_p99 <= 10 if walk_p99 is not None and q['transfers'] >= 10_000_000 else None)} |"
        )
    add("")

    if fan:
        add("## 1. Fan-out (and 3. idle connections)\n")
        add(
            "Every client of an app receives every event of the app (all apps watch one "
            "address). *Fixed*: events injected at a rate that offers the stated msgs/s. "
            "*Sustained*: the highest delivered msgs/s of a ramp (x"
            f"{results['sizes']['ramp_factor']} per step) at which every message arrived "
            "within the drain grace, p99 <= 1 s and no client was closed. Latency = client "
            "receive time - event injection time (before the SQLite commit, for rtserver). "
            f"Medians of {results['sizes']['reps']} alternating rtserver/peer runs. "
            "*gen CPU* = busiest load-generator process's CPU use (1.0 = one core).\n"
        )
        add(
            "| clients | apps | server | fixed msgs/s | fixed p50 / p99 ms | sustained msgs/s | "
            "sustained p50 / p99 ms | server CPU (fixed) | gen CPU | KiB/idle conn | peak RSS MiB |"
        )
        add("|---|---|---|---|---|---|---|---|---|---|---|")
        for row in fan:
            for name in ("rtserver", "websockets"):
                r = row.get(name)
                if not r:
                    continue
                add(
                    f"| {row['clients']:,} | {row['apps']} | {name} | {_f(r['fixed_delivered_msgs_per_s'], 0)} "
                    f"| {_f(r['fixed_p50_ms'])} / {_f(r['fixed_p99_ms'])} "
                    f"| {_f(r.get('sustained_msgs_per_s'), 0)} "
                    f"| {_f(r.get('sustained_p50_ms'))} / {_f(r.get('sustained_p99_ms'))} "
                    f"| {_f(r['fixed_server_cpu_util'], 2)} | {_f(r['fixed_loadgen_max_worker_cpu_util'], 2)} "
                    f"| {_f(r['kib_per_idle_connection'])} | {_f(r['peak_rss_mib'])} |"
                )
            if row.get("ratios_rtserver_over_peer"):
                ratios = ", ".join(
                    f"{k} {v:.2f}" for k, v in row["ratios_rtserver_over_peer"].items()
                )
                add(f"| | | **rtserver/peer** | {ratios} | | | | | | | |")
        add("")
        runs = s["fanout"]["runs"]
        ramps = [r for r in runs if "ramp" in r]
        if ramps:
            add("<details><summary>Ramp steps of every run</summary>\n")
            add(
                "| server | clients | rep | offered msgs/s | delivered msgs/s | p50 ms | p99 ms | server CPU s | gen CPU | kept up |"
            )
            add("|---|---|---|---|---|---|---|---|---|---|")
            for r in ramps:
                for st in r["ramp"]["steps"]:
                    add(
                        f"| {r['target']} | {r['clients']:,} | {r['rep']} | {_f(st['offered_msgs_per_s'])} "
                        f"| {_f(st['delivered_msgs_per_s'])} | {_f(st['latency_ms']['p50'])} "
                        f"| {_f(st['latency_ms']['p99'])} | {_f(st['server_cpu_s'], 2)} "
                        f"| {_f(st['loadgen_max_worker_cpu_util'], 2)} | {'yes' if st['kept_up'] else 'no'} |"
                    )
            add("\n</details>\n")
        errors = [r for r in runs if "error" in r]
        for r in errors:
            add(
                f"- run failed: {r['target']} {r['clients']} clients {r['apps']} apps: {r['error']}"
            )
        if errors:
            add("")

    if "storm" in s:
        st = s["storm"]
        add("## 2. Reconnect storm\n")
        if "error" in st:
            add(f"Failed: {st['error']}\n")
        else:
            add(
                f"{st['clients']:,} clients over {st['apps']} apps connect, disconnect; "
                f"{st['pending_per_client']} events per app are committed while they are away; "
                "then all reconnect at once (`X-ResendDuration: 600`; a failed connect is retried "
                "after 100-500 ms, as clients do, until 120 s), and ACK everything.\n"
            )
            add(
                "| run | reconnected (failed connects retried) | everyone has everything | all ACKs answered | server CPU s | peak RSS MiB | closes | gen CPU |"
            )
            add("|---|---|---|---|---|---|---|---|")
            for rep, run in enumerate(st.get("runs", [st]), 1):
                if "error" in run:
                    add(f"| {rep} | failed: {run['error']} | | | | | | |")
                    continue
                rc = run["reconnect"]
                add(
                    f"| {rep} | {_f(rc['connected'])} of {_f(run['clients'])} ({_f(rc.get('retries', 0))} retries) "
                    f"| {_f(run['all_received_s'], 2) + ' s' if run['all_received_s'] is not None else 'no (those connected: ' + _f(rc.get('all_received_s'), 1) + ' s)'} "
                    f"| {_f(run['all_acked_s'], 2) + ' s' if run['all_acked'] else 'no'} "
                    f"| {_f(run['server_cpu_s'], 2)} | {_f(run['server_peak_rss_mib'])} | {run['closes']} "
                    f"| {_f(run['loadgen_max_worker_cpu_util'], 2)} |"
                )
            if len(st.get("runs", [])) > 1:
                add(
                    f"| **median** | | {_f(st['all_received_s'], 2) + ' s' if st['all_received_s'] is not None else 'no'} "
                    f"| {_f(st['all_acked_s'], 2)} s | {_f(st['server_cpu_s'], 2)} | {_f(st['server_peak_rss_mib'])} | | |"
                )
            add(
                f"\nReconnect latency of the resent messages: p50 {_f(st['latency_ms']['p50'])} ms, "
                f"p99 {_f(st['latency_ms']['p99'])} ms (from their injection, while clients were away).\n"
            )

    if "durable" in s:
        d = s["durable"]
        add("## 4. Durable delivery\n")
        if "error" in d:
            add(f"Failed: {d['error']}\n")
        else:
            add(
                f"{d['clients']:,} clients over {d['apps']} apps; every client ACKs every "
                "`transaction` (`transactionACK` with `messageId`); ACKed msgs/s counts ACK "
                "replies, which rtserver sends after the ACK is committed.\n"
            )
            add(
                "| offered msgs/s | delivered msgs/s | ACKed msgs/s | p50 ms | p99 ms | server CPU s | peak RSS MiB | kept up |"
            )
            add("|---|---|---|---|---|---|---|---|")
            for st in d["steps"]:
                add(
                    f"| {_f(st['offered_msgs_per_s'])} | {_f(st['delivered_msgs_per_s'])} | {_f(st.get('acked_msgs_per_s'))} "
                    f"| {_f(st['latency_ms']['p50'])} | {_f(st['latency_ms']['p99'])} | {_f(st['server_cpu_s'], 2)} "
                    f"| {_f(st['server_peak_rss_mib'])} | {'yes' if st['kept_up'] else 'no'} |"
                )
            add(f"\nSustained ACKed msgs/s: **{_f(d['sustained_msgs_per_s'])}**.\n")

    if "chain" in s:
        c = s["chain"]
        add("## 5. Chain to client\n")
        if "error" in c:
            add(f"Failed: {c['error']}\n")
        else:
            add(c.get("description", "") + "\n")
            add(
                "| mode | transfers | received | p50 ms | p99 ms | max ms | server CPU s | peak RSS MiB |"
            )
            add("|---|---|---|---|---|---|---|---|")
            for mode in c["modes"]:
                add(
                    f"| {mode['mode']} | {mode['sent']} | {mode['received']} | {_f(mode.get('p50_ms'))} "
                    f"| {_f(mode.get('p99_ms'))} | {_f(mode.get('max_ms'))} | {_f(mode['server_cpu_s'], 2)} "
                    f"| {_f(mode['server_peak_rss_mib'])} |"
                )
            add("")

    if "query" in s:
        q = s["query"]
        add("## 6. Transfer queries\n")
        if "error" in q:
            add(f"Failed: {q['error']}\n")
        else:
            add(
                f"{q['transfers']:,} transfers generated by `{q['generate_command'].split('benchmarks/', 1)[-1]}` "
                f"in {_f(q['generator'].get('seconds'))} s (through `store_new_records`, the store's bulk "
                f"insert); database {_f(q['db_size_mib'])} MiB, "
                f"**{_f(q.get('db_mib_per_million'))} MiB per million transfers**. The hot address takes "
                "part in 10 % of them, two chains; hashes and addresses are random-looking (seeded), as "
                "on a chain (the store packs its rows: zeros would flatter its size). The database's "
                "pages are evicted from the page cache before the server starts, so every page a query "
                "reads first comes from disk. Sequential requests over one keep-alive connection "
                f"from Python (httpx); {q['requests']:,} requests; server CPU {_f(q['server_cpu_s'], 2)} s, "
                f"peak RSS {_f(q['server_peak_rss_mib'])} MiB. A `*_cursor_walk` is pages of 100 from "
                "the newest, each asking for the ids below the last one of the page before; each page "
                "is one request (n = pages).\n"
            )
            add("| query | rows | n | p50 ms | p99 ms |")
            add("|---|---|---|---|---|")
            for kind, k in q["per_kind"].items():
                add(
                    f"| {kind} | {k['rows']:,} | {k['n']:,} | {_f(k['p50_ms'], 2)} | {_f(k['p99_ms'], 2)} |"
                )
            if "walk_p99_ms" in q:
                add(
                    f"| **cursor walks** | | {q['walk_pages']:,} | **{_f(q['walk_p50_ms'], 2)}** "
                    f"| **{_f(q['walk_p99_ms'], 2)}** |"
                )
            add(
                f"| **all** | | {q['requests']:,} | **{_f(q['p50_ms'], 2)}** | **{_f(q['p99_ms'], 2)}** |\n"
            )

    if "serial" in s:
        _serial(s["serial"], add)

    if "ingest" in s:
        _ingest(s["ingest"], add)

    if "channels" in s:
        _channels(s["channels"], add)

    if "wallet" in s:
        _wallet(s["wallet"], add)

    if "payments" in s:
        pay = s["payments"]
        add("## 9. Payment status\n")
        if "error" in pay:
            add(f"Failed: {pay['error']}\n")
        else:
            add(pay.get("description", "") + "\n")
            add(
                "| sockets | settled | received | p50 ms | p99 ms | max ms | server CPU s "
                "| peak RSS MiB |"
            )
            add("|---|---|---|---|---|---|---|---|")
            add(
                f"| {pay['connected']:,} | {pay['settled']} | {pay['received']} "
                f"| {_f(pay.get('p50_ms'))} | {_f(pay.get('p99_ms'))} | {_f(pay.get('max_ms'))} "
                f"| {_f(pay['server_cpu_s'], 2)} | {_f(pay['server_peak_rss_mib'])} |"
            )
            add("")

    add("## Profiles\n")
    add(
        "`benchmarks/profile_push.py` samples the server with py-spy during a fan-out step; "
        "`benchmarks/profile_idle.py` attributes the Python heap of idle connections to "
        "allocating lines (tracemalloc). Their last outputs are kept in `benchmarks/profiles/`, "
        "with the notes of the measurements behind each change (timers, A/B runs). For the "
        "round-2 targets not met, `benchmarks/profiles/round-2-what-is-left.md` says what the "
        "profiles show is left and what meeting them would take.\n"
    )
    add("## Exact commands\n")
    add(f"- this run: `{results['command'].strip()}` (total {_f(results.get('elapsed_s'))} s)")
    seen = set()
    for name, sc in s.items():
        cmds = [sc.get("command")] if isinstance(sc, dict) else []
        if name == "fanout":
            cmds = sorted(
                {
                    r.get("command", "").split(" --bind")[0]
                    for r in sc.get("runs", [])
                    if r.get("command")
                }
            )
        for cmd in cmds:
            if cmd and cmd not in seen:
                seen.add(cmd)
                add(f"- {name}: `{cmd}`")
    add(
        "- load generator: `node benchmarks/loadgen/loadgen.js` (one per worker; commands on stdin)"
    )
    add("")
    return "\n".join(out) + "\n"


def _round_two(s: dict[str, Any], add: Any) -> None:
    """The table of issue 17's targets: each figure on this run's code, the peer's where
    there is one, met or not."""
    add("## Round 2 targets (issue 17)\n")
    add("| target | measured (rtserver) | peer | verdict |")
    add("|---|---|---|---|")
    for row in s.get("serial", {}).get("summary", []):
        rt, peer = row.get("rtserver"), row.get("websockets")
        ratios = row.get("ratios_rtserver_over_peer", {})
        if not rt:
            continue
        ratio = ratios.get(
            "deliveries_per_server_cpu_s_pairwise_median", ratios.get("deliveries_per_server_cpu_s")
        )
        ok = (
            None
            if ratio is None
            else ratio >= 1.5 and (rt["p99_ms"] or 0) <= (peer or {}).get("p99_ms", 0)
        )
        add(
            f"| 10 fan-out one event at a time, {row['clients']:,} clients: deliveries per server "
            f"CPU-s >= 1.5x the peer's, p99 <= the peer's "
            f"| {_f(rt['deliveries_per_server_cpu_s'])}/CPU-s (x{_f(ratio, 2)}), p99 {_f(rt['p99_ms'])} ms "
            f"| {_f((peer or {}).get('deliveries_per_server_cpu_s'))}/CPU-s, p99 {_f((peer or {}).get('p99_ms'))} ms "
            f"| {_verdict(ok)} |"
        )
    for row in s.get("fanout", {}).get("summary", []):
        rt, peer = row.get("rtserver"), row.get("websockets")
        if rt and row["clients"] >= 10_000 and row["apps"] == 1:
            kib = rt["kib_per_idle_connection"]
            add(
                f"| 3 idle memory <= 10 KiB RSS per connection at {row['clients']:,} connections "
                f"| {_f(kib)} KiB | {_f((peer or {}).get('kib_per_idle_connection'))} KiB "
                f"| {_verdict(kib is not None and kib <= 10)} |"
            )
    st = s.get("storm", {})
    if "all_acked_s" in st:
        served, acked = (
            st.get("all_received_s"),
            st.get("all_acked_s") if st.get("all_acked") else None,
        )
        ok = served is not None and acked is not None and served <= 5 and acked <= 5
        add(
            f"| 2 reconnect storm, {st['clients']:,} clients x {st['pending_per_client']} pending: all "
            f"served and every ACK answered in <= 5 s | served {_f(served, 2)} s, ACKs answered "
            f"{_f(acked, 2)} s | - | {_verdict(ok if st['clients'] >= 10_000 else None)} |"
        )
    ing = s.get("ingest", {})
    if ing.get("steps"):
        from benchmarks.ingest import ingest_summary

        summary = ingest_summary(ing["steps"])
        rate = summary["committed_entries_per_s"]
        add(
            f"| 11 durable ingest >= 50,000 outbox entries/s committed (synchronous = FULL), "
            f"entries per fsync reported | {_f(rate)} entries/s committed, "
            f"{_f(summary['committed_entries_per_commit'])} per commit ({ing['apps']:,} apps, "
            f"blocks of {ing.get('block_transfers')}); delivered as well within a fan-out "
            f"step's bounds up to {_f(summary['sustained_entries_per_s'])}/s "
            f"| - | {_verdict(rate >= 50_000)} |"
        )
    q = s.get("query", {})
    if "p99_ms" in q:
        per_million = q.get("db_mib_per_million") or round(
            q["db_size_mib"] / (q["transfers"] / 1e6), 1
        )
        walk = q.get("walk_p99_ms")
        add(
            f"| 6 queries at 10,000,000 transfers, a cursor walk: p99 <= 10 ms; DB size per "
            f"million | {q['transfers']:,} transfers: cursor-walk p99 {_f(walk, 2)} ms (every "
            f"query: {_f(q['p99_ms'], 2)} ms), {_f(per_million)} MiB per million | - "
            f"| {_verdict(walk <= 10 if walk is not None and q['transfers'] >= 10_000_000 else None)} |"
        )
    for mode in s.get("chain", {}).get("modes", []):
        if mode.get("mode") == "ws_url_loaded":
            add(
                f"| 5 chain to client with ws_url, {mode['transfers_per_block']} matching transfers "
                f"per block, {mode['clients']:,} clients: p99 <= 50 ms | p50 {_f(mode.get('p50_ms'))} ms, "
                f"p99 {_f(mode.get('p99_ms'))} ms (the node alone: {_f(mode.get('node_block_fetch_ms'))} ms "
                f"per block) | - | {_verdict(mode.get('target_met'))} |"
            )
    kept = [
        name for name in ("wallet", "payments", "channels") if name in s and "error" not in s[name]
    ]
    if kept:
        add(
            f"| the protocols' scenarios keep their figures | {', '.join(kept)}: sections 7-9 | - | "
            f"{'reported' if len(kept) == 3 else 'partly reported'} |"
        )
    add("")


def _serial(r: dict[str, Any], add: Any) -> None:
    add("## 10. Fan-out one event at a time\n")
    if "error" in r:
        add(f"Failed: {r['error']}\n")
        return
    add(
        "One app, every client receives every event; each event is a `POST "
        "/tx/api/v1/transaction/ws/replay` (a complete `WsTransactionMessage`) awaited before "
        "the next, from one Python client on a kept-alive connection, for a fixed time. "
        "rtserver stores each event durably before answering, the peer keeps nothing; both "
        "answer once the event is written to every socket (rtserver: `Hub.wait_backlog`), "
        "so no two events share a socket write. "
        "*Deliveries per CPU-s* = frames received by the clients / server CPU seconds "
        "(user + system, from `/proc`) over the run; latency = receipt - the moment the "
        "event was made, just before its POST. Medians of alternating runs.\n"
    )
    add(
        "| clients | server | events | deliveries per CPU-s | p50 / p99 ms | POST p50 ms | kernel share of CPU | KiB/idle conn |"
    )
    add("|---|---|---|---|---|---|---|---|")
    for row in r.get("summary", []):
        for name in ("rtserver", "websockets"):
            x = row.get(name)
            if not x:
                continue
            add(
                f"| {row['clients']:,} | {name} | {_f(x['events'])} | {_f(x['deliveries_per_server_cpu_s'])} "
                f"| {_f(x['p50_ms'])} / {_f(x['p99_ms'])} | {_f(x['post_p50_ms'])} "
                f"| {_f(x.get('server_system_share'), 2)} | {_f(x['kib_per_idle_connection'])} |"
            )
        ratios = row.get("ratios_rtserver_over_peer")
        if ratios:
            add(
                "| | **rtserver/peer** | | "
                + ", ".join(f"{k} {_f(v, 2)}" for k, v in ratios.items())
                + " | | | | |"
            )
    add("")


def _ingest(r: dict[str, Any], add: Any) -> None:
    add("## 11. Durable ingest\n")
    if "error" in r:
        add(f"Failed: {r['error']}\n")
        return
    add(
        f"{r['apps']:,} apps watch one address, one client each (not ACKing); synthetic "
        f"transfers go through the watcher's path in blocks of {r.get('block_transfers')} "
        "(one write job each, up to 8 in flight, group-committed), each making one outbox "
        "entry per app; `synchronous = FULL`. A step offers entries/s for a few seconds; "
        "*committed* = entries / time until the last block committed; per commit = entries / "
        "`rtserver_store_commits_total` increase (one WAL fsync per commit).\n"
    )
    add(
        "| offered entries/s | committed entries/s | commits | entries per commit | delivered msgs/s | p50 / p99 ms | server CPU s | kept up |"
    )
    add("|---|---|---|---|---|---|---|---|")
    for st in r["steps"]:
        add(
            f"| {_f(st['offered_msgs_per_s'])} | {_f(st['entries_per_s'])} | {_f(st['commits'])} "
            f"| {_f(st['entries_per_commit'])} | {_f(st['delivered_msgs_per_s'])} "
            f"| {_f(st['latency_ms']['p50'])} / {_f(st['latency_ms']['p99'])} "
            f"| {_f(st['server_cpu_s'], 2)} | {'yes' if st['kept_up'] else 'no'} |"
        )
    from benchmarks.ingest import ingest_summary

    summary = ingest_summary(r["steps"])
    add(
        f"\nCommitted at most: **{_f(summary['committed_entries_per_s'])} entries/s** "
        f"({_f(summary['committed_entries_per_commit'])} per commit); every entry also "
        f"delivered within a fan-out step's bounds (p99 <= 1 s, the injector on schedule) up to "
        f"**{_f(summary['sustained_entries_per_s'])} entries/s**.\n"
    )


def _wallet(w: dict[str, Any], add: Any) -> None:
    add("## 8. Wallet socket\n")
    if "error" in w:
        add(f"Failed: {w['error']}\n")
        return
    first, push = w["initial_sequence"], w["push_latency"]
    add(
        f"{w['connections']:,} users with a Safe each (registered through the admin API) connect "
        "to `/ws` at once and authenticate (JWT); *initial sequence* = from the socket's open to "
        "its sixth message (`user_data`), balances read from Anvil included. Then transfers to "
        f"Safes are mined ({push['transfers']}, the chain polled every "
        f"{push['poll_interval_s']} s); *push* = mined → `new_transaction` at the socket.\n"
    )
    add("| initial sequence p50 / p99 / max ms | all sequences done | push p50 / p99 / max ms |")
    add("|---|---|---|")
    add(
        f"| {_f(first['p50_ms'])} / {_f(first['p99_ms'])} / {_f(first['max_ms'])} "
        f"| {_f(first['all_connected_s'], 1)} s "
        f"| {_f(push['p50_ms'])} / {_f(push['p99_ms'])} / {_f(push['max_ms'])} |"
    )
    add("")


def _channels(c: dict[str, Any], add: Any) -> None:
    """Section 7: the channel sockets (benchmarks/channels.py)."""
    add("## 7. Channel sockets\n")
    if "connect" not in c:
        add(f"Failed: {c.get('error')}\n")
        return
    z, conn, idle = c["sizes"], c["connect"], c["idle"]
    add(
        f"{z['sockets']:,} sockets of one app, one user each (`/api/v1/ws?token=`, an access "
        "token per user), subscribed to `settings` (by the server) and `notification.events`; "
        f"{z['workers']} Node workers (`benchmarks/loadgen/channels.js`) hold them, one more publishes (`POST /api/v1/ws/publish`, "
        f"answered once durable and written to every socket; at most {z['publishers']} requests in flight). *broadcast*: "
        "events to `settings`, each delivered to every socket; *user*: to one user's "
        f"`notification.events` (`user_id`); *batch*: `user_ids` of {z['batch_users']} users. "
        f"Each step publishes for {z['step_seconds']:g} s at a fixed rate (x{z['ramp_factor']:g} "
        "per step); *sustained* = the best step in which every socket received exactly its "
        "events (counted per socket), no publish failed, no socket closed, p99 <= 1 s and "
        "the publisher stayed on schedule. Latency = socket receive time - publish send time "
        "(in `data`; HTTP request, SQLite commit and fan-out included).\n"
    )
    add(
        f"Connect: {_f(conn['connected'])} sockets ({_f(conn['failed'])} failed) in "
        f"{_f(conn['connect_s'], 2)} s, server CPU {_f(idle['connect_cpu_s'], 2)} s; server RSS "
        f"{_f(idle['rss_before_mib'])} -> {_f(idle['rss_after_mib'])} MiB: "
        f"**{_f(idle['kib_per_connection'])} KiB per idle connection** (three channels each).\n"
    )
    if c.get("error"):
        add(f"Failed: {c['error']}\n")
    add(
        "| ramp | sustained publishes/s | sustained deliveries/s | p50 / p99 ms "
        "| publish answer p50 / p99 ms | server CPU (1.0 = a core) | peak deliveries/s "
        "| all delivered |"
    )
    add("|---|---|---|---|---|---|---|---|")
    for r in c["ramps"]:
        b = r["sustained_step"] or {}
        lat, rtt = b.get("latency_ms", {}), b.get("publish_rtt_ms", {})
        add(
            f"| {r['name']} (`{r['channel']}`) | {_f(r['sustained_publishes_per_s'])} "
            f"| {_f(r['sustained_deliveries_per_s'])} | {_f(lat.get('p50'))} / {_f(lat.get('p99'))} "
            f"| {_f(rtt.get('p50'))} / {_f(rtt.get('p99'))} | {_f(b.get('server_cpu_util'), 2)} "
            f"| {_f(r['peak_deliveries_per_s'])} | {'yes' if r['all_delivered'] else 'NO'} |"
        )
    add("\n<details><summary>Steps of every ramp</summary>\n")
    add(
        "| ramp | offered publishes/s | publishes/s | deliveries/s | p50 ms | p99 ms "
        "| publish answer p99 ms | server CPU s | missing / extra | closes | kept up |"
    )
    add("|---|---|---|---|---|---|---|---|---|---|---|")
    for r in c["ramps"]:
        for st in r["steps"]:
            add(
                f"| {r['name']} | {_f(st['offered_publishes_per_s'])} | {_f(st['publishes_per_s'])} "
                f"| {_f(st['deliveries_per_s'])} | {_f(st['latency_ms']['p50'])} "
                f"| {_f(st['latency_ms']['p99'])} | {_f(st['publish_rtt_ms']['p99'])} "
                f"| {_f(st['server_cpu_s'], 2)} | {_f(st['missing'])} / {_f(st['extra'])} "
                f"| {_f(st['closes'])} | {'yes' if st['kept_up'] else 'no'} |"
            )
    add("\n</details>\n")
    logged = c.get("server_log")
    if logged:
        add(
            f"Server log during the scenario: errors logged {logged['errors']}, "
            f"warnings logged {logged['warnings']} (`bench-results/logs/channels.log`).\n"
        )
