// spec/vectors/handshakes.json in the client role: with the vectors' fixed randoms, the client's flights must be the
// recorded bytes, the server's recorded flights must give the recorded events, and the traffic secrets must match.
import assert from "node:assert/strict";
import { test } from "node:test";
import { fromHex, toHex } from "../src/bytes.js";
import { SUITES, sm2PublicKey } from "../src/crypto.js";
import { FrameType } from "../src/frames.js";
import { RecordLayer } from "../src/records.js";
import { ClientConnection, State } from "../src/connection.js";
import { ErrorCode } from "../src/errors.js";
import { decode, encode } from "../src/wire.js";
import { VectorServer } from "./serverrole.js";
import { frameOf, loadJson } from "./vectors.js";

const VECTORS = loadJson("spec/vectors/handshakes.json");
const INPUTS = VECTORS.inputs;

async function serverPins() {
  const keys = INPUTS.server_private_keys;
  return [
    await SUITES[0x00c6].fingerprint(sm2PublicKey(fromHex(keys.sm2))),
    await SUITES[0x1301].fingerprint(await SUITES[0x1301].publicKeyOf(fromHex(keys.ed25519))),
  ];
}

async function configOf(scenario) {
  const { options } = scenario;
  const own = scenario.inputs;
  const config = {
    appId: INPUTS.app_id,
    serverPins: await serverPins(),
    suites: [scenario.suite],
    keepaliveMs: INPUTS.keepalive_ms,
    fixed: {
      random: fromHex(INPUTS.client_random),
      shares: { 0x00c6: fromHex(INPUTS.client_ephemeral.national), 0x1301: fromHex(INPUTS.client_ephemeral.international) },
      sm2K: own.client_signature_k ? fromHex(own.client_signature_k) : null,
    },
  };
  if (options.client_key) config.clientKey = { keyType: 1, private: fromHex(INPUTS[options.client_key]) };
  else config.appSecret = fromHex(INPUTS.app_secret);
  if (own.ticket) {
    const t = own.ticket;
    config.ticket = {
      suite: t.suite, ticket: fromHex(t.ticket), psk: fromHex(t.psk), lifetimeS: t.lifetime_s, ageAdd: t.age_add,
      receivedAt: t.received_at_ms / 1000,
    }; // prettier-ignore
    config.pskMode = options.psk_mode;
  }
  return config;
}

function checkEvent(want, got, now, serverSent) {
  const f = want.fields;
  switch (want.event) {
    case "HandshakeComplete":
      assert.equal(got.type, "handshake");
      assert.deepEqual(
        [got.suite, got.resumed, got.appId, got.keepaliveMs, got.serverKey, got.clientKey],
        [f.suite, f.resumed, f.app_id, f.keepalive_ms, f.server_key, f.client_key],
      );
      return;
    case "TicketReceived":
      assert.equal(got.type, "ticket");
      assert.deepEqual(
        [got.ticket.suite, toHex(got.ticket.ticket), toHex(got.ticket.psk), got.ticket.lifetimeS, got.ticket.ageAdd],
        [f.suite, f.ticket, f.psk, f.lifetime_s, f.age_add],
      );
      assert.equal(got.ticket.receivedAt, now);
      return;
    default:
      assert.equal(got.type, "frame");
      assert.equal(toHex(encode(got.frame)), serverSent.shift());
  }
}

assert.equal(VECTORS.scenarios.length, 5);
for (const scenario of VECTORS.scenarios) {
  test(`client role replays ${scenario.name} byte for byte`, async () => {
    const now = scenario.now_ms / 1000;
    const client = new ClientConnection(await configOf(scenario), { now });
    await client.connect({ now });
    const events = [];
    const serverSent = [];
    scenario.steps.forEach((step, i) => void i);
    for (const [index, step] of scenario.steps.entries()) {
      if (step.from === "client") {
        for (const frame of step.sends) {
          const parsed = decode(fromHex(frame.hex));
          assert.deepEqual(parsed, frameOf(frame));
          client.send(parsed);
        }
        assert.equal(toHex(await client.dataToSend()), step.hex, `${scenario.name} step ${index}`);
      } else {
        for (const frame of step.sends) serverSent.push(frame.hex);
        await client.receiveData(fromHex(step.hex), { now });
        events.push(...client.eventsReceived());
      }
    }
    assert.equal((await client.dataToSend()).length, 0, "the client has nothing more to say");
    const fin = scenario.final;
    assert.equal(events.length, fin.client_events.length, JSON.stringify(events.map((e) => e.type)));
    fin.client_events.forEach((want, i) => checkEvent(want, events[i], now, serverSent));
    assert.equal(serverSent.length, 0, "every application frame the server sent is reported");
    assert.equal(toHex(client.sendLayer.secret), fin.client_send_secret);
    assert.equal(toHex(client.sendLayer.secret), scenario.traffic_secrets.c_ap);
    assert.equal(toHex(client.recvLayer.secret), fin.server_send_secret);
    assert.equal(toHex(client.resumptionSecret), fin.resumption_secret);
    assert.equal(client.state, State.CONNECTED);
  });
}

test("a server key that is not pinned is SERVER_KEY_NOT_PINNED, and the client says so in plaintext", async () => {
  const scenario = VECTORS.scenarios.find((s) => s.name === "international-full-app-secret");
  const now = scenario.now_ms / 1000;
  const config = await configOf(scenario);
  config.serverPins = ["ed25519:" + "00".repeat(32)];
  const client = new ClientConnection(config, { now });
  await client.connect({ now });
  await client.dataToSend();
  await client.receiveData(fromHex(scenario.steps[1].hex), { now });
  const [event] = client.eventsReceived();
  assert.equal(event.type, "terminated");
  assert.equal(event.code, ErrorCode.SERVER_KEY_NOT_PINNED);
  const error = decode(await client.dataToSend());
  assert.equal(error.code, ErrorCode.SERVER_KEY_NOT_PINNED);
  assert.equal(client.state, State.CLOSED);
});

test("a modified server flight fails the handshake (BAD_RECORD_MAC or BAD_SIGNATURE), never connects", async () => {
  const scenario = VECTORS.scenarios.find((s) => s.name === "national-full-app-secret");
  const now = scenario.now_ms / 1000;
  const flight = fromHex(scenario.steps[1].hex);
  for (const offset of [20, 60, flight.length - 5]) {
    const client = new ClientConnection(await configOf(scenario), { now });
    await client.connect({ now });
    await client.dataToSend();
    const bad = flight.slice();
    bad[offset] ^= 0x01;
    await client.receiveData(bad, { now });
    const events = client.eventsReceived();
    assert.equal(events.at(-1).type, "terminated", `offset ${offset}`);
    assert.notEqual(client.state, State.CONNECTED);
  }
});

test("the end of the stream during the handshake is TRUNCATED", async () => {
  const scenario = VECTORS.scenarios[0];
  const client = new ClientConnection(await configOf(scenario), { now: 0 });
  await client.connect({ now: 0 });
  await client.receiveData(new Uint8Array(0), { now: 1 });
  assert.deepEqual(client.eventsReceived().map((e) => [e.type, e.code]), [["terminated", ErrorCode.TRUNCATED]]);
});

test("the handshake deadline is HANDSHAKE_TIMEOUT", async () => {
  const scenario = VECTORS.scenarios[0];
  const client = new ClientConnection(await configOf(scenario), { now: 100 });
  await client.connect({ now: 100 });
  assert.equal(client.getTimer(), 110);
  client.handleTimer(110);
  assert.equal(client.eventsReceived()[0].code, ErrorCode.HANDSHAKE_TIMEOUT);
});

async function connectedClient(scenario) {
  const now = scenario.now_ms / 1000;
  const client = new ClientConnection(await configOf(scenario), { now });
  await client.connect({ now });
  for (const step of scenario.steps) {
    if (step.from === "client") {
      for (const frame of step.sends) client.send(decode(fromHex(frame.hex)));
      await client.dataToSend();
    } else {
      await client.receiveData(fromHex(step.hex), { now });
    }
  }
  client.eventsReceived();
  return { client, now };
}

test("keepalive: a PING after 3/4 of the interval without sending; KEEPALIVE_TIMEOUT after 1.5 intervals of silence", async () => {
  const scenario = VECTORS.scenarios.find((s) => s.name === "international-full-app-secret");
  const { client, now } = await connectedClient(scenario);
  const serverSide = await RecordLayer.create(SUITES[0x1301], fromHex(scenario.traffic_secrets.c_ap));
  serverSide.seq = 1; // the scenario's SEND was record 0 under c_ap
  const tick = 30 / 4;
  let t = now;
  const pings = [];
  for (let i = 0; i < 5 && client.state === State.CONNECTED; i++) {
    t = Math.max(t + tick, client.getTimer());
    client.handleTimer(t);
    const out = await client.dataToSend();
    if (out.length) pings.push([i, decode(await serverSide.open(out.subarray(0, 12), out.subarray(12)))]);
  }
  assert.ok(pings.length >= 1, "a PING went out");
  assert.equal(pings[0][1].type, FrameType.PING);
  assert.ok(pings[0][0] >= 2 && pings[0][0] <= 3, `after 3/4 to 4/4 of the interval (tick ${pings[0][0]})`);
  for (let i = 0; i < 10 && client.state === State.CONNECTED; i++) {
    t += tick;
    client.handleTimer(t);
    await client.dataToSend();
  }
  const [event] = client.eventsReceived();
  assert.equal(event.code, ErrorCode.KEEPALIVE_TIMEOUT);
  assert.ok(t - now <= 1.5 * 30 + 2 * tick, "within 1.5 intervals (and a tick)");
});

async function serverInputs(scenario) {
  const own = scenario.inputs;
  const clientPub = sm2PublicKey(fromHex(INPUTS.client_sm2_private_key));
  return {
    suites: INPUTS.server_suites,
    keys: { sm2: fromHex(INPUTS.server_private_keys.sm2), ed25519: fromHex(INPUTS.server_private_keys.ed25519) },
    random: fromHex(INPUTS.server_random),
    ephemeral: { 0x00c6: fromHex(INPUTS.server_ephemeral.national), 0x1301: fromHex(INPUTS.server_ephemeral.international) },
    signatureK: own.server_signature_k ? fromHex(own.server_signature_k) : null,
    ticketSecret: fromHex(INPUTS.ticket_secret),
    ticketNonce: fromHex(own.ticket_nonce),
    ticketId: fromHex(own.ticket_id),
    ageAdd: own.ticket_age_add,
    lifetimeS: INPUTS.ticket_lifetime_s,
    nowMs: scenario.now_ms,
    appSecrets: { [INPUTS.app_id]: fromHex(INPUTS.app_secret) },
    clientKeys: { [INPUTS.app_id]: [await SUITES[0x00c6].fingerprint(clientPub)] },
  };
}

for (const scenario of VECTORS.scenarios) {
  test(`server role (test-only) replays ${scenario.name} byte for byte, tickets sealed as the reference server`, async () => {
    const server = new VectorServer(await serverInputs(scenario));
    const [hello, flight, finish, answer] = scenario.steps;
    assert.equal(toHex(await server.receive(fromHex(hello.hex))), flight.hex);
    const sends = answer.sends.map((f) => fromHex(f.hex));
    assert.equal(toHex(await server.receive(fromHex(finish.hex), sends)), answer.hex);
    const [done, send] = server.events;
    const want = scenario.final.server_events;
    const f = want[0].fields;
    assert.deepEqual([done.suite, done.resumed, done.appId, done.keepaliveMs, done.clientKey],
      [f.suite, f.resumed, f.app_id, f.keepalive_ms, f.client_key]); // prettier-ignore
    assert.equal(toHex(encode(send.frame)), finish.sends[0].hex);
    assert.equal(server.events.length, want.length);
  });
}
