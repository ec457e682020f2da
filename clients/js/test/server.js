// A scripted kefu server for the Client's API tests: the server side of the handshake (full handshakes with
// APP_SECRET, both suites) and the record layer, built from the client's own core pieces (wire.js, keyschedule.js,
// records.js, crypto.js); what it answers to application frames is the test's `onFrame`. It is no server: no
// storage, no delivery rules, only what a test scripts. Transports made by `transport()` connect a Client to a
// fresh ScriptedServer each time (a reconnect meets a new one).
import { concat, constantTimeEqual, fromHex, randomBytes, uint, utf8, xor } from "../src/bytes.js";
import { SUITES, signatureMessage, sm2PublicKey } from "../src/crypto.js";
import { FrameType, HEADER_LEN } from "../src/frames.js";
import { HASH_LEN, KeySchedule, appClientKey } from "../src/keyschedule.js";
import { RecordLayer } from "../src/records.js";
import { FrameDecoder, decodeBody, encode } from "../src/wire.js";

export const SM2_KEY = fromHex("3945208f7b2144b13f36e38ac6d39f95889393692860b51a42fb81ef4df7c5b8");
export const ED25519_SEED = fromHex("0102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f20");
export const APP_SECRET = fromHex("c8c9cacbcccdcecfd0d1d2d3d4d5d6d7d8d9dadbdcdddedfe0e1e2e3e4e5e6e7");

export async function serverPins() {
  return [
    await SUITES[0x00c6].fingerprint(sm2PublicKey(SM2_KEY)),
    await SUITES[0x1301].fingerprint(await SUITES[0x1301].publicKeyOf(ED25519_SEED)),
  ];
}

const prefix16 = (b) => concat(uint(b.length, 2), b);

export class ScriptedServer {
  /** secrets: {appId: Uint8Array}; onFrame(server, frame) answers application frames; refuse: an ERROR code. */
  constructor({ secrets, keys = {}, onFrame, refuse = null, goaway = null }) {
    this.secrets = secrets;
    this.keys = keys; // appId -> registered client key fingerprints
    this.onFrame = onFrame;
    this.refuse = refuse;
    this.goaway = goaway;
    this.decoder = new FrameDecoder();
    this.chain = Promise.resolve();
    this.received = [];
    this.connected = false;
    this.peer = null; // (bytes) => void, to the client
    this.closed = false;
  }

  receive(data) {
    this.chain = this.chain.then(() => this.process(data)).catch((e) => {
      this.error = e;
      this.drop();
    });
  }

  async process(data) {
    for (const raw of this.decoder.feed(data)) {
      if (this.closed) return;
      if (raw.type === FrameType.CLIENT_HELLO) await this.onHello(decodeBody(raw.type, raw.body), raw.bytes);
      else if (raw.type === FrameType.RECORD) {
        const plain = await this.recv.open(raw.bytes.subarray(0, HEADER_LEN), raw.body);
        for (const inner of new FrameDecoder().feed(plain)) {
          const frame = decodeBody(inner.type, inner.body, inner.flags, inner.requestId);
          if (frame.type === FrameType.CLIENT_FINISHED) await this.onFinished(frame, inner.bytes);
          else {
            this.received.push(frame);
            if (frame.type === FrameType.CLOSE) {
              await this.send({ type: FrameType.CLOSE, code: 0, reason: "" });
              this.drop();
              return;
            }
            if (frame.type === FrameType.KEY_UPDATE) await this.recv.update(); // the next record is under the next key
            if (frame.type === FrameType.SYNC && frame.conversationId === 0n) {
              // The resume-all every client sends after its handshake: answered as the real server does.
              await this.send({ type: FrameType.SYNC_DONE, requestId: frame.requestId, flags: 0, conversationId: 0n,
                lastSeq: 0n, more: 0 }); // prettier-ignore
            }
            await this.onFrame?.(this, frame);
          }
        }
      } else throw new Error(`unexpected plaintext ${raw.type}`);
    }
  }

  async onHello(hello, bytes) {
    if (this.goaway) {
      this.peer(encode({ type: FrameType.GOAWAY, ...this.goaway }));
      return this.drop();
    }
    const code = [0x00c6, 0x1301].find((c) => hello.suites.includes(c));
    this.suite = SUITES[code];
    const mine = await this.suite.keyShare();
    const shared = await mine.agree(hello.keyShares.find((s) => s.suite === code).key);
    const sh = encode({ type: FrameType.SERVER_HELLO, random: randomBytes(32), suite: code, keyShare: mine.publicKey,
      pskAccepted: 0, keepaliveMs: hello.keepaliveMs }); // prettier-ignore
    this.transcript = [bytes, sh];
    this.schedule = await new KeySchedule(this.suite).init(null);
    const [cHs, sHs] = await this.schedule.handshakeTraffic(shared, await this.hash());
    this.cHs = cHs;
    this.recv = await RecordLayer.create(this.suite, cHs);
    const sendHs = await RecordLayer.create(this.suite, sHs);
    const priv = code === 0x00c6 ? SM2_KEY : ED25519_SEED;
    const publicKey = await this.suite.publicKeyOf(priv);
    const signed = concat(uint(this.suite.keyType, 2), prefix16(publicKey));
    const signature = await this.suite.sign(priv, signatureMessage("kefu v1, server signature", await this.hash(signed)));
    const mac = await this.suite.hmac(await this.schedule.finishedKey(sHs), await this.hash(signed, prefix16(signature)));
    const sf = encode({ type: FrameType.SERVER_FINISHED, keyType: this.suite.keyType, publicKey, signature, verifyData: mac });
    this.peer(concat(sh, await sendHs.seal(sf)));
    this.transcript.push(sf);
    const [cAp, sAp] = await this.schedule.applicationTraffic(await this.hash());
    this.cAp = cAp;
    this.sendLayer = await RecordLayer.create(this.suite, sAp);
  }

  async onFinished(cf, bytes) {
    const raw = utf8(cf.appId);
    const proofPrefix = concat(new Uint8Array([raw.length]), raw, new Uint8Array([cf.authMode]), uint(cf.keyType, 2),
      prefix16(cf.publicKey)); // prettier-ignore
    const expected = await this.suite.hmac(await this.schedule.finishedKey(this.cHs),
      await this.hash(proofPrefix, prefix16(cf.proof))); // prettier-ignore
    if (!constantTimeEqual(expected, cf.verifyData)) throw new Error("bad client finished");
    const secret = this.secrets[cf.appId];
    let ok = false;
    if (cf.authMode === 2) {
      // CLIENT_KEY: a registered key of the suite's type, and its signature over the transcript.
      const pin = await this.suite.fingerprint(cf.publicKey);
      const message = signatureMessage("kefu v1, client signature", await this.hash(proofPrefix));
      ok = cf.keyType === this.suite.keyType && (this.keys?.[cf.appId] ?? []).includes(pin) &&
        (await this.suite.verify(cf.publicKey, message, cf.proof)); // prettier-ignore
    } else if (secret && cf.proof.length === HASH_LEN) {
      const stored = await this.suite.hash(await appClientKey(this.suite, cf.appId, secret));
      const clientKey = xor(cf.proof, await this.suite.hmac(stored, await this.hash(proofPrefix)));
      ok = constantTimeEqual(await this.suite.hash(clientKey), stored);
    }
    this.transcript.push(bytes);
    this.recv = await RecordLayer.create(this.suite, this.cAp);
    if (!ok || this.refuse) {
      await this.send({ type: FrameType.ERROR, code: this.refuse ?? 206, reason: "authentication failed" });
      return this.drop();
    }
    this.appId = cf.appId;
    this.connected = true;
  }

  hash(...extra) {
    return this.suite.hash(concat(...this.transcript, ...extra));
  }

  /** Seal frames in one record and write them to the client. */
  async send(...frames) {
    if (this.closed) return;
    this.peer(await this.sendLayer.seal(concat(...frames.map(encode))));
  }

  drop() {
    if (this.closed) return;
    this.closed = true;
    this.onDrop?.();
  }
}

/** A transport factory: each connection meets a new ScriptedServer made by `make()`; `servers` lists them. */
export function transport(make) {
  const servers = [];
  const factory = async () => {
    const server = make(servers.length);
    servers.push(server);
    const t = {
      onData: null,
      onClose: null,
      send(data) {
        if (!server.closed) server.receive(data);
      },
      close() {
        server.drop();
      },
    };
    server.peer = (bytes) => setTimeout(() => !t.closedByServer && t.onData?.(bytes), 0);
    server.onDrop = () =>
      setTimeout(() => {
        t.closedByServer = true;
        const cb = t.onClose;
        t.onClose = null;
        cb?.("scripted server closed");
      }, 1);
    return t;
  };
  factory.servers = servers;
  return factory;
}
