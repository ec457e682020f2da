// The client role of the kefu connection (spec/PROTOCOL.md sections 5 and 7): a sans-IO core.
//
// Theory of operation: the core does no I/O and reads no clock. The adapter feeds received bytes with
// `receiveData(bytes, {now})` (an empty array = end of stream), takes what the core has to say with
// `eventsReceived()`, writes `await dataToSend()`, arms `getTimer()` and calls `handleTimer(now)`. Because WebCrypto
// is asynchronous, `connect`, `receiveData` and `dataToSend` return promises; the adapter must not start one
// `receiveData` before the previous one settled (client.js runs them one after another). Frames given to `send()`
// are queued as plaintext and sealed by `dataToSend()` under the key that was current when they were queued, so a
// key switch in between (CLIENT_FINISHED under c_hs, then application frames under c_ap) is kept.
//
// Events are plain objects: {type: "handshake", suite, resumed, appId, keepaliveMs, serverKey, clientKey},
// {type: "ticket", ticket}, {type: "frame", frame} (SEND_ACK, DELIVER, SYNC_DONE, PONG, GOAWAY, a non-fatal ERROR,
// the service answers and pushes), {type: "closed", code, reason} (a clean CLOSE), and
// {type: "terminated", code, reason, byPeer, goaway} (the connection failed; `goaway` for a plaintext refusal).
import { concat, constantTimeEqual, randomBytes, uint, utf8, xor } from "./bytes.js";
import { KEY_TYPE_SM2, SUITES, signatureMessage, sm2Sign } from "./crypto.js";
import { ErrorCode, LocalProtocolError, ProtocolError, codeName, isFatal } from "./errors.js";
import { AuthMode, FrameType, HEADER_LEN, IGNORABLE_TYPE_MIN, MAX_RECORD_PLAINTEXT, PskMode } from "./frames.js";
import { HASH_LEN, KeySchedule, appClientKey } from "./keyschedule.js";
import { RecordLayer } from "./records.js";
import { FRAME_NAMES, FrameDecoder, decodeBody, encode, isKnownType } from "./wire.js";

export const State = Object.freeze({
  START: "START",
  WAIT_SERVER_HELLO: "WAIT_SERVER_HELLO",
  WAIT_SERVER_FINISHED: "WAIT_SERVER_FINISHED",
  CONNECTED: "CONNECTED",
  CLOSING: "CLOSING",
  CLOSED: "CLOSED",
});

export const MIN_KEEPALIVE_MS = 5_000;
export const MAX_KEEPALIVE_MS = 300_000;
/** Section 7.3: the client's handshake deadline. */
export const HANDSHAKE_TIMEOUT_S = 10;
/** Section 5.6. */
export const MAX_TICKET_LIFETIME_S = 86_400;
/** Keepalive checks per interval (section 7.3, as the reference implementation). */
export const KEEPALIVE_TICKS = 4;

const SERVER_SIGNATURE_CONTEXT = "kefu v1, server signature";
const CLIENT_SIGNATURE_CONTEXT = "kefu v1, client signature";

/** Frames a CONNECTED (or CLOSING) client accepts inside records (section 7.2, 13). */
const CONNECTED_ACCEPTS = new Set([
  FrameType.SEND_ACK, FrameType.DELIVER, FrameType.SYNC_DONE, FrameType.PING, FrameType.PONG, FrameType.ERROR,
  FrameType.GOAWAY, FrameType.CLOSE, FrameType.NEW_TICKET, FrameType.KEY_UPDATE, FrameType.OPENED,
  FrameType.SEARCH_RESULT, FrameType.QUEUE_POSITION, FrameType.SENTIMENT, FrameType.RESULT,
]); // prettier-ignore
/** Frames the application may send (KEY_UPDATE is the core's own). */
const CLIENT_SENDS = new Set([
  FrameType.SEND, FrameType.DELIVER_ACK, FrameType.SYNC, FrameType.PING, FrameType.PONG, FrameType.ERROR,
  FrameType.CLOSE, FrameType.AGENT_STATUS, FrameType.OPEN_CONVERSATION, FrameType.TRANSFER,
  FrameType.END_CONVERSATION, FrameType.WATCH, FrameType.DRAFT_DECISION, FrameType.SEARCH,
  FrameType.CONVERSATION_INFO,
]); // prettier-ignore
const KEY_CHANGING = new Set([FrameType.SERVER_FINISHED, FrameType.CLIENT_FINISHED, FrameType.KEY_UPDATE]);

function unexpected(state, type) {
  const name = FRAME_NAMES[type] ?? `0x${type.toString(16)}`;
  return new ProtocolError(`client in ${state} cannot take ${name}`, ErrorCode.UNEXPECTED_FRAME);
}

/** Whole frames packed into as few record plaintexts as fit MAX_RECORD_PLAINTEXT (a frame is never split). */
function recordPlaintexts(frames) {
  const out = [];
  let batch = [];
  let size = 0;
  for (const frame of frames) {
    if (size + frame.length > MAX_RECORD_PLAINTEXT && batch.length) {
      out.push(concat(...batch));
      batch = [];
      size = 0;
    }
    batch.push(frame);
    size += frame.length;
  }
  if (batch.length) out.push(concat(...batch));
  return out;
}

function prefix16(bytes) {
  return concat(uint(bytes.length, 2), bytes);
}

/**
 * config: {appId, appSecret?: Uint8Array(32), clientKey?: {keyType: 1|2, private: Uint8Array(32)},
 *          serverPins: Iterable<string>, suites: number[] (codes, preference order), keepaliveMs,
 *          ticket?: {suite, ticket, psk, lifetimeS, ageAdd, receivedAt}, pskMode?: 1|2,
 *          fixed?: {random, shares: {[suite]: privateBytes}, sm2K}}   (fixed: the vectors' randoms only)
 */
export class ClientConnection {
  constructor(config, { now }) {
    if (!config.suites?.length) throw new LocalProtocolError("a client must offer at least one suite");
    if (!config.appSecret && !config.clientKey) {
      throw new LocalProtocolError("a client needs an app secret or a client key (tickets can be refused)");
    }
    this.config = config;
    this.pins = new Set(config.serverPins ?? []);
    this.state = State.START;
    this.suite = null;
    this.resumed = false;
    this.keepaliveMs = config.keepaliveMs ?? 30_000;
    this.startedAt = now;
    this.decoder = new FrameDecoder();
    this.events = [];
    this.out = []; // [{plain: bytes}] or [{layer, frames: [bytes]}]
    this.send_ = null; // RecordLayer
    this.recv = null;
    this.shares = new Map();
    this.ticket = null;
    this.chBytes = null;
    this.transcript = [];
    this.schedule = null;
    this.resumption = null;
    this.ticks = null; // keepalive tick state once connected
  }

  // --- the five verbs -------------------------------------------------------------------------------------

  /** Queue CLIENT_HELLO: one key share per offered suite, and a binder when resuming. */
  async connect({ now }) {
    if (this.state !== State.START) throw new LocalProtocolError("connect() once, from the start state");
    const { config } = this;
    const fixed = config.fixed ?? null;
    for (const code of config.suites) {
      const suite = SUITES[code];
      if (!suite) throw new LocalProtocolError(`unknown suite ${code}`);
      this.shares.set(code, await suite.keyShare(fixed?.shares?.[code] ?? null));
    }
    let ticket = config.ticket ?? null;
    if (ticket && (!config.suites.includes(ticket.suite) || now - ticket.receivedAt >= ticket.lifetimeS)) ticket = null;
    this.ticket = ticket;
    const pskMode = ticket ? (config.pskMode ?? PskMode.PSK_ONLY) : PskMode.NONE;
    this.pskMode = pskMode;
    const hello = {
      type: FrameType.CLIENT_HELLO,
      random: fixed?.random ?? randomBytes(32),
      suites: [...config.suites],
      keyShares: config.suites.map((code) => ({ suite: code, key: this.shares.get(code).publicKey })),
      keepaliveMs: this.keepaliveMs,
      pskMode,
      ticket: ticket ? ticket.ticket : new Uint8Array(0),
      obfuscatedAge: ticket ? (Math.floor((now - ticket.receivedAt) * 1000) + ticket.ageAdd) % 2 ** 32 : 0,
      binder: ticket ? new Uint8Array(HASH_LEN) : new Uint8Array(0),
    };
    if (ticket) hello.binder = await this.binder(ticket, encode(hello));
    this.chBytes = encode(hello);
    this.out.push({ plain: this.chBytes });
    this.state = State.WAIT_SERVER_HELLO;
  }

  async binder(ticket, encodedWithPlaceholder) {
    const suite = SUITES[ticket.suite];
    const covered = encodedWithPlaceholder.subarray(HEADER_LEN, encodedWithPlaceholder.length - (1 + HASH_LEN));
    const schedule = await new KeySchedule(suite).init(ticket.psk);
    return suite.hmac(await schedule.binderKey(), await suite.hash(covered));
  }

  /** Feed bytes received; an empty array is the end of the stream. */
  async receiveData(data, { now }) {
    if (this.state === State.CLOSED) return;
    if (this.ticks) this.ticks.received = true;
    if (data.length === 0) return this.endOfStream();
    try {
      for (const raw of this.decoder.feed(data)) {
        if (this.state === State.CLOSED) return;
        if (raw.type === FrameType.RECORD) await this.onRecord(raw, now);
        else await this.onPlaintext(raw);
      }
    } catch (e) {
      if (!(e instanceof ProtocolError) || e instanceof LocalProtocolError) throw e;
      this.fail(e.code ?? ErrorCode.INTERNAL_ERROR, e.message);
    }
  }

  eventsReceived() {
    const out = this.events;
    this.events = [];
    return out;
  }

  /** Everything queued, sealed: bytes to write (possibly empty). */
  async dataToSend() {
    const segments = this.out;
    this.out = [];
    const parts = [];
    for (const seg of segments) {
      if (seg.plain) {
        parts.push(seg.plain);
        continue;
      }
      for (const plaintext of recordPlaintexts(seg.frames)) {
        if (seg.layer.needsUpdate(plaintext.length)) {
          // Section 6.4: a KEY_UPDATE record under the current key first, then the next key.
          parts.push(await seg.layer.seal(encode({ type: FrameType.KEY_UPDATE, updateRequested: 0 })));
          await seg.layer.update();
        }
        parts.push(await seg.layer.seal(plaintext));
      }
      if (seg.after) await seg.after();
    }
    if (parts.length && this.ticks) this.ticks.sent = true;
    return parts.length === 1 ? parts[0] : concat(...parts); // one record (the usual flush): no copy
  }

  /** When handleTimer should next be called (seconds, the same clock as `now`), or null. */
  getTimer() {
    if (this.state === State.WAIT_SERVER_HELLO || this.state === State.WAIT_SERVER_FINISHED) {
      return this.startedAt + HANDSHAKE_TIMEOUT_S;
    }
    if ((this.state === State.CONNECTED || this.state === State.CLOSING) && this.ticks) return this.ticks.next;
    return null;
  }

  handleTimer(now) {
    if (this.state === State.WAIT_SERVER_HELLO || this.state === State.WAIT_SERVER_FINISHED) {
      if (now >= this.startedAt + HANDSHAKE_TIMEOUT_S) this.fail(ErrorCode.HANDSHAKE_TIMEOUT, "handshake timed out");
      return;
    }
    const t = this.ticks;
    if (!t || now < t.next || (this.state !== State.CONNECTED && this.state !== State.CLOSING)) return;
    const interval = this.keepaliveMs / 1000 / KEEPALIVE_TICKS;
    t.next = now + interval;
    t.idleRecv = t.received ? 0 : t.idleRecv + 1;
    t.idleSend = t.sent ? 0 : t.idleSend + 1;
    t.received = false;
    t.sent = false;
    if (t.idleRecv >= KEEPALIVE_TICKS * 1.5) {
      this.fail(ErrorCode.KEEPALIVE_TIMEOUT, "nothing received from the server");
      return;
    }
    if (this.state === State.CONNECTED && t.idleSend >= KEEPALIVE_TICKS - 1) {
      this.queueFrame({ type: FrameType.PING, opaque: BigInt(Math.floor(now * 1000)) });
      t.idleSend = 0;
    }
  }

  // --- local actions ----------------------------------------------------------------------------------------

  /** Queue an application frame (CONNECTED only). */
  send(frame) {
    if (this.state !== State.CONNECTED) throw new LocalProtocolError(`cannot send in ${this.state}`);
    if (!CLIENT_SENDS.has(frame.type)) throw new LocalProtocolError(`a client does not send ${FRAME_NAMES[frame.type]}`);
    if (frame.type === FrameType.CLOSE) return this.close(frame.code, frame.reason);
    this.queueFrame(frame);
  }

  /** Clean close: CLOSE and CLOSING when connected; during the handshake just CLOSED. */
  close(code = ErrorCode.OK, reason = "") {
    if (this.state === State.CONNECTED) {
      this.queueFrame({ type: FrameType.CLOSE, code, reason });
      this.state = State.CLOSING;
    } else if (this.state !== State.CLOSING && this.state !== State.CLOSED) {
      this.state = State.CLOSED;
    }
  }

  get sendLayer() {
    return this.send_;
  }
  get recvLayer() {
    return this.recv;
  }
  get resumptionSecret() {
    return this.resumption;
  }

  // --- internals --------------------------------------------------------------------------------------------

  queueFrame(frame) {
    this.queueEncoded(encode(frame));
  }

  queueEncoded(bytes) {
    const last = this.out[this.out.length - 1];
    if (last && last.layer === this.send_ && !last.plain && !last.after) last.frames.push(bytes);
    else this.out.push({ layer: this.send_, frames: [bytes] });
  }

  fail(code, reason) {
    if (this.state === State.CLOSED) return;
    const error = encode({ type: FrameType.ERROR, code, reason: reason.slice(0, 200) });
    if (this.send_ && this.state !== State.CLOSING) this.queueEncoded(error);
    else if (!this.send_) this.out.push({ plain: error });
    this.state = State.CLOSED;
    this.events.push({ type: "terminated", code, reason, byPeer: false, goaway: null });
  }

  endOfStream() {
    if (this.state === State.CLOSING) {
      this.state = State.CLOSED;
      this.events.push({ type: "closed", code: ErrorCode.OK, reason: "end of stream" });
      return;
    }
    this.state = State.CLOSED;
    this.events.push({ type: "terminated", code: ErrorCode.TRUNCATED, reason: "connection ended", byPeer: true, goaway: null });
  }

  async onPlaintext(raw) {
    const { state } = this;
    const type = raw.type;
    if (type === FrameType.SERVER_HELLO && state === State.WAIT_SERVER_HELLO) {
      return this.onServerHello(decodeBody(type, raw.body, raw.flags, raw.requestId), raw.bytes);
    }
    if (type === FrameType.GOAWAY && state === State.WAIT_SERVER_HELLO) {
      const goaway = decodeBody(type, raw.body, raw.flags, raw.requestId);
      this.state = State.CLOSED;
      this.events.push({ type: "terminated", code: goaway.code, reason: goaway.reason, byPeer: true, goaway });
      return undefined;
    }
    if (type === FrameType.ERROR && state !== State.CONNECTED && state !== State.CLOSING) {
      return this.onError(decodeBody(type, raw.body, raw.flags, raw.requestId), true);
    }
    throw unexpected(`${state} (plaintext)`, type);
  }

  async onRecord(raw, now) {
    if (!this.recv) throw unexpected(this.state, FrameType.RECORD);
    const plaintext = await this.recv.open(raw.bytes.subarray(0, HEADER_LEN), raw.body);
    if (plaintext.length === 0) throw new ProtocolError("empty record", ErrorCode.RECORD_FRAGMENT);
    const inner = new FrameDecoder();
    const frames = inner.feed(plaintext);
    if (inner.pending) throw new ProtocolError("record ends inside a frame", ErrorCode.RECORD_FRAGMENT);
    for (let i = 0; i < frames.length; i++) {
      if (frames[i].type === FrameType.RECORD) throw new ProtocolError("RECORD in a record", ErrorCode.RECORD_FRAGMENT);
      if (KEY_CHANGING.has(frames[i].type) && i !== frames.length - 1) {
        throw new ProtocolError(`${FRAME_NAMES[frames[i].type]} is not last in its record`, ErrorCode.UNEXPECTED_FRAME);
      }
    }
    for (const f of frames) {
      if (this.state === State.CLOSED) return;
      await this.onInner(f, now);
    }
  }

  async onInner(raw, now) {
    const { state } = this;
    const { type } = raw;
    if (type >= IGNORABLE_TYPE_MIN && !isKnownType(type)) return undefined; // section 3.4: skipped
    if (state === State.WAIT_SERVER_FINISHED) {
      if (type === FrameType.SERVER_FINISHED) return this.onServerFinished(decodeBody(type, raw.body), raw.bytes);
      if (type === FrameType.ERROR) return this.onError(decodeBody(type, raw.body, raw.flags, raw.requestId), false);
      throw unexpected(state, type);
    }
    if ((state !== State.CONNECTED && state !== State.CLOSING) || !CONNECTED_ACCEPTS.has(type)) {
      throw unexpected(state, type);
    }
    const frame = decodeBody(type, raw.body, raw.flags, raw.requestId);
    switch (type) {
      case FrameType.PING:
        if (state === State.CONNECTED) this.queueFrame({ type: FrameType.PONG, opaque: frame.opaque });
        return undefined;
      case FrameType.ERROR:
        return this.onError(frame, false);
      case FrameType.CLOSE:
        if (state === State.CONNECTED) this.queueFrame({ type: FrameType.CLOSE, code: ErrorCode.OK, reason: "" });
        this.state = State.CLOSED;
        this.events.push({ type: "closed", code: frame.code, reason: frame.reason });
        return undefined;
      case FrameType.NEW_TICKET:
        return this.onNewTicket(frame, now);
      case FrameType.KEY_UPDATE:
        await this.recv.update();
        if (frame.updateRequested && state === State.CONNECTED) this.updateSendKey();
        return undefined;
      default:
        this.events.push({ type: "frame", frame });
        return undefined;
    }
  }

  /** Queue KEY_UPDATE(0) under the current key and move the sending key once it is sealed. */
  updateSendKey() {
    this.queueFrame({ type: FrameType.KEY_UPDATE, updateRequested: 0 });
    const layer = this.send_;
    this.out[this.out.length - 1].after = () => layer.update();
  }

  onError(frame, plaintext) {
    const fatal = plaintext || this.state !== State.CONNECTED && this.state !== State.CLOSING || isFatal(frame.code);
    if (!fatal) {
      this.events.push({ type: "frame", frame });
      return;
    }
    this.state = State.CLOSED;
    const code = codeName(frame.code) === null && isFatal(frame.code) ? ErrorCode.INTERNAL_ERROR : frame.code;
    this.events.push({ type: "terminated", code, reason: frame.reason, byPeer: true, goaway: null });
  }

  async transcriptHash(...extra) {
    return this.suite.hash(concat(...this.transcript, ...extra));
  }

  async onServerHello(hello, encoded) {
    if (!this.shares.has(hello.suite)) {
      throw new ProtocolError(`server chose unoffered suite ${hello.suite}`, ErrorCode.DOWNGRADE_DETECTED);
    }
    this.suiteCode = hello.suite;
    this.suite = SUITES[hello.suite];
    let psk = null;
    if (hello.pskAccepted) {
      const ticket = this.ticket;
      if (!ticket || ticket.suite !== hello.suite) {
        throw new ProtocolError("server accepted a ticket we did not offer", ErrorCode.HANDSHAKE_FAILURE);
      }
      if ((this.pskMode === PskMode.PSK_WITH_ECDHE) !== hello.keyShare.length > 0) {
        throw new ProtocolError("key share does not match the PSK mode", ErrorCode.BAD_KEY_SHARE);
      }
      psk = ticket.psk;
    }
    let shared = null;
    if (hello.keyShare.length || psk === null) {
      if (!hello.keyShare.length) throw new ProtocolError("full handshake without a key share", ErrorCode.BAD_KEY_SHARE);
      shared = await this.shares.get(hello.suite).agree(hello.keyShare);
    }
    this.transcript = [this.chBytes, encoded];
    this.resumed = psk !== null;
    this.schedule = await new KeySchedule(this.suite).init(psk);
    const [cHs, sHs] = await this.schedule.handshakeTraffic(shared, await this.transcriptHash());
    this.cHs = cHs;
    this.recv = await RecordLayer.create(this.suite, sHs);
    if (hello.keepaliveMs < MIN_KEEPALIVE_MS || hello.keepaliveMs > MAX_KEEPALIVE_MS) {
      throw new ProtocolError(`keepalive ${hello.keepaliveMs} ms out of bounds`, ErrorCode.HANDSHAKE_FAILURE);
    }
    this.keepaliveMs = hello.keepaliveMs;
    this.state = State.WAIT_SERVER_FINISHED;
  }

  async onServerFinished(finished, encoded) {
    const suite = this.suite;
    const signed = concat(uint(finished.keyType, 2), prefix16(finished.publicKey));
    let serverKey = "";
    if (this.resumed) {
      if (finished.keyType || finished.publicKey.length || finished.signature.length) {
        throw new ProtocolError("resumed handshake carries a server key", ErrorCode.HANDSHAKE_FAILURE);
      }
    } else {
      serverKey = await this.checkServerKey(finished, await this.transcriptHash(signed));
    }
    const covered = concat(signed, prefix16(finished.signature));
    const expected = await suite.hmac(await this.schedule.finishedKey(this.recv.secret), await this.transcriptHash(covered));
    if (!constantTimeEqual(expected, finished.verifyData)) {
      throw new ProtocolError("server Finished does not verify", ErrorCode.BAD_FINISHED);
    }
    this.transcript.push(encoded);
    const [cAp, sAp] = await this.schedule.applicationTraffic(await this.transcriptHash());
    this.send_ = await RecordLayer.create(suite, this.cHs);
    await this.sendClientFinished();
    this.send_ = await RecordLayer.create(suite, cAp);
    this.recv = await RecordLayer.create(suite, sAp);
    this.state = State.CONNECTED;
    this.events.push({
      type: "handshake",
      suite: this.suiteCode,
      resumed: this.resumed,
      appId: this.config.appId,
      keepaliveMs: this.keepaliveMs,
      serverKey,
      clientKey: await this.clientKeyPin(),
    });
    this.ticks = { next: 0, idleRecv: 0, idleSend: 0, received: false, sent: false };
    this.shares.clear();
  }

  async checkServerKey(finished, coveredHash) {
    if (finished.keyType !== this.suite.keyType) {
      throw new ProtocolError("server key type does not match the suite", ErrorCode.BAD_SIGNATURE);
    }
    const message = signatureMessage(SERVER_SIGNATURE_CONTEXT, coveredHash);
    if (!(await this.suite.verify(finished.publicKey, message, finished.signature))) {
      throw new ProtocolError("server signature does not verify", ErrorCode.BAD_SIGNATURE);
    }
    const pin = await this.suite.fingerprint(finished.publicKey);
    if (!this.pins.has(pin)) throw new ProtocolError(`server key ${pin} is not pinned`, ErrorCode.SERVER_KEY_NOT_PINNED);
    return pin;
  }

  async clientKeyPin() {
    const key = this.config.clientKey;
    if (this.resumed || !key || this.config.appSecret) return "";
    return SUITES[this.suiteCode].fingerprint(await this.suite.publicKeyOf(key.private));
  }

  async sendClientFinished() {
    const { config, suite } = this;
    const appId = this.resumed ? "" : config.appId;
    let mode = AuthMode.RESUMED;
    let keyType = 0;
    let publicKey = new Uint8Array(0);
    let proof = new Uint8Array(0);
    const cfPrefix = () => {
      const raw = utf8(appId);
      return concat(new Uint8Array([raw.length]), raw, new Uint8Array([mode]), uint(keyType, 2), prefix16(publicKey));
    };
    if (!this.resumed && config.appSecret) {
      mode = AuthMode.APP_SECRET;
      const covered = await this.transcriptHash(cfPrefix());
      const clientKey = await appClientKey(suite, appId, config.appSecret);
      const stored = await suite.hash(clientKey);
      proof = xor(clientKey, await suite.hmac(stored, covered));
    } else if (!this.resumed) {
      const key = config.clientKey;
      if (key.keyType !== suite.keyType) {
        throw new LocalProtocolError(`the client key is not of the ${suite.name} suite's type`);
      }
      mode = AuthMode.CLIENT_KEY;
      keyType = key.keyType;
      publicKey = await suite.publicKeyOf(key.private);
      const message = signatureMessage(CLIENT_SIGNATURE_CONTEXT, await this.transcriptHash(cfPrefix()));
      if (keyType === KEY_TYPE_SM2 && config.fixed?.sm2K) {
        proof = sm2Sign(key.private, message, { k: config.fixed.sm2K }); // the vectors' k: tests only
      } else {
        proof = await suite.sign(key.private, message);
      }
    }
    const prefix = concat(cfPrefix(), prefix16(proof));
    const mac = await suite.hmac(await this.schedule.finishedKey(this.send_.secret), await this.transcriptHash(prefix));
    const encoded = encode({
      type: FrameType.CLIENT_FINISHED, appId, authMode: mode, keyType, publicKey, proof, verifyData: mac,
    }); // prettier-ignore
    this.queueEncoded(encoded);
    this.transcript.push(encoded);
    this.resumption = await this.schedule.resumptionSecret(await this.transcriptHash());
  }

  async onNewTicket(frame, now) {
    if (!(frame.lifetimeS > 0 && frame.lifetimeS <= MAX_TICKET_LIFETIME_S)) return; // section 5.6: ignored
    const psk = await this.schedule.ticketPsk(this.resumption, frame.nonce);
    this.events.push({
      type: "ticket",
      ticket: { suite: this.suiteCode, ticket: frame.ticket, psk, lifetimeS: frame.lifetimeS, ageAdd: frame.ageAdd,
        receivedAt: now }, // prettier-ignore
    });
  }
}
