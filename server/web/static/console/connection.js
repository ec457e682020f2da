// The console's one kefu connection: the JS client (served at /js/index.js, clients/js) signed in with the staff
// session credential, to the web port's /ws. Everything the desk and the wall ask of kefu goes through here.

/** The WebSocket URL of /config.json's "ws" (a path on this origin, or a full ws:// URL). */
export function webSocketUrl(config) {
  const ws = config.ws || "/ws";
  if (/^wss?:\/\//.test(ws)) return ws;
  const scheme = location.protocol === "https:" ? "wss:" : "ws:";
  return `${scheme}//${location.host}${ws.startsWith("/") ? ws : `/${ws}`}`;
}

/**
 * Connect as the signed-in staff member. `handlers`: message(m), service(e), state("connecting" | "connected" |
 * "disconnected" | "closed", error). Resolves to the client once the handshake is done.
 */
export async function connect(session, config, handlers) {
  const kefu = await import("/js/index.js");
  const client = new kefu.Client({
    url: webSocketUrl(config),
    appId: session.app_id,
    appSecret: session.secret,
    serverPins: config.server_pins || [],
    suites: config.suites && config.suites.length ? config.suites : undefined,
  });
  client.on("message", (m) => handlers.message(m));
  client.service.on("event", (e) => handlers.service(e));
  client.on("connected", () => handlers.state("connected", null));
  client.on("disconnected", (e) => handlers.state("disconnected", e && e.error));
  client.on("closed", (e) => handlers.state("closed", e && e.error));
  client.on("error", (e) => console.warn("kefu client:", e));
  handlers.state("connecting", null);
  await client.connect();
  handlers.state("connected", null);
  return client;
}
