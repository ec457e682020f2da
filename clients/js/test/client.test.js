// The Client API against the scripted server (test/server.js): sending, delivery and acknowledgements, history,
// service requests and events, refusals, reconnecting with pending SENDs, GOAWAY.
import assert from "node:assert/strict";
import { test } from "node:test";
import { toHex, utf8 } from "../src/bytes.js";
import { ContentType, FrameType, SYSTEM_SENDER } from "../src/frames.js";
import {
  AuthFailed, Client, ConnectionLost, CredentialsRefused, RequestRefused, SendRefused, ServerNotTrusted, decodeSecret, staffChannel,
} from "../src/index.js"; // prettier-ignore
import { APP_SECRET, serverPins, transport } from "./server.js";

const SECRETS = { alice: APP_SECRET };
const until = async (check, what = "condition", ms = 3000) => {
  const end = Date.now() + ms;
  while (!check()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
};
const ack = (send, seq, extra = {}) => ({
  type: FrameType.SEND_ACK, requestId: send.requestId, flags: 0, clientMsgId: send.clientMsgId, status: 0,
  serverMsgId: 1000n + seq, conversationId: send.conversationId, seq, timestampMs: 1764000000000n, ...extra,
}); // prettier-ignore
const deliver = (conversationId, seq, body, extra = {}) => ({
  type: FrameType.DELIVER, requestId: 0, flags: 0, conversationId, seq, serverMsgId: 2000n + seq,
  timestampMs: 1764000000000n, clientMsgId: new Uint8Array(16), contentType: ContentType.TEXT, sender: "bob",
  body: utf8(body), metadata: [], ...extra,
}); // prettier-ignore

async function client(onFrame, options = {}, serverOptions = {}) {
  const factory = transport(() => new (await_server())({ secrets: SECRETS, onFrame, ...serverOptions }));
  const c = new Client({ transport: factory, appId: "alice", appSecret: APP_SECRET, serverPins: await serverPins(),
    backoff: { initialMs: 10, maxMs: 50, jitter: 0 }, ...options }); // prettier-ignore
  return { c, factory };
}
import { ScriptedServer } from "./server.js";
const await_server = () => ScriptedServer;

for (const suite of ["national", "international"]) {
  test(`connect and send in the ${suite} suite: the receipt, the SEND on the wire`, async () => {
    const { c, factory } = await client(async (s, f) => f.type === FrameType.SEND && s.send(ack(f, 7n)), { suites: [suite] });
    const connected = [];
    c.on("connected", (e) => connected.push(e));
    await c.connect();
    assert.equal(c.suite, suite);
    assert.deepEqual(connected, [{ suite, resumed: false }]);
    const receipt = await c.send(42n, "你好", { to: ["bob", "carol"], metadata: { k: "v" } });
    assert.equal(receipt.seq, 7n);
    assert.equal(receipt.conversationId, 42n);
    assert.equal(receipt.duplicate, false);
    const sent = factory.servers[0].received.find((f) => f.type === FrameType.SEND);
    assert.equal(new TextDecoder().decode(sent.body), "你好");
    assert.equal(sent.contentType, ContentType.TEXT);
    assert.deepEqual(sent.metadata.map((m) => [m.key, new TextDecoder().decode(m.value)]), [["k", "v"], ["kefu.to", "bob,carol"]]);
    const syncs = factory.servers[0].received.filter((f) => f.type === FrameType.SYNC);
    assert.deepEqual(syncs.map((f) => f.conversationId), [0n], "SYNC(0) after the handshake");
    await c.close();
    assert.ok(factory.servers[0].received.some((f) => f.type === FrameType.CLOSE));
  });
}

test("deliveries: each (conversation, seq) once, duplicates dropped, one cumulative DELIVER_ACK", async () => {
  const { c, factory } = await client(null);
  const got = [];
  c.on("message", (m) => got.push(m));
  await c.connect();
  const server = factory.servers[0];
  await server.send(deliver(5n, 1n, "one"), deliver(5n, 2n, "two"), deliver(5n, 1n, "one again"), deliver(6n, 9n, "x"));
  await until(() => server.received.some((f) => f.type === FrameType.DELIVER_ACK), "DELIVER_ACK");
  assert.deepEqual(got.map((m) => [m.conversationId, m.seq, m.text, m.sender]), [[5n, 1n, "one", "bob"], [5n, 2n, "two", "bob"], [6n, 9n, "x", "bob"]]);
  assert.equal(got[0].sentAt.getTime(), 1764000000000);
  const acks = server.received.filter((f) => f.type === FrameType.DELIVER_ACK).flatMap((f) => f.acks);
  const highest = new Map(acks.map((a) => [a.conversationId, a.seq]));
  assert.equal(highest.get(5n), 2n);
  assert.equal(highest.get(6n), 9n);
  await c.close();
});

test("explicitAck: only the contiguous processed seqs are acknowledged", async () => {
  const { c, factory } = await client(null, { explicitAck: true });
  const got = [];
  c.on("message", (m) => got.push(m));
  await c.connect();
  const server = factory.servers[0];
  await server.send(deliver(5n, 1n, "a"), deliver(5n, 2n, "b"), deliver(5n, 3n, "c"));
  await until(() => got.length === 3, "three messages");
  got[1].ack();
  got[2].ack();
  await new Promise((r) => setTimeout(r, 30));
  assert.equal(server.received.filter((f) => f.type === FrameType.DELIVER_ACK).length, 0, "nothing contiguous yet");
  got[0].ack();
  await until(() => server.received.some((f) => f.type === FrameType.DELIVER_ACK), "DELIVER_ACK");
  const acks = server.received.filter((f) => f.type === FrameType.DELIVER_ACK).flatMap((f) => f.acks);
  assert.deepEqual(acks.at(-1), { conversationId: 5n, seq: 3n });
  await c.close();
});

test("sync() is a fetch: its DELIVERs are returned, not emitted; untilSeq 0 asks up to the latest", async () => {
  const { c, factory } = await client(async (s, f) => {
    if (f.type !== FrameType.SYNC || f.conversationId === 0n) return;
    const r = { requestId: f.requestId, flags: 1 };
    await s.send(deliver(f.conversationId, 3n, "h3", r), deliver(f.conversationId, 4n, "h4", r),
      { type: FrameType.SYNC_DONE, requestId: f.requestId, flags: 0, conversationId: f.conversationId, lastSeq: 4n, more: 1 }); // prettier-ignore
  });
  const emitted = [];
  c.on("message", (m) => emitted.push(m));
  await c.connect();
  const result = await c.sync({ conversationId: 9n, afterSeq: 2n, limit: 2 });
  assert.deepEqual(result.messages.map((m) => [m.seq, m.text, m.redelivery]), [[3n, "h3", true], [4n, "h4", true]]);
  assert.equal(result.lastSeq, 4n);
  assert.equal(result.more, true);
  assert.equal(emitted.length, 0);
  const sync = factory.servers[0].received.find((f) => f.type === FrameType.SYNC && f.conversationId === 9n);
  assert.deepEqual([sync.afterSeq, sync.untilSeq, sync.limit], [2n, (1n << 64n) - 1n, 2]);
  await c.close();
});

test("refusals: SEND_ACK with a status, an ERROR for a SYNC", async () => {
  const { c } = await client(async (s, f) => {
    if (f.type === FrameType.SEND) await s.send(ack(f, 0n, { status: 413 }));
    if (f.type === FrameType.SYNC && f.conversationId !== 0n) {
      await s.send({ type: FrameType.ERROR, requestId: f.requestId, flags: 0, code: 404, reason: "no such conversation" });
    }
  });
  await c.connect();
  await assert.rejects(c.send(1n, "too big"), (e) => e instanceof SendRefused && e.code === 413 && e.codeName === "MESSAGE_TOO_LARGE");
  await assert.rejects(c.sync({ conversationId: 77n }), (e) => e instanceof RequestRefused && e.code === 404);
  await c.close();
});

test("service requests: status, open, transfer, search, info, refusals; queue, sentiment and system events", async () => {
  const result = (f, status, detail) => ({ type: FrameType.RESULT, requestId: f.requestId, flags: 0, status,
    conversationId: f.conversationId ?? 0n, seq: 0n, detail: utf8(JSON.stringify(detail)) }); // prettier-ignore
  const conv = (1n << 62n) + 1n;
  const { c, factory } = await client(async (s, f) => {
    switch (f.type) {
      case FrameType.AGENT_STATUS:
        return s.send(result(f, 0, { status: "online" }));
      case FrameType.OPEN_CONVERSATION:
        return s.send({ type: FrameType.OPENED, requestId: f.requestId, flags: 0, conversationId: conv, state: 1,
          group: f.group, agent: "", position: 2 }); // prettier-ignore
      case FrameType.TRANSFER:
        return s.send(result(f, 409, { reason: "not the owner" }));
      case FrameType.SEARCH:
        return s.send({ type: FrameType.SEARCH_RESULT, requestId: f.requestId, flags: 0, more: 0,
          hits: [{ conversationId: conv, seq: 3n, timestampMs: 5n, snippet: "账单" }] }); // prettier-ignore
      case FrameType.CONVERSATION_INFO:
        return s.send(result(f, 0, { state: "assigned", owner: "agent-7" }));
      case FrameType.DRAFT_DECISION:
        return s.send(result(f, 0, {}));
    }
    return undefined;
  });
  const events = [];
  c.service.on("event", (e) => events.push(e));
  await c.connect();
  assert.deepEqual((await c.service.setStatus("online")).detail, { status: "online" });
  const opened = await c.service.open({ group: "cards", attributes: { vip: "2" }, firstMessage: "hi" });
  assert.deepEqual([opened.conversationId, opened.stateName, opened.group, opened.position], [conv, "waiting", "cards", 2]);
  await assert.rejects(c.service.transfer(conv, { group: "senior" }), (e) => e instanceof RequestRefused && e.code === 409 && e.message === "not the owner");
  assert.deepEqual(await c.service.search("账单"), [{ conversationId: conv, seq: 3n, timestampMs: 5, snippet: "账单" }]);
  assert.deepEqual(await c.service.info(conv), { state: "assigned", owner: "agent-7" });
  await c.service.decideDraft(conv, 4n, "edit", "better text");
  const server = factory.servers[0];
  const byType = (t) => server.received.find((f) => f.type === t);
  assert.equal(byType(FrameType.AGENT_STATUS).status, 1);
  assert.deepEqual(byType(FrameType.OPEN_CONVERSATION).attributes.map((a) => a.key), ["vip"]);
  assert.equal(byType(FrameType.TRANSFER).toGroup, "senior");
  const draft = byType(FrameType.DRAFT_DECISION);
  assert.deepEqual([draft.draftSeq, draft.action, new TextDecoder().decode(draft.text)], [4n, 2, "better text"]);
  await server.send(
    { type: FrameType.QUEUE_POSITION, requestId: 0, flags: 0, conversationId: conv, group: "cards", position: 1, waiting: 3 },
    { type: FrameType.SENTIMENT, requestId: 0, flags: 0, conversationId: conv, seq: 2n, scorePermille: 120 },
    deliver(staffChannel(conv), 1n, JSON.stringify({ event: "assigned", agent: "agent-7", group: "cards" }),
      { sender: SYSTEM_SENDER, contentType: ContentType.EVENT }), // prettier-ignore
    deliver(conv, 5n, JSON.stringify({ event: "fake" }), { contentType: ContentType.EVENT }), // not from #kefu
  );
  await until(() => events.length >= 3, "service events");
  await new Promise((r) => setTimeout(r, 20));
  assert.deepEqual(events.map((e) => e.kind), ["queue", "sentiment", "system"]);
  assert.equal(events[1].score, 0.12);
  assert.deepEqual([events[2].name, events[2].conversationId, events[2].staff, events[2].detail.agent], ["assigned", conv, true, "agent-7"]);
  await assert.rejects(c.service.setStatus("asleep"), TypeError);
  await c.close();
});

test("a lost connection: reconnect, resume known conversations, re-send the pending SEND with the same id", async () => {
  let sends = 0;
  const { c, factory } = await client(async (s, f) => {
    if (f.type !== FrameType.SEND) return;
    sends += 1;
    if (sends === 1) s.drop(); // the first connection goes before the SEND_ACK
    else await s.send(ack(f, 3n, { flags: 1 }));
  });
  const disconnected = [];
  c.on("disconnected", (e) => disconnected.push(e));
  await c.connect();
  await factory.servers[0].send(deliver(8n, 1n, "a"), deliver(8n, 2n, "b"));
  await until(() => factory.servers[0].received.some((f) => f.type === FrameType.DELIVER_ACK), "DELIVER_ACK");
  const receipt = await c.send(8n, "survives");
  assert.equal(receipt.duplicate, true);
  assert.equal(factory.servers.length, 2);
  assert.equal(c.reconnects, 1);
  assert.equal(disconnected.length, 1);
  const [first, second] = factory.servers.map((s) => s.received.find((f) => f.type === FrameType.SEND));
  assert.equal(toHex(first.clientMsgId), toHex(second.clientMsgId));
  const syncs = factory.servers[1].received.filter((f) => f.type === FrameType.SYNC);
  assert.deepEqual(syncs.map((f) => [f.conversationId, f.afterSeq, f.untilSeq]), [[8n, 2n, 0n], [0n, 0n, 0n]]);
  await c.close();
});

test("a service request lost with its connection fails with ConnectionLost", async () => {
  const { c } = await client(async (s, f) => f.type === FrameType.AGENT_STATUS && s.drop());
  await c.connect();
  await assert.rejects(c.service.setStatus("online"), ConnectionLost);
  await c.close();
});

test("connect refusals: a wrong secret is AuthFailed, an unpinned server ServerNotTrusted; neither retries", async () => {
  const wrong = new Client({ transport: transport(() => new ScriptedServer({ secrets: SECRETS })), appId: "alice",
    appSecret: new Uint8Array(32), serverPins: await serverPins() }); // prettier-ignore
  await assert.rejects(wrong.connect(), AuthFailed);
  const unpinned = new Client({ transport: transport(() => new ScriptedServer({ secrets: SECRETS })), appId: "alice",
    appSecret: APP_SECRET, serverPins: ["sm2:" + "00".repeat(32)] }); // prettier-ignore
  await assert.rejects(unpinned.connect(), ServerNotTrusted);
});

test("a GOAWAY refusal at the handshake: connect() retries after its delay; one beyond connectTimeoutS is ServerBusy", async () => {
  const goaway = { code: 505, reconnectDelayMs: 20, backoffInitialMs: 10, backoffMaxMs: 50, jitterPermille: 0, reason: "busy" };
  const factory = transport((i) => new ScriptedServer({ secrets: SECRETS, goaway: i === 0 ? goaway : null }));
  const c = new Client({ transport: factory, appId: "alice", appSecret: APP_SECRET, serverPins: await serverPins() });
  await c.connect();
  assert.equal(factory.servers.length, 2);
  assert.equal(c.reconnects, 0);
  await c.close();
  const long = { ...goaway, reconnectDelayMs: 60_000 };
  const busy = new Client({ transport: transport(() => new ScriptedServer({ secrets: SECRETS, goaway: long })),
    appId: "alice", appSecret: APP_SECRET, serverPins: await serverPins(), connectTimeoutS: 5 }); // prettier-ignore
  await assert.rejects(busy.connect(), (e) => e.name === "ServerBusy" && e.codeName === "OVERLOADED" && e.retryAfterMs === 60_000);
});

test("connect() while a reconnect is in progress waits for it", async () => {
  const { c, factory } = await client(null);
  await c.connect();
  factory.servers[0].drop();
  await until(() => !c.connected, "the loss");
  await c.connect();
  assert.ok(c.connected);
  assert.equal(factory.servers.length, 2);
  await c.close();
});

test("decodeSecret takes base64url with or without padding, and bytes; refuses anything else", () => {
  assert.equal(toHex(decodeSecret("yMnKy8zNzs_Q0dLT1NXW19jZ2tvc3d7f4OHi4-Tl5uc")), toHex(APP_SECRET));
  assert.equal(toHex(decodeSecret(" yMnKy8zNzs_Q0dLT1NXW19jZ2tvc3d7f4OHi4-Tl5uc= ")), toHex(APP_SECRET));
  assert.throws(() => decodeSecret("short"), TypeError);
  assert.throws(() => decodeSecret("yMnKy8zNzs_Q0dLT1NXW19jZ2tvc3d7f4OHi4-Tl5u!"), TypeError);
});

test("a session ended with AUTH_FAILED reconnects at once without its ticket; a refusal then is CredentialsRefused", async () => {
  const factory = transport((i) => new ScriptedServer({ secrets: SECRETS, refuse: i === 0 ? null : 206 }));
  const c = new Client({ transport: factory, appId: "alice", appSecret: APP_SECRET, serverPins: await serverPins(),
    backoff: { initialMs: 10, maxMs: 50, jitter: 0 } }); // prettier-ignore
  const closed = new Promise((r) => c.on("closed", r));
  await c.connect();
  const pending = c.send(3n, "never acknowledged");
  await factory.servers[0].send({ type: FrameType.ERROR, requestId: 0, flags: 0, code: 206, reason: "authentication failed" });
  const { error } = await closed;
  assert.ok(error instanceof CredentialsRefused, String(error));
  await assert.rejects(pending, CredentialsRefused);
  assert.equal(factory.servers.length, 2);
});

test("JSON details keep u64 integers exact (as bigints), and strings that look like numbers alone", async () => {
  const { parseJson } = await import("../src/bytes.js");
  const v = parseJson('{"staff_channel": 13835058055282163714, "n": 7, "s": "13835058055282163714", "x": -1.5e3, "q": "a\\"1234567890123456789"}');
  assert.deepEqual(v, { staff_channel: 13835058055282163714n, n: 7, s: "13835058055282163714", x: -1500, q: 'a"1234567890123456789' });
});

test("KEY_UPDATE with update_requested: the client moves its receiving key and answers with its own", async () => {
  const { c, factory } = await client(null);
  const got = [];
  c.on("message", (m) => got.push(m.text));
  await c.connect();
  const server = factory.servers[0];
  await server.send({ type: FrameType.KEY_UPDATE, requestId: 0, flags: 0, updateRequested: 1 });
  await server.sendLayer.update();
  await server.send(deliver(4n, 1n, "under the next key"));
  await until(() => got.length === 1, "the message under the new key");
  await until(() => server.received.some((f) => f.type === FrameType.KEY_UPDATE), "the client's KEY_UPDATE");
  assert.equal(server.received.find((f) => f.type === FrameType.KEY_UPDATE).updateRequested, 0);
  await until(() => server.received.some((f) => f.type === FrameType.DELIVER_ACK), "a DELIVER_ACK under its next key");
  await c.close();
  assert.equal(server.error, undefined);
});

test("index.d.ts declares exactly what index.js exports", async () => {
  const { readFileSync } = await import("node:fs");
  const api = await import("../src/index.js");
  const dts = readFileSync(new URL("../src/index.d.ts", import.meta.url), "utf8");
  const declared = [...dts.matchAll(/^export (?:class|function|const) (\w+)/gm)].map((m) => m[1]).sort();
  assert.deepEqual(declared, Object.keys(api).sort());
});

test("close(): the acknowledgements not yet written go out before CLOSE", async () => {
  const { c, factory } = await client(null);
  await c.connect();
  const server = factory.servers[0];
  let closing = null;
  c.on("message", () => {
    closing = c.close(); // from the listener itself, before the message counts as processed
  });
  await server.send(deliver(12n, 1n, "last words"));
  await until(() => closing !== null, "the message");
  await closing;
  const types = server.received.map((f) => f.type);
  const ackAt = types.lastIndexOf(FrameType.DELIVER_ACK);
  assert.ok(ackAt >= 0 && ackAt < types.indexOf(FrameType.CLOSE), JSON.stringify(types));
  assert.deepEqual(server.received[ackAt].acks, [{ conversationId: 12n, seq: 1n }]);
});

test("seqs never delivered (the client's own messages) count as handled: the ack passes over them", async () => {
  const { c, factory } = await client(null);
  await c.connect();
  const server = factory.servers[0];
  await server.send(deliver(20n, 1n, "a")); // seq 2 is our own message: the server does not send it back
  await until(() => server.received.some((f) => f.type === FrameType.DELIVER_ACK), "the first ack");
  await server.send(deliver(20n, 3n, "c"));
  const last = () => server.received.filter((f) => f.type === FrameType.DELIVER_ACK).flatMap((f) => f.acks).at(-1);
  await until(() => last().seq === 3n, "the ack of seq 3");
  await c.close();
});

test("a SEND refused with RATE_LIMITED goes again after a backoff, with the same id; local checks before sending", async () => {
  let tries = 0;
  const { c, factory } = await client(async (s, f) => {
    if (f.type !== FrameType.SEND) return;
    tries += 1;
    await s.send(tries === 1 ? ack(f, 0n, { status: 429 }) : ack(f, 4n));
  });
  await c.connect();
  const receipt = await c.send(30n, "again");
  assert.equal(receipt.seq, 4n);
  const sends = factory.servers[0].received.filter((f) => f.type === FrameType.SEND);
  assert.equal(sends.length, 2);
  assert.equal(toHex(sends[0].clientMsgId), toHex(sends[1].clientMsgId));
  await assert.rejects(c.send(0n, "x"), RangeError);
  await assert.rejects(c.send(1n << 64n, "x"), RangeError);
  await assert.rejects(c.send(1n, new Uint8Array(1 << 20)), RangeError);
  await assert.rejects(c.send(1n, "x", { clientMsgId: new Uint8Array(3) }), TypeError);
  await c.close();
  await assert.rejects(c.send(1n, "after close"), (e) => e.name === "ClientClosed");
});

test("a GOAWAY while connected: CLOSE, then a reconnect after its delay; a fetch in progress is asked again there", async () => {
  const { c, factory } = await client(async (s, f) => {
    if (f.type !== FrameType.SYNC || f.conversationId !== 50n) return;
    if (factory.servers.indexOf(s) === 0) {
      await s.send({ type: FrameType.GOAWAY, requestId: 0, flags: 0, code: 503, reconnectDelayMs: 30,
        backoffInitialMs: 10, backoffMaxMs: 50, jitterPermille: 0, reason: "draining" }); // prettier-ignore
      return;
    }
    await s.send({ type: FrameType.SYNC_DONE, requestId: f.requestId, flags: 0, conversationId: 50n, lastSeq: 0n, more: 0 });
  });
  await c.connect();
  const done = await c.sync({ conversationId: 50n });
  assert.deepEqual([done.messages.length, done.lastSeq, done.more], [0, 0n, false]);
  assert.equal(factory.servers.length, 2);
  assert.ok(factory.servers[0].received.some((f) => f.type === FrameType.CLOSE), "the drained connection was closed");
  assert.equal(c.reconnects, 1);
  await c.close();
});

for (const [type, suite] of [["sm2", "national"], ["ed25519", "international"]]) {
  test(`a client key (${type}) instead of an app secret: CLIENT_KEY in the ${suite} suite; an unregistered one is refused`, async () => {
    const { SUITE_BY_NAME } = await import("../src/crypto.js");
    const privateKey = new Uint8Array(32).fill(7);
    const pin = await SUITE_BY_NAME[suite].fingerprint(await SUITE_BY_NAME[suite].publicKeyOf(privateKey));
    const pins = await serverPins();
    const make = (keys) => new Client({ transport: transport(() => new ScriptedServer({ secrets: {}, keys })), appId: "alice",
      clientKey: { type, privateKey }, serverPins: pins, suites: [suite] }); // prettier-ignore
    const good = make({ alice: [pin] });
    await good.connect();
    assert.equal(good.suite, suite);
    await good.close();
    await assert.rejects(make({ alice: [] }).connect(), AuthFailed);
    assert.throws(() => new Client({ transport: transport(() => null), appId: "a", clientKey: { type, privateKey },
      serverPins: [], suites: ["national", "international"] }), /offer that suite alone/); // prettier-ignore
  });
}

test("options are checked at construction: pins, suites, credentials", async () => {
  const base = { transport: transport(() => null), appId: "a", appSecret: APP_SECRET };
  const pins = await serverPins();
  assert.throws(() => new Client({ ...base, serverPins: [] }), /at least one pin/);
  assert.throws(() => new Client({ ...base, serverPins: ["sm2:abc"] }), /not a server pin/);
  assert.throws(() => new Client({ ...base, serverPins: pins, suites: ["rot13"] }), /unknown suite/);
  assert.throws(() => new Client({ ...base, appSecret: undefined, serverPins: pins }), TypeError);
  const upper = pins.map((p) => p.toUpperCase().replace("SM2:", "sm2:").replace("ED25519:", "ed25519:"));
  assert.ok(new Client({ ...base, serverPins: upper }), "hex digits in either case");
});

test("large messages: records never exceed the largest plaintext, WebSocket messages never a handshake frame", async () => {
  const { MAX_MESSAGE, messagesOf } = await import("../src/link.js");
  const { HEADER_LEN, MAX_HANDSHAKE_BODY } = await import("../src/frames.js");
  const sizes = [];
  const factory = transport(() => new ScriptedServer({ secrets: SECRETS, onFrame: async (s, f) => f.type === FrameType.SEND && s.send(ack(f, 1n)) }));
  const spy = async () => {
    const t = await factory();
    const send = t.send.bind(t);
    t.send = (data) => {
      sizes.push(data.length);
      for (const record of [...messagesOf(data)]) assert.ok(record.length <= MAX_MESSAGE);
      send(data);
    };
    return t;
  };
  spy.servers = factory.servers;
  const c = new Client({ transport: spy, appId: "alice", appSecret: APP_SECRET, serverPins: await serverPins() });
  await c.connect();
  const big = new Uint8Array(700_000).fill(1);
  const receipts = await Promise.all([c.send(60n, big), c.send(60n, big), c.send(60n, big)]);
  assert.equal(receipts.length, 3);
  assert.ok(Math.max(...sizes) <= MAX_MESSAGE, `largest message ${Math.max(...sizes)}`);
  assert.ok(sizes.length >= (3 * 700_000) / MAX_MESSAGE, "each big SEND cut into many messages");
  assert.equal(factory.servers[0].received.filter((f) => f.type === FrameType.SEND).length, 3, "and whole again");
  assert.equal(MAX_MESSAGE, HEADER_LEN + MAX_HANDSHAKE_BODY);
  await c.close();
});

test("messagesOf: whole frames where they fit, a longer frame cut, every byte once and in order", async () => {
  const { MAX_MESSAGE, messagesOf } = await import("../src/link.js");
  const { HEADER_LEN } = await import("../src/frames.js");
  const frame = (bodyLength, fill) => {
    const f = new Uint8Array(HEADER_LEN + bodyLength).fill(fill);
    new DataView(f.buffer).setUint32(0, bodyLength);
    return f;
  };
  const parts = [frame(100, 1), frame(200, 2), frame(3 * MAX_MESSAGE + 5, 3), frame(10, 4), frame(MAX_MESSAGE - HEADER_LEN, 5)];
  const bytes = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) { bytes.set(p, at); at += p.length; }
  const messages = messagesOf(bytes);
  assert.ok(messages.every((m) => m.length <= MAX_MESSAGE && m.length > 0));
  assert.deepEqual(Buffer.concat(messages.map((m) => Buffer.from(m))), Buffer.from(bytes));
  assert.equal(messages[0].length, parts[0].length + parts[1].length, "the two small frames share one message");
  assert.equal(messages[messages.length - 1].length, MAX_MESSAGE, "a frame of exactly a message's size stays whole");
  assert.deepEqual(messagesOf(frame(10, 7)).map((m) => m.length), [HEADER_LEN + 10]);
});
