"""kefu.client: the asyncio client of the kefu protocol, and a blocking facade for scripts.

::

    async with Client("chat.bank.example", 7420, app_id="visitor-1", app_secret=secret,
                      server_pins=pins) as client:
        receipt = await client.send(new_conversation_id(), "您好", to=["agent-7"])
        async for message in client.deliveries():
            ...

    client = Client.from_url("kefu://visitor-1:SECRET@chat.bank.example?pin=sm2:...")

The secret is taken as bytes or as the text ``kefu app add`` prints. `ClientOptions` lists every option (shared by
`Client` and `BlockingClient`); `kefu.client.options` defines the URL form. Messages are acknowledged implicitly
(when the next one is asked for) unless ``explicit_ack=True``, when ``await message.ack()`` does it. Connection
failures are OSError subclasses (`ConnectError`, `ConnectionLost`, `Timeout`).

The client runs the sans-IO core of kefu.protocol over asyncio (the default loop or uvloop, neither
required). It imports neither uvloop nor any server dependency.
"""

from kefu.protocol.crypto import SigningKey, Suite
from kefu.protocol.errors import ErrorCode
from kefu.protocol.frames import AgentState, ContentType, ConversationState, DraftAction

from .backoff import Backoff
from .client import Client
from .errors import (
    AuthFailed,
    ClientClosed,
    ClientError,
    ConnectError,
    ConnectionLost,
    ConnectTimeout,
    CredentialsRefused,
    NoCommonSuite,
    RequestRefused,
    SendRefused,
    SendTimeout,
    ServerBusy,
    ServerNotTrusted,
    Timeout,
)
from .messages import Message, SendReceipt, new_client_msg_id, new_conversation_id
from .options import DEFAULT_PORT, DEFAULT_SEND_TIMEOUT_S, ClientOptions, decode_secret
from .results import OpenedConversation, QueueUpdate, SearchMatch, SentimentScore, ServiceEvent
from .service import Outcome, ServiceApi, is_staff_channel, staff_channel
from .sync import BlockingClient, BlockingService

__all__ = [
    "DEFAULT_PORT",
    "DEFAULT_SEND_TIMEOUT_S",
    "AgentState",
    "AuthFailed",
    "Backoff",
    "BlockingClient",
    "BlockingService",
    "Client",
    "ClientClosed",
    "ClientError",
    "ClientOptions",
    "ConnectError",
    "ConnectTimeout",
    "ConnectionLost",
    "ContentType",
    "ConversationState",
    "CredentialsRefused",
    "DraftAction",
    "ErrorCode",
    "Message",
    "NoCommonSuite",
    "OpenedConversation",
    "Outcome",
    "QueueUpdate",
    "RequestRefused",
    "SearchMatch",
    "SendReceipt",
    "SendRefused",
    "SendTimeout",
    "SentimentScore",
    "ServerBusy",
    "ServerNotTrusted",
    "ServiceApi",
    "ServiceEvent",
    "SigningKey",
    "Suite",
    "Timeout",
    "decode_secret",
    "is_staff_channel",
    "new_client_msg_id",
    "new_conversation_id",
    "staff_channel",
]

_RENAMED = {"QueuePosition": "QueueUpdate", "Sentiment": "SentimentScore"}
"""Wire frames that kefu.client exported before 1.0, and the typed values that took their place."""


def __getattr__(name: str) -> object:
    if name in _RENAMED:
        raise AttributeError(
            f"kefu.client.{name} (a wire frame) is gone since 1.0: service events are {_RENAMED[name]} values"
        )
    raise AttributeError(f"module 'kefu.client' has no attribute {name!r}")
