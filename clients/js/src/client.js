// The kefu client (mirrors clients/python/client.py): send, receive, history, customer service, reconnect.
//
// Theory of operation:
// - A Client owns at most one live Link (link.js) at a time and survives the loss of any of them. What must outlive
//   a connection lives here: pending sends (by client_msg_id), per-conversation watermarks, history fetches in
//   progress and the latest resumption ticket.
// - When a connection's handshake completes, the client sends SYNC(conversation, handled, 0, 0) for every
//   conversation it knows, then SYNC(0, 0, 0, 0), re-issues fetches in progress, and puts every pending SEND on the
//   wire again with its original client_msg_id (the server stores each once and answers a repeat with the receipt).
// - A lost connection (or a GOAWAY) is reconnected after a backoff (GOAWAY's parameters once one came), with the
//   same suites every time and the latest ticket when there is one; it stops only on refusals retrying cannot cure
//   (AUTH_FAILED, NO_COMMON_SUITE, an unpinned server key). A session the server ends with AUTH_FAILED is reconnected
//   at once without the ticket; a refusal then ends the client with CredentialsRefused.
// - Stream DELIVERs are handled once per (conversation, seq): "message" listeners run, then (unless explicitAck) the
//   message is processed; the highest contiguous processed seq per conversation leaves in one DELIVER_ACK per write.
import { fromBase64Url, randomBytes, toHex, utf8 } from "./bytes.js";
import { SUITE_BY_NAME } from "./crypto.js";
import {
  AuthFailed, ClientClosed, ConnectError, ConnectTimeout, ConnectionLost, CredentialsRefused, ErrorCode, KefuError,
  NoCommonSuite, RequestRefused, SendRefused, SendTimeout, ServerBusy, ServerNotTrusted, codeName, connectError,
} from "./errors.js"; // prettier-ignore
import { ContentType, FrameType, MAX_BODY, PskMode, SERVICE_BASE, STAFF_BIT } from "./frames.js";
import { Link } from "./link.js";
import { Message, receiptOf } from "./message.js";
import { ServiceApi } from "./service.js";
import { webSocketTransport } from "./transport.js";

/** Messages submitted and not yet acknowledged (as the Python client): send() waits for room past either bound. */
export const MAX_PENDING_SENDS = 10_000;
export const MAX_PENDING_BYTES = 64 << 20;
/** Bytes of a SEND frame besides its body and metadata, with room to spare. */
const SEND_OVERHEAD = 64;
const RATE_LIMITED_FIRST_MS = 200;
const RATE_LIMITED_MAX_MS = 10_000;
/** Conversations whose watermarks are kept, least recently active forgotten first (it is then resumed from the
 * server's stored cursor by SYNC(0) instead of ours). */
export const MAX_TRACKED_CONVERSATIONS = 100_000;

/** The SEND frame of one send() call, checked here (TypeError / RangeError) before the server could refuse it. */
function buildSend(conversationId, body, opts) {
  const conversation = BigInt(conversationId);
  if (conversation <= 0n || conversation >= 1n << 64n) throw new RangeError("a conversation id is a nonzero u64");
  if (typeof body !== "string" && !(body instanceof Uint8Array)) throw new TypeError("body is a string or a Uint8Array");
  const metadata = Object.entries(opts.metadata ?? {}).map(([key, v]) => ({ key, value: typeof v === "string" ? utf8(v) : v }));
  if (opts.to?.length) metadata.push({ key: "kefu.to", value: utf8(opts.to.join(",")) }); // spec 4.10: the members
  const clientMsgId = opts.clientMsgId ?? randomBytes(16);
  if (!(clientMsgId instanceof Uint8Array) || clientMsgId.length !== 16) throw new TypeError("clientMsgId is 16 bytes");
  const frame = {
    type: FrameType.SEND,
    clientMsgId,
    conversationId: conversation,
    contentType: opts.contentType ?? (typeof body === "string" ? ContentType.TEXT : ContentType.BINARY),
    body: typeof body === "string" ? utf8(body) : body,
    metadata,
  };
  const size = frame.body.length + metadata.reduce((n, m) => n + utf8(m.key).length + m.value.length + 3, SEND_OVERHEAD);
  if (size > MAX_BODY) throw new RangeError(`a message of ${size} bytes exceeds the frame limit of ${MAX_BODY}`);
  return frame;
}

/** close() waits this long for the server's CLOSE before dropping the connection. */
export const CLOSE_TIMEOUT_MS = 2000;
export const DEFAULT_BACKOFF = Object.freeze({ initialMs: 500, maxMs: 30_000, jitter: 0.2 });
const U64_MAX = (1n << 64n) - 1n;

/** base64url (or base64) text of 32 bytes, or the bytes themselves -> 32 bytes. */
export function decodeSecret(secret) {
  const bytes = secret instanceof Uint8Array ? secret : fromBase64Url(String(secret));
  if (bytes.length !== 32) throw new TypeError("an app secret is 32 bytes (43 base64url characters)");
  return bytes;
}

/** A client key option {type: "sm2" | "ed25519", privateKey: 32 bytes} as the core takes it; every offered suite
 * must be of its type (spec 5.5: a national session is national end to end). */
function clientKeyOf(key, suites) {
  const keyType = { sm2: 1, ed25519: 2 }[key?.type];
  if (!keyType || !(key.privateKey instanceof Uint8Array) || key.privateKey.length !== 32) {
    throw new TypeError('clientKey is {type: "sm2" | "ed25519", privateKey: 32 bytes}');
  }
  const suite = keyType === 1 ? "national" : "international";
  if (suites.some((code) => SUITE_BY_NAME[suite].code !== code)) {
    throw new TypeError(`a ${key.type} client key authenticates in the ${suite} suite only: offer that suite alone`);
  }
  return { keyType, private: key.privateKey };
}

/** The server pins, checked: "sm2:" or "ed25519:" and 64 hex digits each (spec 5.8), at least one. */
function pinsOf(pins) {
  const out = [...(pins ?? [])].map((pin) => String(pin).trim().toLowerCase());
  if (!out.length) throw new TypeError("serverPins: at least one pin (from /config.json or kefu key show)");
  for (const pin of out) {
    if (!/^(sm2|ed25519):[0-9a-f]{64}$/.test(pin)) throw new TypeError(`not a server pin: ${pin}`);
  }
  return out;
}

/** A random conversation id below 2^62 (not a service conversation), never 0. */
export function newConversationId() {
  const b = randomBytes(8);
  b[0] &= 0x3f;
  const id = new DataView(b.buffer).getBigUint64(0);
  return id === 0n ? 1n : id;
}

export function staffChannel(conversationId) {
  return BigInt(conversationId) | STAFF_BIT;
}

export function isStaffChannel(conversationId) {
  return (BigInt(conversationId) & STAFF_BIT) !== 0n;
}

/** A delay that `cancel()` ends at once (so that a closed client leaves no timer behind). */
function delay(ms) {
  let timer;
  let done;
  const promise = new Promise((resolve) => {
    done = resolve;
    timer = setTimeout(resolve, ms);
  });
  promise.cancel = () => {
    clearTimeout(timer);
    done();
  };
  return promise;
}

export class Client {
  constructor(options) {
    if (!options || typeof options.appId !== "string" || !options.appId) throw new TypeError("appId is required");
    if (!options.url && !options.transport) throw new TypeError("url or transport is required");
    const suites = (options.suites ?? ["national"]).map((name) => {
      const suite = SUITE_BY_NAME[name];
      if (!suite) throw new TypeError(`unknown suite ${name}`);
      return suite.code;
    });
    this.options = Object.freeze({ ...options, appSecret: undefined, clientKey: undefined });
    this._secret = options.appSecret === undefined && options.clientKey ? null : decodeSecret(options.appSecret);
    this._clientKey = this._secret ? null : clientKeyOf(options.clientKey, suites);
    this._suites = suites;
    this._pins = pinsOf(options.serverPins);
    this._transport = options.transport ?? webSocketTransport(options.url, options.WebSocket);
    this._listeners = new Map();
    this._link = null;
    this._closed = false;
    this._ticket = null;
    this._backoff = { ...DEFAULT_BACKOFF, ...(options.backoff ?? {}) };
    this._reconnecting = false;
    this._reauthenticate = false;
    this._everConnected = false;
    this._pendingSends = new Map(); // hex client_msg_id -> entry
    this._pendingBytes = 0;
    this._roomWaiters = [];
    this._convs = new Map(); // conversationId -> {received, handled, unacked} (see _conv)
    this._acks = new Map(); // conversationId -> seq to acknowledge
    this._fetches = new Set();
    this.service = new ServiceApi(this);
    this.suite = null;
    this.resumed = false;
    this.reconnects = 0;
  }

  get connected() {
    return this._link !== null && this._link.usable;
  }

  // --- events -------------------------------------------------------------------------------------------------

  on(type, listener) {
    if (!this._listeners.has(type)) this._listeners.set(type, new Set());
    this._listeners.get(type).add(listener);
    return () => this.off(type, listener);
  }

  off(type, listener) {
    this._listeners.get(type)?.delete(listener);
  }

  _emit(type, value) {
    for (const listener of [...(this._listeners.get(type) ?? [])]) {
      try {
        listener(value);
      } catch (e) {
        if (type !== "error") this._emit("error", e);
      }
    }
  }

  // --- connecting ---------------------------------------------------------------------------------------------

  /** The first connection: resolves once the handshake is complete; rejects with a ConnectError. */
  async connect() {
    if (this._closed) throw new ClientClosed("the client is closed");
    if (this.connected) return;
    if (this._started) return this._nextConnected(); // a later call: wait for the reconnect in progress
    // The first connection is not retried, except after a refusal for load (ServerBusy, a GOAWAY at the handshake),
    // after the delay the server gives while connectTimeoutS allows (as the Python client).
    const deadline = Date.now() + (this.options.connectTimeoutS ?? 10) * 1000;
    for (;;) {
      try {
        await this._attemptConnect();
        this._started = true;
        return undefined;
      } catch (e) {
        const wait = e instanceof ServerBusy ? e.retryAfterMs || 0 : 0;
        if (!(e instanceof ServerBusy) || this._closed || Date.now() + wait >= deadline) throw e;
        this._sleeping = delay(wait);
        await this._sleeping;
        this._sleeping = null;
      }
    }
  }

  _nextConnected() {
    return new Promise((resolve, reject) => {
      const offs = [
        this.on("connected", () => (offs.forEach((off) => off()), resolve())),
        this.on("closed", ({ error }) => (offs.forEach((off) => off()), reject(error ?? new ClientClosed("the client is closed")))),
      ];
    });
  }

  async _attemptConnect() {
    const timeoutS = this.options.connectTimeoutS ?? 10;
    let timer;
    const timeout = new Promise((_, reject) => {
      timer = setTimeout(() => reject(new ConnectTimeout(`no handshake within ${timeoutS} s`)), timeoutS * 1000);
    });
    try {
      await Promise.race([this._open(), timeout]);
    } catch (e) {
      if (this._link && !this._link.ready) this._link.drop(); // e.g. the deadline passed mid-handshake
      throw e;
    } finally {
      clearTimeout(timer);
    }
  }

  async _open() {
    let transport;
    try {
      transport = await this._transport();
    } catch (e) {
      throw new ConnectError(`cannot connect: ${e.message ?? e}`, null);
    }
    if (this._closed) {
      transport.close();
      throw new ClientClosed("the client is closed");
    }
    const ticket = this._reauthenticate ? null : this._ticket;
    this._ticket = null; // a ticket is used once
    const config = {
      appId: this.options.appId,
      appSecret: this._secret,
      clientKey: this._clientKey,
      serverPins: this._pins,
      suites: this._suites,
      keepaliveMs: Math.round((this.options.keepaliveS ?? 30) * 1000),
      ticket,
      pskMode: PskMode.PSK_ONLY,
    };
    const link = new Link(this, transport, config);
    link.readyPromise = new Promise((resolve, reject) => {
      link.resolveReady = resolve;
      link.rejectReady = reject;
    });
    this._link = link;
    await link.start();
    await link.readyPromise;
  }

  // --- from the link ------------------------------------------------------------------------------------------

  linkEvent(link, event) {
    switch (event.type) {
      case "handshake":
        return this._onHandshake(link, event);
      case "ticket":
        this._accepted(link);
        this._ticket = event.ticket;
        return undefined;
      case "frame":
        this._accepted(link);
        return this._onFrame(link, event.frame);
      case "closed":
        return undefined;
      case "terminated":
        link.terminated = event;
        return undefined;
    }
    return undefined;
  }

  linkFailed(link, error) {
    link.terminated = { code: error.code ?? ErrorCode.INTERNAL_ERROR, reason: String(error.message ?? error) };
    this._emit("error", error);
  }

  /** Before each write: the acknowledgements queued since the last one, as one DELIVER_ACK. */
  linkFlushing(link) {
    if (!this._acks.size || !link.writable) return;
    const acks = [...this._acks].map(([conversationId, seq]) => ({ conversationId, seq }));
    this._acks.clear();
    for (let i = 0; i < acks.length; i += 4096) link.conn.send({ type: FrameType.DELIVER_ACK, acks: acks.slice(i, i + 4096) });
  }

  linkLost(link) {
    if (this._link === link) this._link = null;
    const t = link.terminated;
    if (!link.ready) {
      const error = t ? this._handshakeError(t) : new ConnectError("connection lost during the handshake", null);
      link.rejectReady?.(error);
      return;
    }
    for (const [, request] of link.requests) {
      if (request.kind === "service") request.reject(new ConnectionLost("connection lost before the answer"));
    }
    link.requests.clear();
    const error = t && t.code !== ErrorCode.OK ? new ConnectionLost(`${t.reason}`, t.code) : null;
    this._emit("disconnected", { error });
    if (this._closed) return;
    if (t?.code === ErrorCode.AUTH_FAILED) this._reauthenticate = true;
    if (this.options.reconnect === false) {
      this._finish(error ?? new ConnectionLost("connection lost"));
      return;
    }
    this._reconnectLoop(link.goaway ?? null);
  }

  _handshakeError(t) {
    if (t.goaway) {
      const error = connectError(t.goaway.code, t.goaway.reason);
      error.retryAfterMs = t.goaway.reconnectDelayMs;
      return error;
    }
    return connectError(t.code, t.reason);
  }

  async _reconnectLoop(goaway) {
    if (this._reconnecting) return;
    this._reconnecting = true;
    let wait = goaway ? goaway.reconnectDelayMs : this._reauthenticate ? 0 : this._backoff.initialMs;
    if (goaway) {
      this._backoff = { initialMs: goaway.backoffInitialMs || 500, maxMs: goaway.backoffMaxMs || 30_000,
        jitter: goaway.jitterPermille / 1000 }; // prettier-ignore
    }
    try {
      while (!this._closed) {
        const jitter = 1 + this._backoff.jitter * (2 * Math.random() - 1);
        this._sleeping = delay(wait * jitter);
        await this._sleeping;
        this._sleeping = null;
        if (this._closed) return;
        try {
          await this._attemptConnect();
          return;
        } catch (e) {
          if (e instanceof AuthFailed && this._reauthenticate) {
            this._finish(new CredentialsRefused(e.message, e.code));
            return;
          }
          if (e instanceof AuthFailed || e instanceof NoCommonSuite || e instanceof ServerNotTrusted) {
            this._finish(e);
            return;
          }
          this._emit("error", e);
          wait = e.retryAfterMs || Math.min(this._backoff.maxMs, Math.max(wait * 2, this._backoff.initialMs));
        }
      }
    } finally {
      this._reconnecting = false;
    }
  }

  /** Our side of the handshake is done: resume, re-send and re-ask at once (the server discards it all if it
   * refuses our proof); the connection counts as made at the server's first frame (the SYNC_DONE of SYNC(0) at the
   * latest), as in the Python client. */
  _onHandshake(link, event) {
    link.completed = event;
    for (const [conversationId, conv] of this._convs) {
      conv.received = conv.handled; // what was handed out and not processed comes again
      conv.unacked.clear();
      link.conn.send({ type: FrameType.SYNC, requestId: link.newRequestId(), conversationId, afterSeq: conv.handled,
        untilSeq: 0n, limit: 0 }); // prettier-ignore
    }
    link.conn.send({ type: FrameType.SYNC, requestId: link.newRequestId(), conversationId: 0n, afterSeq: 0n,
      untilSeq: 0n, limit: 0 }); // prettier-ignore
    for (const fetch of this._fetches) this._issueFetch(link, fetch);
    for (const entry of this._pendingSends.values()) this._putSend(link, entry);
  }

  _accepted(link) {
    if (link.ready || !link.completed) return;
    link.ready = true;
    this._reauthenticate = false;
    this.suite = link.completed.suite === 0x00c6 ? "national" : "international";
    this.resumed = link.completed.resumed;
    if (this._everConnected) this.reconnects += 1;
    this._everConnected = true;
    link.resolveReady?.();
    this._emit("connected", { suite: this.suite, resumed: this.resumed });
  }

  _onFrame(link, frame) {
    switch (frame.type) {
      case FrameType.DELIVER:
        return this._onDeliver(link, frame);
      case FrameType.SEND_ACK:
        return this._onSendAck(link, frame);
      case FrameType.SYNC_DONE:
        return this._onSyncDone(link, frame);
      case FrameType.ERROR:
        return this._onRequestError(link, frame);
      case FrameType.GOAWAY:
        link.goaway = frame;
        link.close();
        return undefined;
      case FrameType.PONG:
        return undefined;
      default:
        return this.service.onFrame(link, frame);
    }
  }

  // --- delivery -----------------------------------------------------------------------------------------------

  /**
   * Per conversation, as the Python client's inbox: `received` (the highest seq handed to the app), `handled` (what
   * may be acknowledged) and `unacked` (seqs handed out and not yet processed). `handled` is just below the lowest
   * unacked seq, or `received` when none is left: seqs the app never saw (its own messages, which the server does
   * not send back to their sender) count as handled.
   */
  _conv(conversationId) {
    let conv = this._convs.get(conversationId);
    if (conv) {
      this._convs.delete(conversationId); // most recently active last
    } else {
      conv = { received: 0n, handled: 0n, unacked: new Set() };
      if (this._convs.size >= MAX_TRACKED_CONVERSATIONS) this._convs.delete(this._convs.keys().next().value);
    }
    this._convs.set(conversationId, conv);
    return conv;
  }

  _onDeliver(link, frame) {
    const fetch = frame.requestId ? link.requests.get(frame.requestId) : null;
    if (fetch && fetch.kind === "fetch") {
      fetch.fetch.messages.push(new Message(frame, null));
      return;
    }
    const conv = this._conv(frame.conversationId);
    if (frame.seq <= conv.received) {
      // A duplicate (a retry, a resumed stream): never shown twice; acknowledged again if already handled.
      if (frame.seq <= conv.handled) this._queueAck(frame.conversationId, conv.handled);
      return;
    }
    conv.received = frame.seq;
    conv.unacked.add(frame.seq);
    const message = new Message(frame, (m) => this._processed(m));
    this._emit("message", message);
    if (message.isSystemEvent) this.service.onSystemMessage(message);
    if (!this.options.explicitAck) this._processed(message);
  }

  _processed(message) {
    const conv = this._convs.get(message.conversationId);
    if (!conv || !conv.unacked.delete(message.seq)) return;
    let handled = conv.received;
    for (const seq of conv.unacked) if (seq - 1n < handled) handled = seq - 1n;
    if (handled > conv.handled) {
      conv.handled = handled;
      this._queueAck(message.conversationId, handled);
    }
  }

  _queueAck(conversationId, seq) {
    if (seq <= 0n) return;
    this._acks.set(conversationId, seq);
    this._link?.scheduleFlush();
  }

  // --- sending ------------------------------------------------------------------------------------------------

  /** Resolves with the receipt once the message is durable; retried across reconnects with the same id. */
  async send(conversationId, body, opts = {}) {
    if (this._closed) throw new ClientClosed("the client is closed");
    const frame = buildSend(conversationId, body, opts);
    const size = frame.body.length + frame.metadata.reduce((n, m) => n + m.key.length + m.value.length + 3, SEND_OVERHEAD);
    while (this._pendingSends.size && (this._pendingSends.size >= MAX_PENDING_SENDS || this._pendingBytes + size > MAX_PENDING_BYTES)) {
      await new Promise((resolve) => this._roomWaiters.push(resolve)); // backpressure: wait for a SEND_ACK
      if (this._closed) throw new ClientClosed("the client is closed");
    }
    const key = toHex(frame.clientMsgId);
    if (this._pendingSends.has(key)) throw new TypeError("a send with this clientMsgId is already pending");
    return new Promise((resolve, reject) => {
      const entry = { key, frame, size, resolve, reject, timer: null, retry: null, backoffMs: 0 };
      const timeoutS = this.options.sendTimeoutS === undefined ? 60 : this.options.sendTimeoutS;
      if (timeoutS !== null) {
        entry.timer = setTimeout(() => this._settleSend(entry, new SendTimeout(`no SEND_ACK within ${timeoutS} s`)), timeoutS * 1000);
      }
      this._pendingSends.set(key, entry);
      this._pendingBytes += size;
      if (this._link?.writable) this._putSend(this._link, entry);
    });
  }

  _putSend(link, entry) {
    const requestId = link.newRequestId();
    link.requests.set(requestId, { kind: "send", key: entry.key });
    link.send({ ...entry.frame, requestId });
  }

  /** The end of a pending send: its receipt, or its error. */
  _settleSend(entry, error, receipt = null) {
    if (this._pendingSends.get(entry.key) !== entry) return;
    this._pendingSends.delete(entry.key);
    this._pendingBytes -= entry.size;
    clearTimeout(entry.timer);
    clearTimeout(entry.retry);
    if (error) entry.reject(error);
    else entry.resolve(receipt);
    for (const wake of this._roomWaiters.splice(0)) wake();
  }

  /** A SEND refused with `code`: RATE_LIMITED is retried after a backoff, SHUTTING_DOWN on the next connection
   * (spec 4.10 item 10), anything else fails the send. */
  _sendRefused(entry, code, reason) {
    if (code === ErrorCode.SHUTTING_DOWN) return;
    if (code === ErrorCode.RATE_LIMITED) {
      entry.backoffMs = Math.min(RATE_LIMITED_MAX_MS, entry.backoffMs ? entry.backoffMs * 2 : RATE_LIMITED_FIRST_MS);
      entry.retry = setTimeout(() => {
        entry.retry = null;
        if (this._pendingSends.get(entry.key) === entry && this._link?.writable) this._putSend(this._link, entry);
      }, entry.backoffMs * (0.8 + 0.4 * Math.random()));
      return;
    }
    this._settleSend(entry, new SendRefused(reason || `SEND refused (${codeName(code) ?? code})`, code));
  }

  _onSendAck(link, ack) {
    link.requests.delete(ack.requestId);
    const entry = this._pendingSends.get(toHex(ack.clientMsgId));
    if (!entry) return;
    if (ack.status !== ErrorCode.OK) this._sendRefused(entry, ack.status, "");
    else this._settleSend(entry, null, receiptOf(ack)); // the message itself comes back to other members only
  }

  _onRequestError(link, error) {
    const request = link.requests.get(error.requestId);
    if (!request) {
      this._emit("error", new RequestRefused(error.reason, error.code));
      return;
    }
    link.requests.delete(error.requestId);
    if (request.kind === "send") {
      const entry = this._pendingSends.get(request.key);
      if (entry) this._sendRefused(entry, error.code, error.reason);
    } else if (request.kind === "fetch") {
      this._fetches.delete(request.fetch);
      request.fetch.reject(new RequestRefused(error.reason, error.code));
    } else if (request.kind === "service") {
      request.reject(new RequestRefused(error.reason, error.code));
    }
  }

  // --- history ------------------------------------------------------------------------------------------------

  /** A history fetch (section 4.5's fetch form): messages with afterSeq < seq <= untilSeq (0: the latest). */
  sync({ conversationId, afterSeq = 0n, untilSeq = 0n, limit = 0 }) {
    if (this._closed) return Promise.reject(new ClientClosed("the client is closed"));
    return new Promise((resolve, reject) => {
      const fetch = {
        conversationId: BigInt(conversationId),
        afterSeq: BigInt(afterSeq),
        untilSeq: BigInt(untilSeq) || U64_MAX,
        limit,
        messages: [],
        resolve,
        reject,
      };
      this._fetches.add(fetch);
      if (this._link?.writable) {
        this._issueFetch(this._link, fetch);
        this._link.scheduleFlush();
      }
    });
  }

  _issueFetch(link, fetch) {
    fetch.messages = [];
    const requestId = link.newRequestId();
    link.requests.set(requestId, { kind: "fetch", fetch });
    link.conn.send({ type: FrameType.SYNC, requestId, conversationId: fetch.conversationId, afterSeq: fetch.afterSeq,
      untilSeq: fetch.untilSeq, limit: fetch.limit }); // prettier-ignore
  }

  _onSyncDone(link, done) {
    const request = link.requests.get(done.requestId);
    if (!request || request.kind !== "fetch") return;
    link.requests.delete(done.requestId);
    this._fetches.delete(request.fetch);
    const { fetch } = request;
    fetch.resolve({ conversationId: done.conversationId, messages: fetch.messages, lastSeq: done.lastSeq, more: Boolean(done.more) });
  }

  // --- closing ------------------------------------------------------------------------------------------------

  /** CLOSE, flush acknowledgements, close the transport; pending sends and requests fail with ClientClosed. */
  async close() {
    if (this._closed) return;
    this._closed = true;
    this._sleeping?.cancel();
    const link = this._link;
    if (link && link.writable) {
      const settle = delay(CLOSE_TIMEOUT_MS);
      await Promise.race([link.chain, settle]); // what is being received now is handled (and acknowledged) first
      settle.cancel();
      this.linkFlushing(link); // the acknowledgements queued go before CLOSE, which ends what we may send
      link.close(); // then wait briefly for the server's CLOSE
      const wait = delay(CLOSE_TIMEOUT_MS);
      await Promise.race([link.gone, wait]);
      wait.cancel();
    }
    link?.drop();
    this._finish(null);
  }

  _finish(error) {
    this._closed = true;
    const failure = error ?? new ClientClosed("the client is closed");
    for (const entry of [...this._pendingSends.values()]) this._settleSend(entry, failure);
    for (const wake of this._roomWaiters.splice(0)) wake();
    for (const fetch of this._fetches) fetch.reject(failure);
    this._fetches.clear();
    this.service.fail(failure);
    this._link?.drop();
    this._emit("closed", { error });
  }
}

export { SERVICE_BASE, KefuError };
