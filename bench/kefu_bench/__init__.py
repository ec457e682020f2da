"""kefu's load harness: `python -m bench.kefu_bench SCENARIO [options]` (see bench/RESULTS.md).

Scenarios: connect (idle sessions and RSS per session), handshake (full and resumed storms per suite), chat
(open-loop latency at a fixed rate), throughput (closed-loop durable messages per server CPU-second),
reconnect-storm (server restart under load), seed-table (the vendor-style summary table).

Theory of operation: the harness (this process) starts or attaches to a server, creates bulk users with
`kefu app add-bulk`, and runs the clients in worker processes (`pool`), each a uvloop loop of lean raw
peers on the sans-IO core (`peer`). It reads the server's memory and CPU from /proc (`target`), merges the
workers' HdrHistograms and per-second counts (`stats`), and writes JSON, Markdown and PNGs (`report`).
Latency in the open-loop scenarios is measured against each message's *scheduled* send time, so a sender
that falls behind still charges the delay to the system (no coordinated omission).
"""
