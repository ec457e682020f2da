// One connection of a Client: a transport driven through the sans-IO ClientConnection, with every step (received
// bytes, sealing and writing, timers) run one after another on a promise chain, since sealing is asynchronous and
// records must leave in the order their sequence numbers were given.
import { ClientConnection, State } from "./connection.js";
import { HEADER_LEN, MAX_HANDSHAKE_BODY } from "./frames.js";

const now = () => Date.now() / 1000;

/** The largest WebSocket message the server takes from a client: one handshake frame (spec 15.2). */
export const MAX_MESSAGE = HEADER_LEN + MAX_HANDSHAKE_BODY;

/** `bytes` (whole frames) cut into messages of at most MAX_MESSAGE bytes: at frame boundaries where a frame fits, and
 * a frame longer than a message cut into several (the server reads a byte stream: a record may span messages). */
export function messagesOf(bytes) {
  const out = [];
  let start = 0;
  let o = 0;
  while (o < bytes.length) {
    const length = HEADER_LEN + new DataView(bytes.buffer, bytes.byteOffset + o, 4).getUint32(0);
    if (o + length - start > MAX_MESSAGE && o > start) {
      out.push(bytes.subarray(start, o));
      start = o;
    }
    o += length;
    while (o - start > MAX_MESSAGE && start + MAX_MESSAGE <= bytes.length) {
      out.push(bytes.subarray(start, start + MAX_MESSAGE));
      start += MAX_MESSAGE;
    }
  }
  if (bytes.length > start) out.push(bytes.subarray(start));
  return out;
}

export class Link {
  constructor(client, transport, config) {
    this.client = client;
    this.transport = transport;
    this.conn = new ClientConnection(config, { now: now() });
    this.chain = Promise.resolve();
    this.flushQueued = false;
    this.timer = null;
    this.lost = false;
    this.ready = false;
    this.requests = new Map(); // requestId -> {kind, ...}
    this.nextRequestId = 1;
    this.gone = new Promise((resolve) => {
      this.resolveGone = resolve;
    });
    transport.onData = (data) => this.run(() => this.conn.receiveData(data, { now: now() }));
    transport.onClose = (reason) => this.run(() => this.conn.receiveData(new Uint8Array(0), { now: now() }), reason);
  }

  start() {
    return this.run(() => this.conn.connect({ now: now() }));
  }

  /** Accepted by the server (its first frame after our CLIENT_FINISHED came) and still connected. */
  get usable() {
    return this.ready && this.writable;
  }

  /** Our side of the handshake is done: application frames may be queued (the server may still refuse us). */
  get writable() {
    return !this.lost && this.conn.state === State.CONNECTED;
  }

  newRequestId() {
    const id = this.nextRequestId;
    this.nextRequestId = id >= 0xffffffff ? 1 : id + 1;
    return id;
  }

  /** Queue an application frame and write it soon (frames queued in the same tick leave in one write). */
  send(frame) {
    this.conn.send(frame);
    this.scheduleFlush();
  }

  scheduleFlush() {
    if (this.flushQueued) return;
    this.flushQueued = true;
    queueMicrotask(() => this.run(async () => {}));
  }

  close() {
    if (this.conn.state === State.CONNECTED) {
      this.conn.close();
      this.scheduleFlush();
    }
  }

  /** Run `step` after the previous ones, then hand the events over, write, and arm the timer. */
  run(step, closeReason = null) {
    this.chain = this.chain.then(async () => {
      if (this.lost) return;
      try {
        await step();
        for (const event of this.conn.eventsReceived()) this.client.linkEvent(this, event);
        this.client.linkFlushing(this);
        this.flushQueued = false;
        const out = await this.conn.dataToSend();
        for (const message of messagesOf(out)) this.transport.send(message);
      } catch (e) {
        // The core's own errors become events; anything thrown here is a fault of this side: end the connection
        // rather than leave a chain that runs nothing more.
        this.client.linkFailed(this, e);
        this.drop();
        return;
      }
      if (this.conn.state === State.CLOSED || closeReason !== null) this.drop();
      else this.arm();
    });
    return this.chain;
  }

  arm() {
    if (this.timer) clearTimeout(this.timer);
    const due = this.conn.getTimer();
    if (due === null) return;
    const delay = Math.max(0, (due - now()) * 1000);
    this.timer = setTimeout(() => this.run(async () => this.conn.handleTimer(now())), delay);
  }

  drop() {
    if (this.lost) return;
    this.lost = true;
    if (this.timer) clearTimeout(this.timer);
    this.transport.close();
    this.resolveGone();
    this.client.linkLost(this);
  }
}
