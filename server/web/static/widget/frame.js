// kefu visitor widget: the chat inside the widget's frame (kefu's origin; see kefu-widget.js for the loader).
//
// Theory of operation.
// 1. The visitor identity: POST /auth/visitor {tenant} gives a short-lived app id and secret (role visitor). It is
//    kept in localStorage with the conversation's client_ref until shortly before it expires, so that a reload (or a
//    new tab) reconnects as the same visitor.
// 2. The connection: the JS client (/js/index.js) over the web port's WebSocket, with the pins and suites of
//    /config.json.
// 3. The conversation starts with the visitor's first message: OPEN_CONVERSATION carries it as first_message (so
//    routing sees it, and nobody is queued for merely opening the panel), with a random client_ref kept with the
//    identity. The server makes OPEN idempotent on the client_ref (spec 13.4), so after a reload the same OPEN gets
//    the same conversation; CONVERSATION_INFO then says where it is now (waiting and its queue position, or with
//    which agent), and SYNC fetches its history. The same routing, queue and history as every other client: the
//    widget is one more client of the protocol, nothing more.
// 4. The log: every message of the conversation by seq (live ones and history alike, each seq shown once); the
//    visitor's own sends appear at once and take their place when the server's receipt gives their seq.
// Marks for measurements (bench/bench_console_latency.py): performance.mark("kefu:widget-send") when the visitor
// sends, "kefu:widget-shown:<seq>" when a message from someone else is on screen.

let kefu = null; // the JS client's module, imported in start() so that a failure to load it is shown, not silent

const EXPIRY_MARGIN_S = 120; // an identity this close to its expiry is replaced before connecting
const HISTORY_PAGE = 200; // messages per SYNC page when loading the history
const STORAGE_PREFIX = "kefu-widget:v1:";

const TEXT = {
  zh: {
    connecting: "正在连接客服…",
    ready: "您好，请问有什么可以帮您？",
    reconnecting: "连接中断，正在重新连接…",
    waiting: (p) => `正在排队，您是第 ${p} 位，请稍候`,
    waitingNoPosition: "正在为您安排客服，请稍候",
    assigned: (a) => `客服 ${a} 正在为您服务`,
    closed: "会话已结束",
    unavailable: "在线客服暂不可用，请稍后再试",
    busy: "请求过于频繁，请稍后再试",
    failed: "消息未能发出",
    input: "输入消息，按 Enter 发送，Shift+Enter 换行",
    send: "发送",
    restart: "开始新的会话",
    you: "我",
    agent: (a) => `客服 ${a}`,
    bot: "智能助手",
    events: {
      opened: () => "会话已开始",
      queued: () => "正在为您排队",
      assigned: (e) => `客服 ${e.agent} 为您服务`,
      transferred: (e) => (e.agent ? `已为您转接至客服 ${e.agent}` : `已为您转接至 ${e.group}`),
      overflowed: (e) => `已转入 ${e.group} 队列`,
      closed: () => "会话已结束",
      damaged: () => "（一条消息无法显示）",
    },
  },
  en: {
    connecting: "Connecting…",
    ready: "Hello, how can we help you?",
    reconnecting: "Connection lost, reconnecting…",
    waiting: (p) => `You are number ${p} in the queue, please wait`,
    waitingNoPosition: "Finding an agent for you, please wait",
    assigned: (a) => `${a} is helping you`,
    closed: "The conversation has ended",
    unavailable: "Chat is not available now, please try again later",
    busy: "Too many requests, please try again later",
    failed: "The message was not sent",
    input: "Type a message: Enter sends, Shift+Enter starts a new line",
    send: "Send",
    restart: "Start a new conversation",
    you: "You",
    agent: (a) => `Agent ${a}`,
    bot: "Assistant",
    events: {
      opened: () => "Conversation started",
      queued: () => "Waiting for an agent",
      assigned: (e) => `${e.agent} joined the conversation`,
      transferred: (e) => (e.agent ? `Transferred to ${e.agent}` : `Transferred to ${e.group}`),
      overflowed: (e) => `Moved to the ${e.group} queue`,
      closed: () => "The conversation has ended",
      damaged: () => "(a message cannot be shown)",
    },
  },
};

const params = new URLSearchParams(location.hash.slice(1));
const tenant = params.get("tenant") || "";
const group = params.get("group") || "";
const lang = params.get("lang") === "en" ? "en" : "zh";
const T = TEXT[lang];
const storageKey = `${STORAGE_PREFIX}${tenant}:${group}`;
const parentOrigin = (location.ancestorOrigins && location.ancestorOrigins[0]) || params.get("embedder") || "";

const $ = (id) => document.getElementById(id);
const ui = { main: document.querySelector("main"), status: $("status"), log: $("log"), form: $("composer"),
  input: $("input"), send: $("send"), restart: $("restart") };

let client = null;
let identity = null;
let conversationId = null; // bigint
let visible = true;
let unread = 0;

// --- storage ---------------------------------------------------------------------------------------------------

function loadIdentity() {
  try {
    const saved = JSON.parse(localStorage.getItem(storageKey) || "null");
    if (saved && saved.appId && saved.secret && saved.expiresAt - Date.now() / 1000 > EXPIRY_MARGIN_S) return saved;
  } catch {
    /* unreadable or disabled storage: a fresh identity */
  }
  return null;
}

function saveIdentity() {
  try {
    localStorage.setItem(storageKey, JSON.stringify(identity));
  } catch {
    /* disabled storage: the chat works, a reload starts a new one */
  }
}

function randomHex(bytes) {
  return Array.from(crypto.getRandomValues(new Uint8Array(bytes)), (b) => b.toString(16).padStart(2, "0")).join("");
}

function hexBytes(hex) {
  return Uint8Array.from(hex.match(/../g), (h) => parseInt(h, 16));
}

class WidgetError extends Error {
  constructor(text) {
    super(text);
    this.text = text;
  }
}

async function newIdentity() {
  const answer = await fetch("/auth/visitor", {
    method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify({ tenant }),
    credentials: "same-origin", cache: "no-store",
  });
  if (answer.status === 429) throw new WidgetError(T.busy);
  if (!answer.ok) throw new WidgetError(T.unavailable);
  const id = await answer.json();
  return { appId: id.app_id, secret: id.secret, expiresAt: id.expires_at, clientRef: randomHex(16), conversation: null };
}

// --- the screen ----------------------------------------------------------------------------------------------------

function setStatus(text, state, extra = {}) {
  ui.status.textContent = text;
  ui.status.classList.toggle("error", state === "error");
  ui.main.dataset.state = state;
  ui.main.dataset.position = String(extra.position ?? "");
  ui.main.dataset.agent = extra.agent ?? "";
}

function setComposer(enabled) {
  ui.input.disabled = !enabled;
  ui.send.disabled = !enabled;
}

function place(item, seq) {
  // Keep the log in seq order; items without a seq yet (sends in flight) stay last.
  item.dataset.seq = String(seq);
  const after = [...ui.log.children].find((li) => li.dataset.seq !== "" && li !== item && BigInt(li.dataset.seq) > seq);
  ui.log.insertBefore(item, after || ui.log.querySelector('li[data-seq=""]'));
}

function bubble(kind, who, text) {
  const item = document.createElement("li");
  item.className = `msg ${kind}`;
  item.dataset.seq = "";
  const label = document.createElement("span");
  label.className = "who";
  label.textContent = who;
  const body = document.createElement("span");
  body.className = "text";
  body.textContent = text;
  item.append(label, body);
  return item;
}

function systemLine(text) {
  const item = document.createElement("li");
  item.className = "system";
  item.dataset.seq = "";
  item.textContent = text;
  return item;
}

function scrollToEnd() {
  ui.log.scrollTop = ui.log.scrollHeight;
}

function show(message) {
  if (conversationId === null || message.conversationId !== conversationId) return;
  if (ui.log.querySelector(`li[data-seq="${message.seq}"]`)) return; // already shown (live and history overlap)
  let item;
  if (message.isSystemEvent) {
    const event = message.event || {};
    const describe = T.events[event.event];
    if (!describe) return;
    item = systemLine(describe(event));
    if (event.event === "closed") conversationEnded();
    if (event.event === "assigned" || event.event === "transferred") {
      if (event.agent) setStatus(T.assigned(event.agent), "assigned", { agent: event.agent });
    }
  } else if (message.sender === identity.appId) {
    item = bubble("mine", T.you, message.text);
  } else if (message.sender === "#kefu") {
    item = bubble("bot", T.bot, message.text);
  } else {
    item = bubble("agent", T.agent(message.sender), message.text);
  }
  place(item, message.seq);
  scrollToEnd();
  if (message.sender !== identity.appId && !message.isSystemEvent) {
    performance.mark(`kefu:widget-shown:${message.seq}`);
    if (!visible && !message.redelivery) {
      unread += 1;
      tellParent({ kefu: "unread", count: unread });
    }
  }
}

function showPlace(state, detail) {
  if (state === "closed") conversationEnded();
  else if (detail.agent) setStatus(T.assigned(detail.agent), "assigned", { agent: detail.agent });
  else if (detail.position > 0) setStatus(T.waiting(detail.position), "waiting", { position: detail.position });
  else setStatus(T.waitingNoPosition, "waiting");
}

function conversationEnded() {
  setStatus(T.closed, "closed");
  setComposer(false);
  ui.restart.hidden = false;
}

function tellParent(data) {
  if (parentOrigin && window.parent !== window) window.parent.postMessage(data, parentOrigin);
}

// --- the conversation --------------------------------------------------------------------------------------------

async function connect() {
  const config = await (await fetch("/config.json", { cache: "no-store" })).json();
  const url = new URL(config.ws, location.href);
  url.protocol = url.protocol === "https:" ? "wss:" : "ws:";
  for (let attempt = 0; ; attempt += 1) {
    identity = loadIdentity() || (await newIdentity());
    saveIdentity();
    client = new kefu.Client({ url: url.href, appId: identity.appId, appSecret: identity.secret,
      serverPins: config.server_pins, suites: config.suites });
    client.on("message", show);
    client.on("disconnected", () => setStatus(T.reconnecting, "reconnecting"));
    client.on("closed", ({ error }) => {
      if (error) {
        // Stopped for good (e.g. the identity was revoked or expired while connected): a reload starts afresh.
        if (error instanceof kefu.CredentialsRefused) localStorage.removeItem(storageKey);
        setStatus(T.unavailable, "error");
        setComposer(false);
      }
    });
    client.on("connected", () => {
      if (ui.main.dataset.state !== "reconnecting") return; // the first connection: start() goes on
      if (conversationId !== null) refreshPlace().catch(() => {});
      else ready();
    });
    client.service.on("event", (event) => {
      if (event.kind === "queue" && event.conversationId === conversationId) showPlace("waiting", event);
    });
    try {
      await client.connect();
      return;
    } catch (error) {
      client.close().catch(() => {});
      // A stored identity the server no longer accepts (revoked, or expired meanwhile): once, a fresh one.
      if (attempt === 0 && (error instanceof kefu.AuthFailed || error instanceof kefu.CredentialsRefused)) {
        localStorage.removeItem(storageKey);
        continue;
      }
      throw error;
    }
  }
}

async function refreshPlace() {
  const info = await client.service.info(conversationId);
  showPlace(info.state, { agent: info.owner, position: Number(info.position || 0) });
}

async function openConversation(firstMessage = "") {
  const opened = await client.service.open({ group, attributes: { channel: "web", language: lang }, firstMessage,
    clientRef: hexBytes(identity.clientRef) });
  const repeat = identity.conversation === opened.conversationId.toString();
  conversationId = opened.conversationId;
  ui.main.dataset.conversation = conversationId.toString();
  identity.conversation = conversationId.toString();
  saveIdentity();
  await loadHistory();
  if (repeat) await refreshPlace(); // a reload: where the conversation is now, not where it was opened
  else showPlace(opened.stateName, opened);
  if (ui.main.dataset.state !== "closed") {
    setComposer(true);
    if (document.hasFocus()) ui.input.focus();
  }
}

async function loadHistory() {
  let after = 0n;
  for (;;) {
    const page = await client.sync({ conversationId, afterSeq: after, limit: HISTORY_PAGE });
    page.messages.forEach(show);
    if (!page.more || page.messages.length === 0) return;
    after = page.messages[page.messages.length - 1].seq;
  }
}

async function send(text) {
  performance.mark("kefu:widget-send");
  const item = bubble("mine pending", T.you, text);
  ui.log.appendChild(item);
  scrollToEnd();
  if (conversationId === null) return startConversation(text, item);
  try {
    const receipt = await client.send(conversationId, text, { contentType: kefu.ContentType.TEXT });
    item.classList.remove("pending");
    const twin = ui.log.querySelector(`li[data-seq="${receipt.seq}"]`);
    if (twin) twin.remove(); // the same message came back through SYNC meanwhile
    place(item, receipt.seq);
  } catch (error) {
    item.classList.replace("pending", "failed");
    item.title = T.failed;
    if (error && error.codeName === "CONFLICT") conversationEnded();
    else setStatus(T.failed, "error");
  }
}

async function startConversation(text, item) {
  // The first message opens the conversation (stored as its seq 2, shown with the history that follows).
  setComposer(false);
  try {
    await openConversation(text);
    item.remove();
  } catch (error) {
    console.error("kefu widget:", error);
    item.classList.replace("pending", "failed");
    item.title = T.failed;
    setStatus(error instanceof WidgetError ? error.text : T.failed, "error");
    setComposer(true);
  }
}

function ready() {
  setStatus(T.ready, "ready");
  setComposer(true);
  if (document.hasFocus()) ui.input.focus(); // the loader focused the frame when the visitor opened the panel
}

async function start() {
  document.documentElement.lang = lang === "en" ? "en" : "zh-CN";
  $("input-label").textContent = T.input;
  ui.input.placeholder = T.input;
  ui.send.textContent = T.send;
  ui.restart.textContent = T.restart;
  setStatus(T.connecting, "connecting");
  try {
    kefu = await import("/js/index.js");
    await connect();
    if (identity.conversation) await openConversation();
    else ready();
  } catch (error) {
    console.error("kefu widget:", error);
    setStatus(error instanceof WidgetError ? error.text : T.unavailable, "error");
  } finally {
    ui.main.removeAttribute("aria-busy");
  }
}

ui.form.addEventListener("submit", (event) => {
  event.preventDefault();
  const text = ui.input.value.trim();
  if (!text || ui.input.disabled) return;
  ui.input.value = "";
  send(text);
});
ui.input.addEventListener("keydown", (event) => {
  if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
    event.preventDefault();
    ui.form.requestSubmit();
  }
});
document.addEventListener("keydown", (event) => {
  if (event.key === "Escape") tellParent({ kefu: "close" });
});
ui.restart.addEventListener("click", async () => {
  ui.restart.hidden = true;
  ui.log.replaceChildren();
  identity.clientRef = randomHex(16);
  identity.conversation = null;
  conversationId = null;
  delete ui.main.dataset.conversation;
  saveIdentity();
  ready();
  ui.input.focus();
});
window.addEventListener("message", (event) => {
  if (event.source !== window.parent || (parentOrigin && event.origin !== parentOrigin)) return;
  const data = event.data || {};
  if (data.kefu === "visible") {
    visible = Boolean(data.open);
    if (visible) unread = 0;
  } else if (data.kefu === "focus" && !ui.input.disabled) {
    ui.input.focus();
  }
});

start();
