// The client-key side of tests/js/test_js_interop.py: argv[2] is JSON {ws, pins, appId, type, key, conversation}.
// Connects with CLIENT_KEY in the key's suite, sends one message to bob, prints the suite and the receipt's seq.
import { fromHex } from "../../clients/js/src/bytes.js";
import { Client } from "../../clients/js/src/index.js";

const cfg = JSON.parse(process.argv[2]);
const suite = cfg.type === "sm2" ? "national" : "international";
const client = new Client({ url: cfg.ws, appId: cfg.appId, serverPins: cfg.pins, suites: [suite],
  clientKey: { type: cfg.type, privateKey: fromHex(cfg.key) } }); // prettier-ignore
await client.connect();
const receipt = await client.send(BigInt(cfg.conversation), `signed in with ${cfg.type}`, { to: ["bob"] });
console.log(JSON.stringify({ suite: client.suite, seq: String(receipt.seq) }));
await client.close();
