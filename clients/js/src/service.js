// Customer-service requests and events of a client (spec/PROTOCOL.md section 13): `client.service`.
// Mirrors kefu.client.ServiceApi: one request per call, answered by RESULT (OPENED, SEARCH_RESULT); a request lost
// with its connection fails with ConnectionLost (open can be repeated safely with the same clientRef).
import { fromUtf8, parseJson, randomBytes, utf8 } from "./bytes.js";
import { ClientClosed, ConnectionLost, ErrorCode, RequestRefused, Timeout } from "./errors.js";
import { AgentState, ConversationState, DraftAction, FrameType, STAFF_BIT } from "./frames.js";

const STATE_NAMES = Object.fromEntries(Object.entries(ConversationState).map(([k, v]) => [v, k.toLowerCase()]));

function detailOf(frame) {
  try {
    const value = frame.detail.length ? parseJson(fromUtf8(frame.detail)) : {};
    return value && typeof value === "object" && !Array.isArray(value) ? value : {};
  } catch {
    return {};
  }
}

function outcome(answer) {
  if (answer.type !== FrameType.RESULT) throw new RequestRefused("unexpected answer", ErrorCode.INTERNAL_ERROR);
  const detail = detailOf(answer);
  if (answer.status !== ErrorCode.OK) throw new RequestRefused(String(detail.reason ?? ""), answer.status);
  return { conversationId: answer.conversationId, seq: answer.seq, detail };
}

export class ServiceApi {
  constructor(client) {
    this._client = client;
    this._listeners = new Set();
    this._pending = new Set();
  }

  async setStatus(status, { timeoutS = 10 } = {}) {
    const code = AgentState[String(status).toUpperCase()];
    if (!code) throw new TypeError(`unknown status ${status}`);
    return outcome(await this._request({ type: FrameType.AGENT_STATUS, status: code }, timeoutS));
  }

  async open({ group = "", attributes = {}, firstMessage = "", customer = "", clientRef, timeoutS = 10 } = {}) {
    const frame = {
      type: FrameType.OPEN_CONVERSATION,
      clientRef: clientRef ?? randomBytes(16),
      customer,
      group,
      attributes: Object.entries(attributes).map(([key, v]) => ({ key, value: utf8(String(v)) })),
      firstMessage: utf8(firstMessage),
    };
    const answer = await this._request(frame, timeoutS);
    if (answer.type !== FrameType.OPENED) {
      outcome(answer);
      throw new RequestRefused("unexpected answer", ErrorCode.INTERNAL_ERROR);
    }
    return {
      conversationId: answer.conversationId,
      state: answer.state,
      stateName: STATE_NAMES[answer.state] ?? String(answer.state),
      group: answer.group,
      agent: answer.agent,
      position: answer.position,
    };
  }

  async transfer(conversationId, { agent = "", group = "", expectOwner = "", note = "", timeoutS = 10 } = {}) {
    const frame = { type: FrameType.TRANSFER, conversationId: BigInt(conversationId), expectOwner, toAgent: agent,
      toGroup: group, note }; // prettier-ignore
    return outcome(await this._request(frame, timeoutS));
  }

  async end(conversationId, reason = "", { timeoutS = 10 } = {}) {
    return outcome(await this._request({ type: FrameType.END_CONVERSATION, conversationId: BigInt(conversationId),
      reason }, timeoutS)); // prettier-ignore
  }

  async watch(conversationId, on = true, { timeoutS = 10 } = {}) {
    return outcome(await this._request({ type: FrameType.WATCH, conversationId: BigInt(conversationId), on: on ? 1 : 0 },
      timeoutS)); // prettier-ignore
  }

  async decideDraft(conversationId, draftSeq, action, editedText = "", { timeoutS = 10 } = {}) {
    const code = DraftAction[String(action).toUpperCase()];
    if (!code) throw new TypeError(`unknown draft action ${action}`);
    const frame = { type: FrameType.DRAFT_DECISION, conversationId: BigInt(conversationId), draftSeq: BigInt(draftSeq),
      action: code, text: utf8(editedText) }; // prettier-ignore
    return outcome(await this._request(frame, timeoutS));
  }

  async search(query, { limit = 20, timeoutS = 10 } = {}) {
    const answer = await this._request({ type: FrameType.SEARCH, query, limit }, timeoutS);
    if (answer.type !== FrameType.SEARCH_RESULT) {
      outcome(answer);
      throw new RequestRefused("unexpected answer", ErrorCode.INTERNAL_ERROR);
    }
    return answer.hits.map((h) => ({ conversationId: h.conversationId, seq: h.seq, timestampMs: Number(h.timestampMs),
      snippet: h.snippet })); // prettier-ignore
  }

  async info(conversationId, { timeoutS = 10 } = {}) {
    return outcome(await this._request({ type: FrameType.CONVERSATION_INFO, conversationId: BigInt(conversationId) },
      timeoutS)).detail; // prettier-ignore
  }

  on(type, listener) {
    if (type !== "event") throw new TypeError(`unknown event ${type}`);
    this._listeners.add(listener);
    return () => this.off(type, listener);
  }

  off(_type, listener) {
    this._listeners.delete(listener);
  }

  _emit(event) {
    for (const listener of [...this._listeners]) {
      try {
        listener(event);
      } catch (e) {
        this._client._emit("error", e);
      }
    }
  }

  _request(frame, timeoutS) {
    const client = this._client;
    if (client._closed) return Promise.reject(new ClientClosed("the client is closed"));
    const link = client._link;
    if (!link || !link.usable) return Promise.reject(new ConnectionLost("not connected"));
    return new Promise((resolve, reject) => {
      const requestId = link.newRequestId();
      const request = { kind: "service", resolve: null, reject: null };
      const timer = setTimeout(() => {
        link.requests.delete(requestId);
        done();
        reject(new Timeout(`request not answered within ${timeoutS} s`));
      }, timeoutS * 1000);
      const done = () => {
        clearTimeout(timer);
        this._pending.delete(request);
      };
      request.resolve = (v) => (done(), resolve(v));
      request.reject = (e) => (done(), reject(e));
      this._pending.add(request);
      link.requests.set(requestId, request);
      link.send({ ...frame, requestId });
    });
  }

  /** A service frame from the link: an answer, or a pushed QUEUE_POSITION / SENTIMENT. */
  onFrame(link, frame) {
    if (frame.type === FrameType.QUEUE_POSITION) {
      this._emit({ kind: "queue", conversationId: frame.conversationId, group: frame.group, position: frame.position,
        waiting: frame.waiting }); // prettier-ignore
      return;
    }
    if (frame.type === FrameType.SENTIMENT) {
      this._emit({ kind: "sentiment", conversationId: frame.conversationId, seq: frame.seq,
        scorePermille: frame.scorePermille, score: frame.scorePermille / 1000 }); // prettier-ignore
      return;
    }
    const request = link.requests.get(frame.requestId);
    if (request?.kind === "service") {
      link.requests.delete(frame.requestId);
      request.resolve(frame);
    }
  }

  /** A system message (spec 13.2) delivered in a conversation or its staff channel. */
  onSystemMessage(message) {
    const event = message.event;
    if (!event) return;
    const staff = (message.conversationId & STAFF_BIT) !== 0n;
    this._emit({ kind: "system", name: event.event, conversationId: message.conversationId & ~STAFF_BIT, seq: message.seq,
      staff, detail: event, message }); // prettier-ignore
  }

  fail(error) {
    for (const request of [...this._pending]) request.reject(error);
  }
}
