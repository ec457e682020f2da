// Types of the kefu JavaScript client (clients/js/src/index.js). Public API; see clients/js/README.md.
//
// Conversation ids, seqs and server message ids are u64 on the wire: they are `bigint` here. Service
// conversations have ids at or above 2^62, which a `number` cannot hold exactly.

/** A cipher suite name (spec section 6.1): "national" = curveSM2/SM2/SM3/SM4-GCM, "international" = X25519/Ed25519/SHA-256/AES-128-GCM. */
export type SuiteName = "national" | "international";

/** What carries the kefu byte stream: `send` writes whole records, `onData`/`onClose` are set by the client. */
export interface Transport {
  send(data: Uint8Array): void;
  close(): void;
  onData: ((data: Uint8Array) => void) | null;
  onClose: ((reason?: string) => void) | null;
}

/** Opens a transport; resolves once it is open (the WebSocket's `open`). */
export type TransportFactory = () => Promise<Transport>;

export interface ClientOptions {
  /** `ws://host:port/ws` or `wss://...` (subprotocol kefu.v1), or a factory (Node tests, custom transports). */
  url?: string;
  transport?: TransportFactory;
  appId: string;
  /** The app secret: 32 bytes, as base64url text (what `kefu app add` and /auth/signin print) or bytes. */
  appSecret?: string | Uint8Array;
  /**
   * Instead of an app secret: a client key registered for the app (spec 5.5, CLIENT_KEY; `kefu key` prints its
   * fingerprint). The suites offered must all be of its type: "sm2" national, "ed25519" international.
   */
  clientKey?: { type: "sm2" | "ed25519"; privateKey: Uint8Array };
  /** Pinned server keys, "sm2:<hex>" / "ed25519:<hex>" (from /config.json or `kefu key show`). */
  serverPins: string[];
  /** Suites offered, in preference order. Default ["national"]. */
  suites?: SuiteName[];
  /** Keepalive offered to the server, seconds (default 30). */
  keepaliveS?: number;
  /** Reconnect after a loss (default true): resumption ticket, backoff (or the server's GOAWAY parameters). */
  reconnect?: boolean;
  /** Reconnect backoff: first delay, cap (ms) and jitter (fraction); default {initialMs: 500, maxMs: 30000, jitter: 0.2}. */
  backoff?: { initialMs?: number; maxMs?: number; jitter?: number };
  /** Seconds before connect() gives up on one attempt (default 10). */
  connectTimeoutS?: number;
  /** Seconds send() waits for its SEND_ACK across reconnects (default 60; null = forever). */
  sendTimeoutS?: number | null;
  /** When true, a message is acknowledged only by `message.ack()`; default false: acknowledged once the "message" listeners have run. */
  explicitAck?: boolean;
  /** The WebSocket constructor to use (default globalThis.WebSocket). */
  WebSocket?: unknown;
}

export interface SendOptions {
  /** Content type: 1 text (default for strings), 2 JSON, 3 binary (default for bytes); 4 (EVENT) is refused. */
  contentType?: number;
  /** Metadata pairs (values UTF-8 encoded when strings). */
  metadata?: Record<string, string | Uint8Array>;
  /** The members of a conversation this SEND creates (metadata "kefu.to", spec 4.10); ignored for an existing one. */
  to?: string[];
  /** A 16-byte id; by default a random one. A repeat with the same id gets the original receipt. */
  clientMsgId?: Uint8Array;
}

/** The server's receipt for a durable message (SEND_ACK). */
export interface SendReceipt {
  clientMsgId: Uint8Array;
  conversationId: bigint;
  seq: bigint;
  serverMsgId: bigint;
  /** Milliseconds since the epoch, server time of storage. */
  timestampMs: number;
  /** The server had stored it already (a retry). */
  duplicate: boolean;
}

/** A delivered message (DELIVER). */
export interface Message {
  conversationId: bigint;
  seq: bigint;
  sender: string;
  body: Uint8Array;
  /** The body as UTF-8 text. */
  readonly text: string;
  contentType: number;
  clientMsgId: Uint8Array;
  serverMsgId: bigint;
  /** Milliseconds since the epoch (server time of storage); also as `sentAt`. */
  timestampMs: number;
  readonly sentAt: Date;
  metadata: Record<string, Uint8Array>;
  /** May have been delivered before (retry, SYNC). */
  redelivery: boolean;
  /** Content type EVENT from the sender "#kefu": a system event (spec 13.2); `event` is its parsed JSON body. */
  readonly isSystemEvent: boolean;
  readonly event: ({ event: string } & Record<string, unknown>) | null;
  /** Mark handled; queued into the next DELIVER_ACK. Idempotent. Needed only with `explicitAck`. */
  ack(): void;
}

export interface SyncOptions {
  conversationId: bigint | number;
  /** Messages with afterSeq < seq <= untilSeq (0 = the latest); limit 0 = the server's maximum. */
  afterSeq?: bigint | number;
  untilSeq?: bigint | number;
  limit?: number;
}

/** The end of a history fetch: the messages (in seq order) and whether the limit cut it short. */
export interface SyncResult {
  conversationId: bigint;
  messages: Message[];
  lastSeq: bigint;
  more: boolean;
}

/** The answer to a service request (RESULT with status OK). */
export interface Outcome {
  conversationId: bigint;
  seq: bigint;
  detail: Record<string, unknown>;
}

export interface OpenedConversation {
  conversationId: bigint;
  /** 1 waiting, 2 assigned, 3 transferred, 4 closed. */
  state: number;
  stateName: "waiting" | "assigned" | "transferred" | "closed" | string;
  group: string;
  agent: string;
  /** 1 = next in queue; 0 when assigned. */
  position: number;
}

export interface SearchMatch {
  conversationId: bigint;
  seq: bigint;
  timestampMs: number;
  snippet: string;
}

/** Events of `client.service.on("event", ...)`. */
export type ServiceEvent =
  | { kind: "queue"; conversationId: bigint; group: string; position: number; waiting: number }
  | { kind: "sentiment"; conversationId: bigint; seq: bigint; scorePermille: number; score: number }
  /** A system message (opened, queued, assigned, transferred, overflowed, closed, watching, draft...). Also delivered as a "message". */
  | { kind: "system"; name: string; conversationId: bigint; seq: bigint; staff: boolean; detail: Record<string, unknown>; message: Message };

export type AgentStatusName = "online" | "away" | "busy" | "offline";
export type DraftActionName = "approve" | "edit" | "reject";

export interface ServiceApi {
  setStatus(status: AgentStatusName, opts?: { timeoutS?: number }): Promise<Outcome>;
  open(opts?: {
    group?: string;
    attributes?: Record<string, string>;
    firstMessage?: string;
    customer?: string;
    clientRef?: Uint8Array;
    timeoutS?: number;
  }): Promise<OpenedConversation>;
  transfer(
    conversationId: bigint,
    opts: { agent?: string; group?: string; expectOwner?: string; note?: string; timeoutS?: number },
  ): Promise<Outcome>;
  end(conversationId: bigint, reason?: string, opts?: { timeoutS?: number }): Promise<Outcome>;
  watch(conversationId: bigint, on?: boolean, opts?: { timeoutS?: number }): Promise<Outcome>;
  decideDraft(
    conversationId: bigint,
    draftSeq: bigint | number,
    action: DraftActionName,
    editedText?: string,
    opts?: { timeoutS?: number },
  ): Promise<Outcome>;
  search(query: string, opts?: { limit?: number; timeoutS?: number }): Promise<SearchMatch[]>;
  /** The conversation's record (state, owner, participants, tags, routing trace) as RESULT's JSON detail.
   * In every JSON detail and system event, integers beyond 2^53 (u64 ids such as staff_channel) are bigints. */
  info(conversationId: bigint, opts?: { timeoutS?: number }): Promise<Record<string, unknown>>;
  on(type: "event", listener: (event: ServiceEvent) => void): () => void;
  off(type: "event", listener: (event: ServiceEvent) => void): void;
}

export interface ClientEvents {
  message: Message;
  /** Each completed handshake: `resumed` says whether a ticket was used. */
  connected: { suite: SuiteName; resumed: boolean };
  disconnected: { error: KefuError | null };
  /** Non-fatal trouble (a listener threw, a reconnect attempt failed...). */
  error: KefuError | Error;
  /** The client stopped for good (close(), or a refusal retrying cannot cure). */
  closed: { error: KefuError | null };
}

export class Client {
  constructor(options: ClientOptions);
  readonly options: Readonly<ClientOptions>;
  readonly service: ServiceApi;
  readonly connected: boolean;
  readonly suite: SuiteName | null;
  readonly resumed: boolean;
  /** Successful reconnects so far. */
  readonly reconnects: number;
  /**
   * The first connection: resolves once the server accepted the handshake. Rejects with a ConnectError subclass
   * (AuthFailed, ServerNotTrusted, NoCommonSuite, ServerBusy, ConnectTimeout); a refusal for load is retried after
   * the server's delay while connectTimeoutS allows. Called again later, it waits for the reconnect in progress.
   */
  connect(): Promise<void>;
  /**
   * Resolves once the message is durable; retried across reconnects with the same client_msg_id (and after a
   * backoff when RATE_LIMITED). Waits for room while 10,000 messages or 64 MiB are pending. Rejects with SendRefused,
   * SendTimeout, ClientClosed, CredentialsRefused; RangeError / TypeError for a request that cannot be sent at all
   * (conversation id 0 or beyond u64, a clientMsgId not of 16 bytes, more than the 1 MiB frame limit).
   */
  send(conversationId: bigint | number, body: string | Uint8Array, opts?: SendOptions): Promise<SendReceipt>;
  /**
   * A history fetch (SYNC's fetch form, spec 4.5): messages with afterSeq < seq <= untilSeq (untilSeq 0 = up to the
   * latest), at most `limit` (0 = the server's cap), returned in seq order, not emitted as "message" and not
   * acknowledged; `more` = the cap cut it short (ask again from lastSeq). Asked again after a reconnect.
   */
  sync(opts: SyncOptions): Promise<SyncResult>;
  on<K extends keyof ClientEvents>(type: K, listener: (value: ClientEvents[K]) => void): () => void;
  off<K extends keyof ClientEvents>(type: K, listener: (value: ClientEvents[K]) => void): void;
  /** CLOSE, flush acknowledgements, close the transport; pending sends fail with ClientClosed. */
  close(): Promise<void>;
}

/** base64url (or base64) text of 32 bytes -> bytes; throws on anything else. */
export function decodeSecret(secret: string | Uint8Array): Uint8Array;
/** A fresh random conversation id below 2^62 (not a service conversation). */
export function newConversationId(): bigint;
/** Staff channel of a service conversation: id | 2^63 (spec 13.2). */
export function staffChannel(conversationId: bigint): bigint;
export function isStaffChannel(conversationId: bigint): boolean;
/** A WebSocket transport factory (subprotocol kefu.v1, binary messages). */
export function webSocketTransport(url: string, WebSocketImpl?: unknown): TransportFactory;

export const ContentType: { readonly TEXT: 1; readonly JSON: 2; readonly BINARY: 3; readonly EVENT: 4 };
/** Wire error codes (spec/errors.toml), name -> number. */
export const ErrorCode: Readonly<Record<string, number>>;

/** Root of the client's errors; `code` is the wire error code when there is one. */
export class KefuError extends Error {
  code: number | null;
  codeName: string | null;
}
/** The peer broke the protocol, or a frame/record was malformed. */
export class ProtocolError extends KefuError {}
/** connect() failed. */
export class ConnectError extends KefuError {}
export class AuthFailed extends ConnectError {}
export class ServerNotTrusted extends ConnectError {}
export class NoCommonSuite extends ConnectError {}
export class ServerBusy extends ConnectError {}
export class ConnectTimeout extends ConnectError {}
export class ConnectionLost extends KefuError {}
export class CredentialsRefused extends ConnectionLost {}
export class ClientClosed extends KefuError {}
export class Timeout extends KefuError {}
export class SendTimeout extends Timeout {}
/** A request (SEND, service request, SYNC) refused by the server with `code`. */
export class RequestRefused extends KefuError {}
export class SendRefused extends RequestRefused {}
