"""Example agent: answers the visitors who write to it, then exits after --count conversations.

::

    .venv/bin/python clients/python/examples/agent.py --port 7420 --app-id agent-7 --secret="$AGENT_SECRET" \\
        --pins-file data/keys/pins.txt --service --count 1

Run it from the directory that holds `data/`, with AGENT_SECRET set to what `kefu app add agent-7 --role agent
--tenant bank` printed (README.md, "Customer service"), and start `visitor.py` once it prints "agent: ready".

Messages that arrived while the agent was offline are delivered when it connects. With --service, the agent (an app
registered with --role agent) sets itself online at the customer-service desk and answers the visitors the server
routes to it; system events and the staff channel are printed, not answered. Exit status: 0 after --count replies,
2 on --timeout, 1 on other errors.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import os
import sys
from pathlib import Path

from kefu.client import AgentState, Client, ClientError, Suite, is_staff_channel


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Command-line options."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=7420)
    p.add_argument("--app-id", default="agent-7", help="this agent's app id (its user id)")
    p.add_argument("--secret", default=os.environ.get("KEFU_APP_SECRET", ""), help="app secret, base64url")
    p.add_argument("--pin", action="append", default=[], help="server key pin (repeatable)")
    p.add_argument("--pins-file", type=Path, help="file of server key pins, one per line")
    p.add_argument("--suite", action="append", choices=("national", "international"), help="suite to offer")
    p.add_argument("--count", type=int, default=1, help="replies to send before exiting")
    p.add_argument("--service", action="store_true", help="go online at the service desk and take routed visitors")
    p.add_argument("--timeout", type=float, default=60.0, help="seconds to run at most")
    return p.parse_args(argv)


def pins_of(args: argparse.Namespace) -> list[str]:
    """--pin values plus the lines of --pins-file."""
    pins = list(args.pin)
    if args.pins_file:
        pins += [line.strip() for line in args.pins_file.read_text().splitlines() if line.strip()]
    return pins


def secret_of(text: str) -> bytes:
    """A base64url app secret (padding optional)."""
    text = text.strip()
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


async def serve_visitors(args: argparse.Namespace) -> int:
    """Reply to each visitor message until --count replies were sent."""
    suites = tuple(Suite[s.upper()] for s in args.suite or ["national"])
    client = Client(
        args.host, args.port, app_id=args.app_id, app_secret=secret_of(args.secret), server_pins=pins_of(args),
        suites=suites,
    )  # fmt: skip
    replies = 0
    async with client:
        if args.service:
            await client.service.set_status(AgentState.ONLINE)
        print(f"agent: ready ({client.suite.name.lower() if client.suite else '?'})", flush=True)
        async for message in client.deliveries():
            if message.sender == args.app_id:
                continue  # our own replies, echoed back to this device: nothing to answer
            if message.is_system_event:  # the server's (assigned, transferred, ...); never a peer's EVENT
                print(f"agent: event {message.text}", flush=True)
                continue
            if is_staff_channel(message.conversation_id):
                print(f"agent: staff {message.sender}: {message.text}", flush=True)  # a whisper, an AI draft
                continue
            print(f"agent: {message.sender} says: {message.text}", flush=True)
            await client.send(message.conversation_id, f"您好 {message.sender}，已收到：{message.text}")
            replies += 1
            if replies >= args.count:
                break
    return 0


def main(argv: list[str] | None = None) -> int:
    """Run the agent; the exit status."""
    args = parse_args(argv)
    try:
        return asyncio.run(asyncio.wait_for(serve_visitors(args), args.timeout))
    except TimeoutError:
        print(f"agent: stopped after {args.timeout} s", file=sys.stderr)
        return 2
    except ClientError as exc:
        print(f"agent: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
