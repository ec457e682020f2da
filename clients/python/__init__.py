"""kefu.client: the asyncio client of the kefu protocol, and a blocking facade for scripts.

::

    async with Client("chat.bank.example", 7420, app_id="visitor-1", app_secret=secret,
                      server_pins=pins) as client:
        receipt = await client.send(new_conversation_id(), "您好", to=["agent-7"])
        async for message in client.deliveries():
            ...

The client runs the sans-IO core of kefu.protocol over asyncio (the default loop or uvloop, neither
required). It imports neither uvloop nor any server dependency.
"""

from kefu.protocol.crypto import SigningKey, Suite
from kefu.protocol.errors import ErrorCode
from kefu.protocol.frames import AgentState, ContentType, ConversationState, DraftAction, QueuePosition, Sentiment

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
from .service import Outcome, ServiceApi, is_staff_channel, staff_channel
from .sync import BlockingClient

__all__ = [
    "AgentState",
    "AuthFailed",
    "Backoff",
    "BlockingClient",
    "Client",
    "ClientClosed",
    "ClientError",
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
    "Outcome",
    "QueuePosition",
    "RequestRefused",
    "SendReceipt",
    "SendRefused",
    "SendTimeout",
    "Sentiment",
    "ServerBusy",
    "ServerNotTrusted",
    "ServiceApi",
    "SigningKey",
    "Suite",
    "Timeout",
    "is_staff_channel",
    "new_client_msg_id",
    "new_conversation_id",
    "staff_channel",
]
