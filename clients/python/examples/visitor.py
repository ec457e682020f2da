"""Example visitor: opens a conversation with an agent, says hello, waits for the reply, exits.

::

    .venv/bin/python clients/python/examples/visitor.py --port 7420 --app-id visitor-1 --secret="$VISITOR_SECRET" \\
        --pins-file data/keys/pins.txt --service "您好，我想查询信用卡账单"

Run it from the directory that holds `data/`, with VISITOR_SECRET set to what `kefu app add visitor-1 --role visitor
--tenant bank` printed (README.md, "Customer service"), while `agent.py` runs. With --service, the visitor asks the
customer-service desk instead of naming an agent (--agent): the server routes the conversation to an online agent
(or queues it, printing the queue position) and the first agent to answer replies.

Exit status: 0 once the agent replied, 2 if no reply came within --timeout seconds, 1 on other errors.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import os
import sys
from pathlib import Path

from kefu.client import Client, ClientError, Suite, new_conversation_id


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Command-line options."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("text", nargs="?", default="您好，我想查询信用卡账单", help="what to say")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=7420)
    p.add_argument("--app-id", default="visitor-1", help="this visitor's app id (its user id)")
    p.add_argument("--secret", default=os.environ.get("KEFU_APP_SECRET", ""), help="app secret, base64url")
    p.add_argument("--pin", action="append", default=[], help="server key pin (repeatable)")
    p.add_argument("--pins-file", type=Path, help="file of server key pins, one per line")
    p.add_argument("--suite", action="append", choices=("national", "international"), help="suite to offer")
    p.add_argument("--agent", default="agent-7", help="the agent's app id (without --service)")
    p.add_argument("--service", action="store_true", help="open a service conversation; the server picks the agent")
    p.add_argument("--timeout", type=float, default=30.0, help="seconds to wait for the whole exchange")
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


async def converse(args: argparse.Namespace) -> int:
    """Say hello to the agent and print its reply."""
    suites = tuple(Suite[s.upper()] for s in args.suite or ["national"])
    client = Client(
        args.host, args.port, app_id=args.app_id, app_secret=secret_of(args.secret), server_pins=pins_of(args),
        suites=suites,
    )  # fmt: skip
    async with client:
        if args.service:
            opened = await client.service.open(first_message=args.text, attributes={"channel": "example"})
            conversation = opened.conversation_id
            where = f"agent {opened.agent}" if opened.agent else f"queue position {opened.position}"
            print(f"visitor: opened conversation {conversation} in {opened.group}: {where}", flush=True)
        else:
            conversation = new_conversation_id()
            receipt = await client.send(conversation, args.text, to=[args.agent])
            print(f"visitor: sent #{receipt.seq} to {args.agent} in conversation {conversation}", flush=True)
        async for message in client.deliveries():
            if message.conversation_id != conversation or message.sender == args.app_id:
                continue
            if message.is_system_event:  # the server's (opened, queued, assigned, ...); never a peer's EVENT
                print(f"visitor: event {message.text}", flush=True)
                continue
            print(f"visitor: {message.sender} replied: {message.text}", flush=True)
            return 0
    return 1


def main(argv: list[str] | None = None) -> int:
    """Run the visitor; the exit status."""
    args = parse_args(argv)
    try:
        return asyncio.run(asyncio.wait_for(converse(args), args.timeout))
    except TimeoutError:
        print(f"visitor: no reply within {args.timeout} s", file=sys.stderr)
        return 2
    except ClientError as exc:
        print(f"visitor: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
