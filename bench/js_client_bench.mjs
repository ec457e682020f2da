// The JS client's side of bench/bench_js_client.py: argv[2] is JSON {ws, pins, secrets, suite, seconds, window,
// size, connects}. Prints one JSON line: connect times (full handshake, resumed with a ticket) and messages/s with
// the client CPU per message (sender and receiver both in this process).
import { Client, newConversationId } from "../clients/js/src/index.js";

const cfg = JSON.parse(process.argv[2]);
const make = (appId, extra = {}) =>
  new Client({ url: cfg.ws, appId, appSecret: cfg.secrets[appId], serverPins: cfg.pins, suites: [cfg.suite],
    backoff: { initialMs: 0, maxMs: 0, jitter: 0 }, ...extra }); // prettier-ignore
const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

async function connectTimes() {
  const full = [];
  const resumed = [];
  for (let i = 0; i < cfg.connects; i++) {
    const c = make("alice");
    let t = performance.now();
    await c.connect();
    full.push(performance.now() - t);
    const again = new Promise((r) => c.on("connected", r));
    t = performance.now();
    c._link.transport.close(); // lost: the client reconnects at once (backoff 0) with its ticket
    const e = await again;
    if (e.resumed) resumed.push(performance.now() - t);
    await c.close();
  }
  return { full_ms: median(full), resumed_ms: resumed.length ? median(resumed) : null, resumed_of: `${resumed.length}/${cfg.connects}` };
}

async function throughput() {
  const alice = make("alice");
  const bob = make("bob");
  await alice.connect();
  await bob.connect();
  const conv = newConversationId();
  let received = 0;
  bob.on("message", () => {
    received += 1;
  });
  await alice.send(conv, "start", { to: ["bob"] });
  const body = new Uint8Array(cfg.size).fill(120);
  let running = true;
  const pump = async () => {
    while (running) await alice.send(conv, body);
  };
  const pumps = Array.from({ length: cfg.window }, pump);
  await new Promise((r) => setTimeout(r, 1000)); // warm-up
  const r0 = received;
  const cpu0 = process.cpuUsage();
  const t0 = performance.now();
  await new Promise((r) => setTimeout(r, cfg.seconds * 1000));
  const messages = received - r0;
  const elapsed = (performance.now() - t0) / 1000;
  const cpu = process.cpuUsage(cpu0);
  running = false;
  await Promise.all(pumps);
  await alice.close();
  await bob.close();
  return { msgs_per_s: messages / elapsed, client_cpu_us_per_msg: (cpu.user + cpu.system) / messages, messages };
}

const out = { suite: cfg.suite, ...(await connectTimes()), ...(await throughput()) };
console.log(JSON.stringify(out));
