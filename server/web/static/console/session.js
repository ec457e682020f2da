// Staff sign-in (spec section 16): POST /auth/signin exchanges a name and password for a short-lived session
// credential {app_id, secret, expires_at, role, tenant}. The credential is kept only in sessionStorage (this tab, gone
// when it closes), never in localStorage or a cookie, and is dropped (and revoked with POST /auth/signout) at sign-out.

const SESSION_KEY = "kefu.console.session";

/** Thrown by signIn: `kind` is "failed" (401), "throttled" (429, with `retryAfter` seconds) or "error". */
export class SignInError extends Error {
  constructor(kind, status, retryAfter = 0) {
    super(`sign-in ${kind} (${status})`);
    this.kind = kind;
    this.status = status;
    this.retryAfter = retryAfter;
  }
}

/** The page's connection settings: {ws, suites, server_pins, api} (GET /config.json, spec 15). */
export async function loadConfig() {
  const response = await fetch("/config.json", { cache: "no-store", credentials: "same-origin" });
  if (!response.ok) throw new Error(`/config.json: ${response.status}`);
  return response.json();
}

/** Sign in; the stored session on success. */
export async function signIn(name, password) {
  let response;
  try {
    response = await fetch("/auth/signin", {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ name, password }),
      credentials: "same-origin",
      cache: "no-store",
    });
  } catch (error) {
    throw new SignInError("error", String(error.message || error));
  }
  if (response.status === 401) throw new SignInError("failed", 401);
  if (response.status === 429) {
    throw new SignInError("throttled", 429, Number(response.headers.get("Retry-After")) || 1);
  }
  if (!response.ok) throw new SignInError("error", response.status);
  const session = await response.json();
  if (!session.app_id || !session.secret) throw new SignInError("error", "bad answer");
  sessionStorage.setItem(SESSION_KEY, JSON.stringify(session));
  return session;
}

/** The session of this tab, or null (none, unreadable, or expired). */
export function currentSession() {
  let session = null;
  try {
    session = JSON.parse(sessionStorage.getItem(SESSION_KEY) || "null");
  } catch {
    session = null;
  }
  if (!session || !session.app_id || !session.secret) return null;
  if (session.expires_at && session.expires_at * 1000 <= Date.now()) {
    sessionStorage.removeItem(SESSION_KEY);
    return null;
  }
  return session;
}

/** Revoke the credential at the server (best effort) and forget it here. */
export async function signOut(session) {
  sessionStorage.removeItem(SESSION_KEY);
  if (!session) return;
  try {
    await fetch("/auth/signout", {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ app_id: session.app_id, secret: session.secret }),
      credentials: "same-origin",
      cache: "no-store",
      keepalive: true,
    });
  } catch {
    // the credential still expires at expires_at
  }
}

/** The HTTP API's bearer header for this session (spec 16: Kefu-Session app_id:secret). */
export function bearer(session) {
  return `Kefu-Session ${session.app_id}:${session.secret}`;
}
