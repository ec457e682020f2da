// Evaluated in a page of the kefu web port by tests/js/test_js_browser.py: the JS client as a browser loads it
// (/js/index.js, no build step), an agent and a visitor through the real server in one suite; returns what they saw.
async ({ suite, pins, secrets }) => {
  const { Client } = await import("/js/index.js");
  const url = location.origin.replace(/^http/, "ws") + "/ws";
  const make = (appId) => new Client({ url, appId, appSecret: secrets[appId], serverPins: pins, suites: [suite] });
  const agent = make("a1");
  const visitor = make("v1");
  const agentSaw = [];
  const visitorSaw = [];
  const events = [];
  agent.on("message", (m) => agentSaw.push([String(m.conversationId), m.sender, m.text]));
  visitor.on("message", (m) => visitorSaw.push([String(m.conversationId), m.sender, m.text]));
  agent.service.on("event", (e) => events.push([e.kind, e.name ?? null, String(e.conversationId), e.staff ?? null]));
  const until = async (check) => {
    for (let i = 0; i < 200 && !check(); i++) await new Promise((r) => setTimeout(r, 50));
  };
  await agent.connect();
  await visitor.connect();
  await agent.service.setStatus("online");
  const opened = await visitor.service.open({ attributes: { channel: "web" }, firstMessage: `help (${suite})` });
  const conv = String(opened.conversationId);
  await until(() => agentSaw.some((m) => m[0] === conv && m[2] === `help (${suite})`));
  await agent.send(opened.conversationId, `answer (${suite})`);
  await until(() => visitorSaw.some((m) => m[2] === `answer (${suite})`));
  const info = await agent.service.info(opened.conversationId);
  await agent.service.end(opened.conversationId, "done");
  const result = {
    suite: agent.suite,
    opened: { conv, state: opened.stateName, agent: opened.agent },
    agentSaw: agentSaw.filter((m) => m[0] === conv),
    visitorSaw: visitorSaw.filter((m) => m[0] === conv),
    events: events.filter((e) => e[2] === conv),
    infoOwner: info.owner,
    staffChannelExact: typeof info.staff_channel === "bigint" && info.staff_channel === (opened.conversationId | (1n << 63n)),
  };
  await agent.close();
  await visitor.close();
  return result;
}
