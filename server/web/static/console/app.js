// The console's entry: language, sign-in, the kefu connection, then the agent desk or the supervisor's wall by the
// role the sign-in returned, and the keyboard shortcuts (listed in the page's help dialog and docs/console.md).

import { language, setLanguage, t, translate } from "./i18n.js";
import { currentSession, loadConfig, signIn, signOut, SignInError } from "./session.js";
import { connect } from "./connection.js";
import { AgentDesk } from "./agent.js";
import { Wall } from "./wall.js";
import { reasonOf } from "./util.js";

const STATUS_KEY = "kefu.console.status";
const $ = (id) => document.getElementById(id);
const app = { config: null, session: null, client: null, desk: null, wall: null };

function notify(text) {
  const banner = document.querySelector('[data-testid="banner"]');
  banner.textContent = text;
  banner.hidden = false;
  clearTimeout(notify.timer);
  notify.timer = setTimeout(() => {
    banner.hidden = true;
  }, 8000);
}

function showConnection(state, error) {
  const box = document.querySelector('[data-testid="connection-state"]');
  box.dataset.state = state;
  const key = { connecting: "conn_connecting", connected: "conn_connected" }[state] || "conn_disconnected";
  box.textContent = t(key);
  if (state === "connected" && app.desk) applyStatus(); // a new connection: the server's status is this device's
  if (state === "closed" && error && ["AuthFailed", "CredentialsRefused"].includes(error.name)) expired();
  else if (state === "closed" && error) notify(t("failed", { reason: reasonOf(error) }));
}

// --- sign-in and out -----------------------------------------------------------------------------------------

function showSignIn(message = "") {
  $("signin").hidden = false;
  $("agent").hidden = true;
  $("wall").hidden = true;
  const error = document.querySelector('[data-testid="signin-error"]');
  error.textContent = message;
  error.hidden = !message;
  $("signin-name").focus();
}

async function onSignIn(event) {
  event.preventDefault();
  const name = $("signin-name").value.trim();
  const password = $("signin-password").value;
  const error = document.querySelector('[data-testid="signin-error"]');
  if (!name || !password) {
    (name ? $("signin-password") : $("signin-name")).focus();
    return;
  }
  $("signin-submit").disabled = true;
  try {
    const session = await signIn(name, password);
    $("signin-password").value = "";
    await start(session);
  } catch (e) {
    let text = t("sign_in_error", { status: reasonOf(e) });
    if (e instanceof SignInError && e.kind === "failed") text = t("sign_in_failed");
    if (e instanceof SignInError && e.kind === "throttled") text = t("sign_in_throttled", { seconds: e.retryAfter });
    error.textContent = text;
    error.hidden = false;
    $("signin-password").focus();
  } finally {
    $("signin-submit").disabled = false;
  }
}

async function onSignOut() {
  const session = app.session;
  if (app.wall) app.wall.stop();
  if (app.client) await app.client.close().catch(() => {});
  sessionStorage.clear(); // the credential and everything kept for this tab's session
  await signOut(session);
  location.reload();
}

function expired() {
  sessionStorage.clear();
  if (app.wall) app.wall.stop();
  if (app.client) app.client.close().catch(() => {});
  app.client = null;
  showSignIn(t("session_expired"));
}

// --- the desk or the wall ------------------------------------------------------------------------------------

async function start(session) {
  app.session = session;
  $("signin").hidden = true;
  const who = document.querySelector('[data-testid="who"]');
  who.textContent = `${session.app_id} · ${session.tenant || ""}`;
  who.hidden = false;
  $("signout-button").hidden = false;
  const handlers = {
    message: (m) => {
      app.desk?.onMessage(m);
      app.wall?.onMessage(m);
    },
    service: (e) => app.desk?.onService(e),
    state: showConnection,
  };
  try {
    app.client = await connect(session, app.config, handlers);
  } catch (error) {
    if (error && (error.name === "AuthFailed" || error.name === "CredentialsRefused")) {
      expired();
      return;
    }
    notify(t("failed", { reason: reasonOf(error) }));
    showConnection("closed", null);
    return;
  }
  if (session.role === "supervisor") {
    $("wall").hidden = false;
    app.wall = new Wall($("wall"), session, app.client, app.config, notify, expired);
    app.wall.start();
  } else {
    $("agent").hidden = false;
    $("status-picker").hidden = false;
    app.desk = new AgentDesk($("agent"), session, app.client, notify);
    $("status-select").value = sessionStorage.getItem(STATUS_KEY) || "online";
    await applyStatus();
    await app.desk.restore();
  }
}

async function applyStatus() {
  if (!app.client || !app.desk) return;
  const status = $("status-select").value;
  sessionStorage.setItem(STATUS_KEY, status);
  try {
    await app.client.service.setStatus(status);
    $("status-select").dataset.applied = status;
  } catch (error) {
    notify(t("refused", { reason: reasonOf(error) }));
  }
}

// --- keyboard ------------------------------------------------------------------------------------------------

function typing(target) {
  return target instanceof HTMLElement && (target.isContentEditable || ["INPUT", "TEXTAREA", "SELECT"].includes(target.tagName));
}

function onKey(e) {
  if (document.querySelector("dialog[open]")) return; // a dialog handles its own keys (Esc closes it)
  if (e.key === "?" && !typing(e.target) && !e.altKey && !e.ctrlKey) {
    e.preventDefault();
    $("help-dialog").showModal();
    return;
  }
  if (!e.altKey || e.ctrlKey || e.metaKey) return;
  const desk = app.desk;
  const code = e.code;
  const actions = {
    KeyR: () => desk && $("reply-input").focus(),
    KeyA: () => desk && desk.shortcutDraft("approve"),
    KeyE: () => desk && desk.shortcutDraft("edit"),
    KeyX: () => desk && desk.shortcutDraft("reject"),
    KeyT: () => desk && desk.transfer(),
    KeyK: () => desk && $("search-input").focus(),
    ArrowDown: () => desk && desk.step(1),
    ArrowUp: () => desk && desk.step(-1),
    KeyW: () => app.wall && app.wall.watched && $("whisper-input").focus(),
  };
  const action = actions[code];
  if (!action) return;
  e.preventDefault();
  action();
}

// --- boot ----------------------------------------------------------------------------------------------------

async function boot() {
  translate();
  $("language-select").value = language();
  $("language-select").addEventListener("change", (e) => setLanguage(e.target.value));
  $("help-button").addEventListener("click", () => $("help-dialog").showModal());
  $("signout-button").addEventListener("click", onSignOut);
  $("signin-form").addEventListener("submit", onSignIn);
  $("status-select").addEventListener("change", applyStatus);
  document.addEventListener("keydown", onKey);
  try {
    app.config = await loadConfig();
  } catch (error) {
    notify(t("failed", { reason: reasonOf(error) }));
    return;
  }
  const session = currentSession();
  if (session) await start(session);
  else showSignIn();
  document.body.dataset.ready = "true";
}

boot();
