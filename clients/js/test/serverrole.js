// The server role of the handshake, for the tests only (the JS client has no server): full handshakes (APP_SECRET,
// CLIENT_KEY) and resumptions (PSK_ONLY, PSK_WITH_ECDHE) with every random fixed, tickets sealed as the reference
// server seals them (protocol/tickets.py). test/handshakes.test.js replays the vectors' client flights into it and
// checks its flights byte for byte.
import { concat, constantTimeEqual, uint, utf8, xor } from "../src/bytes.js";
import { SUITES, signatureMessage, sm2Sign, sm2Verify } from "../src/crypto.js";
import { AuthMode, FrameType, HEADER_LEN, PskMode } from "../src/frames.js";
import { HASH_LEN, KeySchedule, appClientKey, expandLabel } from "../src/keyschedule.js";
import { RecordLayer } from "../src/records.js";
import { FrameDecoder, decodeBody, encode } from "../src/wire.js";

const prefix16 = (b) => concat(uint(b.length, 2), b);
const TICKET_STATE = [
  ["version", 1], ["suite", 2], ["issuedAtMs", 8], ["lifetimeS", 4], ["ageAdd", 4], ["ticketId", "f16"],
  ["appId", "s8"], ["clientKey", "s8"], ["psk", "b8"],
]; // prettier-ignore

function encodeState(state) {
  const parts = [];
  for (const [name, kind] of TICKET_STATE) {
    const v = state[name];
    if (typeof kind === "number") parts.push(uint(v, kind));
    else if (kind === "f16") parts.push(v);
    else {
      const bytes = kind === "s8" ? utf8(v) : v;
      parts.push(new Uint8Array([bytes.length]), bytes);
    }
  }
  return concat(...parts);
}

function decodeState(raw) {
  const state = {};
  let o = 0;
  for (const [name, kind] of TICKET_STATE) {
    if (typeof kind === "number") {
      let v = 0n;
      for (let i = 0; i < kind; i++) v = (v << 8n) | BigInt(raw[o + i]);
      state[name] = kind === 8 ? v : Number(v);
      o += kind;
    } else if (kind === "f16") {
      state[name] = raw.slice(o, o + 16);
      o += 16;
    } else {
      const n = raw[o];
      const bytes = raw.slice(o + 1, o + 1 + n);
      state[name] = kind === "s8" ? new TextDecoder().decode(bytes) : bytes;
      o += 1 + n;
    }
  }
  return state;
}

/** The ticket-sealing AEAD of the reference server for `suite`: key id = Hash(secret)[:4], key = "ticket key". */
async function ticketAead(suite, secret) {
  const keyId = (await suite.hash(secret)).slice(0, 4);
  const key = await suite.aeadKey(await expandLabel(suite, secret, "ticket key", new Uint8Array(0), 16));
  return { keyId, key };
}

/**
 * inputs: {suites (server preference), keys: {sm2, ed25519}, random, ephemeral: {[code]: private}, signatureK,
 * ticketSecret, ticketNonce, ticketId, ageAdd, lifetimeS, nowMs, appSecrets: {appId: secret}, clientKeys: {appId:
 * [fingerprint]}}
 */
export class VectorServer {
  constructor(inputs) {
    this.inputs = inputs;
    this.decoder = new FrameDecoder();
    this.events = [];
    this.transcript = [];
  }

  hash(...extra) {
    return this.suite.hash(concat(...this.transcript, ...extra));
  }

  /** Feed a client flight; returns the server's answer bytes (possibly empty). */
  async receive(bytes, serverSends = []) {
    const out = [];
    for (const raw of this.decoder.feed(bytes)) {
      if (raw.type === FrameType.CLIENT_HELLO) out.push(await this.onHello(decodeBody(raw.type, raw.body), raw.bytes));
      else if (raw.type === FrameType.RECORD) {
        const plain = await this.recv.open(raw.bytes.subarray(0, HEADER_LEN), raw.body);
        for (const inner of new FrameDecoder().feed(plain)) {
          const frame = decodeBody(inner.type, inner.body, inner.flags, inner.requestId);
          if (frame.type === FrameType.CLIENT_FINISHED) out.push(await this.onFinished(frame, inner.bytes, serverSends));
          else this.events.push({ event: "frame", frame });
        }
      }
    }
    return concat(...out);
  }

  async onHello(hello, bytes) {
    const inputs = this.inputs;
    const code = inputs.suites.find((c) => hello.suites.includes(c));
    this.code = code;
    this.suite = SUITES[code];
    let psk = null;
    if (hello.ticket.length) {
      const { keyId, key } = await ticketAead(this.suite, inputs.ticketSecret);
      const t = hello.ticket;
      const aad = concat(keyId, uint(code, 2));
      const raw = constantTimeEqual(t.subarray(0, 4), keyId) ? await this.suite.open(key, t.subarray(4, 16), aad, t.subarray(16)) : null;
      if (raw) {
        const state = decodeState(raw);
        const schedule = await new KeySchedule(this.suite).init(state.psk);
        const covered = encode(hello).subarray(HEADER_LEN, encode(hello).length - (1 + HASH_LEN));
        const binder = await this.suite.hmac(await schedule.binderKey(), await this.suite.hash(covered));
        if (!constantTimeEqual(binder, hello.binder)) throw new Error("BAD_BINDER");
        psk = state.psk;
        this.ticketState = state;
      }
    }
    this.pskMode = psk ? hello.pskMode : PskMode.NONE;
    let shared = null;
    let keyShare = new Uint8Array(0);
    if (!psk || this.pskMode === PskMode.PSK_WITH_ECDHE) {
      const mine = await this.suite.keyShare(inputs.ephemeral[code]);
      shared = await mine.agree(hello.keyShares.find((s) => s.suite === code).key);
      keyShare = mine.publicKey;
    }
    const sh = encode({ type: FrameType.SERVER_HELLO, random: inputs.random, suite: code, keyShare,
      pskAccepted: psk ? 1 : 0, keepaliveMs: Math.min(300_000, Math.max(5_000, hello.keepaliveMs)) }); // prettier-ignore
    this.keepaliveMs = Math.min(300_000, Math.max(5_000, hello.keepaliveMs));
    this.transcript = [bytes, sh];
    this.resumed = psk !== null;
    this.schedule = await new KeySchedule(this.suite).init(psk);
    const [cHs, sHs] = await this.schedule.handshakeTraffic(shared, await this.hash());
    this.cHs = cHs;
    this.recv = await RecordLayer.create(this.suite, cHs);
    const sendHs = await RecordLayer.create(this.suite, sHs);
    let keyType = 0;
    let publicKey = new Uint8Array(0);
    let signature = new Uint8Array(0);
    if (!psk) {
      const priv = code === 0x00c6 ? inputs.keys.sm2 : inputs.keys.ed25519;
      keyType = this.suite.keyType;
      publicKey = await this.suite.publicKeyOf(priv);
      const message = signatureMessage("kefu v1, server signature", await this.hash(uint(keyType, 2), prefix16(publicKey)));
      signature = code === 0x00c6 ? sm2Sign(priv, message, { k: inputs.signatureK }) : await this.suite.sign(priv, message);
    }
    const signed = concat(uint(keyType, 2), prefix16(publicKey), prefix16(signature));
    const mac = await this.suite.hmac(await this.schedule.finishedKey(sHs), await this.hash(signed));
    const sf = encode({ type: FrameType.SERVER_FINISHED, keyType, publicKey, signature, verifyData: mac });
    this.transcript.push(sf);
    const [cAp, sAp] = await this.schedule.applicationTraffic(await this.hash());
    this.cAp = cAp;
    this.send = await RecordLayer.create(this.suite, sAp);
    return concat(sh, await sendHs.seal(sf));
  }

  async onFinished(cf, bytes, serverSends) {
    const inputs = this.inputs;
    const raw = utf8(cf.appId);
    const proofPrefix = concat(new Uint8Array([raw.length]), raw, new Uint8Array([cf.authMode]), uint(cf.keyType, 2),
      prefix16(cf.publicKey)); // prettier-ignore
    const mac = await this.suite.hmac(await this.schedule.finishedKey(this.cHs), await this.hash(proofPrefix, prefix16(cf.proof)));
    if (!constantTimeEqual(mac, cf.verifyData)) throw new Error("BAD_FINISHED");
    const covered = await this.hash(proofPrefix);
    let appId = cf.appId;
    let clientKey = "";
    if (this.resumed) {
      if (cf.authMode !== AuthMode.RESUMED || cf.appId) throw new Error("AUTH_FAILED");
      appId = this.ticketState.appId;
      clientKey = this.ticketState.clientKey;
    } else if (cf.authMode === AuthMode.APP_SECRET) {
      const stored = await this.suite.hash(await appClientKey(this.suite, appId, inputs.appSecrets[appId]));
      const candidate = xor(cf.proof, await this.suite.hmac(stored, covered));
      if (!constantTimeEqual(await this.suite.hash(candidate), stored)) throw new Error("AUTH_FAILED");
    } else {
      clientKey = await this.suite.fingerprint(cf.publicKey);
      const message = signatureMessage("kefu v1, client signature", covered);
      if (!inputs.clientKeys[appId]?.includes(clientKey) || !sm2Verify(cf.publicKey, message, cf.proof)) throw new Error("AUTH_FAILED");
    }
    this.transcript.push(bytes);
    this.recv = await RecordLayer.create(this.suite, this.cAp);
    const resumption = await this.schedule.resumptionSecret(await this.hash());
    this.events.push({ event: "handshake", suite: this.code, resumed: this.resumed, appId, keepaliveMs: this.keepaliveMs, clientKey });
    const psk = await this.schedule.ticketPsk(resumption, inputs.ticketNonce);
    const state = { version: 1, suite: this.code, issuedAtMs: BigInt(inputs.nowMs), lifetimeS: inputs.lifetimeS,
      ageAdd: inputs.ageAdd, ticketId: inputs.ticketId, appId, clientKey, psk }; // prettier-ignore
    const { keyId, key } = await ticketAead(this.suite, inputs.ticketSecret);
    const sealed = await this.suite.seal(key, inputs.ticketNonce, concat(keyId, uint(this.code, 2)), encodeState(state));
    const ticket = encode({ type: FrameType.NEW_TICKET, lifetimeS: inputs.lifetimeS, ageAdd: inputs.ageAdd,
      nonce: inputs.ticketNonce, ticket: concat(keyId, inputs.ticketNonce, sealed) }); // prettier-ignore
    return this.send.seal(concat(ticket, ...serverSends));
  }
}
