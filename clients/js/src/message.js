// What the client hands the application: delivered messages and send receipts.
import { fromUtf8, parseJson } from "./bytes.js";
import { ContentType, SYSTEM_SENDER } from "./frames.js";

const lenient = new TextDecoder("utf-8");

export class Message {
  constructor(frame, acknowledge) {
    this.conversationId = frame.conversationId;
    this.seq = frame.seq;
    this.sender = frame.sender;
    this.body = frame.body;
    this.contentType = frame.contentType;
    this.clientMsgId = frame.clientMsgId;
    this.serverMsgId = frame.serverMsgId;
    this.timestampMs = Number(frame.timestampMs);
    this.metadata = Object.fromEntries((frame.metadata ?? []).map((m) => [m.key, m.value]));
    this.redelivery = Boolean(frame.flags & 1);
    this._acknowledge = acknowledge;
  }

  get text() {
    return lenient.decode(this.body);
  }

  get sentAt() {
    return new Date(this.timestampMs);
  }

  /** Spec 13.2: an EVENT from the system sender, and only then. */
  get isSystemEvent() {
    return this.contentType === ContentType.EVENT && this.sender === SYSTEM_SENDER;
  }

  get event() {
    if (!this.isSystemEvent) return null;
    try {
      const value = parseJson(fromUtf8(this.body));
      return value && typeof value === "object" && typeof value.event === "string" ? value : null;
    } catch {
      return null;
    }
  }

  ack() {
    if (this._acknowledge) this._acknowledge(this);
  }
}

export function receiptOf(ack) {
  return {
    clientMsgId: ack.clientMsgId,
    conversationId: ack.conversationId,
    seq: ack.seq,
    serverMsgId: ack.serverMsgId,
    timestampMs: Number(ack.timestampMs),
    duplicate: Boolean(ack.flags & 1),
  };
}
