// The JS client's side of tests/js/test_js_interop.py: argv[2] is JSON {ws, pins, appId, secret, suite, conversation}.
// Sends to a Python client over the real server, takes its reply, loses the connection, reconnects (resumed with
// the ticket), sends again and takes the second reply; prints one JSON line of what it saw.
import { Client } from "../../clients/js/src/index.js";

const cfg = JSON.parse(process.argv[2]);
const client = new Client({ url: cfg.ws, appId: cfg.appId, appSecret: cfg.secret, serverPins: cfg.pins, suites: [cfg.suite] });
const inbox = [];
const waiters = [];
const conversation = BigInt(cfg.conversation);
client.on("message", (m) => {
  if (m.conversationId !== conversation) return; // another test's conversation resumed from the stored cursor
  inbox.push(m);
  while (waiters.length) waiters.shift()();
});
const connects = [];
client.on("connected", (e) => connects.push(e));

async function next(timeoutMs = 10_000) {
  const deadline = Date.now() + timeoutMs;
  while (!inbox.length) {
    if (Date.now() > deadline) throw new Error("no message in time");
    await new Promise((r) => { waiters.push(r); setTimeout(r, 100); }); // prettier-ignore
  }
  return inbox.shift();
}

const out = { suite: null, sent: [], got: [], connects };
await client.connect();
out.suite = client.suite;
out.sent.push(String((await client.send(conversation, `js says hello (${cfg.suite})`, { to: ["bob"] })).seq));
let m = await next();
out.got.push({ text: m.text, sender: m.sender, seq: String(m.seq) });
const reconnected = new Promise((r) => client.on("connected", r));
client._link.transport.close(); // the connection is lost: the client reconnects by itself
await reconnected;
out.resumed = client.resumed;
out.reconnects = client.reconnects;
out.sent.push(String((await client.send(conversation, "js again after the reconnect")).seq));
m = await next();
out.got.push({ text: m.text, sender: m.sender, seq: String(m.seq) });
const history = await client.sync({ conversationId: conversation });
out.history = history.messages.map((x) => x.text);
// 24 messages of 60 KB at once (1.4 MB, more than one record holds): sealed as several records, each in a
// WebSocket message the server takes.
const big = new Uint8Array(60_000).fill(7);
const sends = Array.from({ length: 24 }, () => client.send(conversation, big));
out.big = (await Promise.all(sends)).map((r) => Number(r.seq));
await client.close();
console.log(JSON.stringify(out));
