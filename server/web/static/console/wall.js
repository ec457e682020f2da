// The supervisor's live wall: per tenant and group, waiting visitors and the longest wait; agents by state and load;
// conversations with negative sentiment, with watch and whisper from there (spec 13.7).
//
// The figures come from the HTTP API's GET /v1/wall (its origin is /config.json's "api"), authenticated with the
// staff session as a bearer, polled every POLL_MS: the same DeskFigures the kefu_service_* metrics are made of, so
// the wall and /metrics agree. Watching uses the kefu connection: WATCH makes the supervisor a member of the
// conversation and of its staff channel; a whisper is a message sent to the staff channel (id | 2^63), which the
// visitor is never a member of.

import { t, onLanguageChange } from "./i18n.js";
import { MessageLog } from "./messagelog.js";
import { askTransfer } from "./transfer.js";
import { bearer } from "./session.js";
import {
  baseConversation, el, formatDuration, formatTime, isDraft, isService, isStaffChannel,
  LATEST_SEQ, parseConversationId, reasonOf, sentimentOf, shortId, staffChannel,
} from "./util.js";

const POLL_MS = 1500;
const STATES = ["online", "busy", "away", "offline"];

export class Wall {
  constructor(root, session, client, config, notify, expired) {
    this.root = root;
    this.session = session;
    this.client = client;
    this.api = config.api ? String(config.api).replace(/\/+$/, "") : null;
    this.notify = notify;
    this.expired = expired;
    this.watched = null;
    this.figures = null;
    this.timer = null;
    this.$ = (id) => document.getElementById(id);
    this.wire();
    onLanguageChange(() => {
      if (this.figures) this.render(this.figures);
      if (this.watched) this.renderWatched(true);
    });
  }

  wire() {
    this.$("watch-form").addEventListener("submit", (e) => {
      e.preventDefault();
      const id = parseConversationId(this.$("watch-input").value);
      if (id === null) {
        this.$("watch-input").focus();
        return;
      }
      this.watch(id);
    });
    this.$("whisper-form").addEventListener("submit", (e) => {
      e.preventDefault();
      this.whisper();
    });
    this.$("whisper-input").addEventListener("keydown", (e) => {
      if (e.key === "Enter" && (e.ctrlKey || e.metaKey)) {
        e.preventDefault();
        this.whisper();
      }
    });
    this.$("unwatch-button").addEventListener("click", () => this.unwatch());
    this.$("sup-transfer-button").addEventListener("click", () => this.transfer());
    this.$("sup-end-button").addEventListener("click", () => this.end());
  }

  // --- polling the figures -----------------------------------------------------------------------------------

  start() {
    if (!this.api) {
      this.showError(t("wall_unavailable", { reason: "no API configured ([api] enabled = false)" }));
      return;
    }
    this.poll();
  }

  stop() {
    clearTimeout(this.timer);
    this.timer = null;
    this.stopped = true;
  }

  async poll() {
    if (this.stopped) return;
    try {
      const response = await fetch(`${this.api}/v1/wall`, {
        headers: { Authorization: bearer(this.session), Accept: "application/json" },
        cache: "no-store",
        credentials: "omit",
      });
      if (response.status === 401) {
        this.expired();
        return;
      }
      if (!response.ok) throw new Error(`HTTP ${response.status}`);
      this.figures = normalise(await response.json());
      this.figures.receivedAt = Date.now();
      this.render(this.figures);
      this.$("wall-error").hidden = true;
    } catch (error) {
      this.showError(t("wall_unavailable", { reason: reasonOf(error) }));
    }
    if (!this.stopped) this.timer = setTimeout(() => this.poll(), POLL_MS);
  }

  showError(text) {
    const box = this.$("wall-error");
    box.textContent = text;
    box.hidden = false;
  }

  render(f) {
    const cell = (text, props = {}) => el("td", { ...props, text: String(text) });
    this.$("wall-groups").replaceChildren(
      ...f.groups.map((g) =>
        el("tr", { dataset: { testid: "wall-group-row", tenant: g.tenant, group: g.group }, class: g.waiting ? "busy" : "" },
          el("th", { scope: "row", text: g.tenant }),
          cell(g.group),
          cell(g.waiting, { dataset: { testid: "wall-waiting", value: String(g.waiting) } }),
          cell(g.longestWait ? formatDuration(g.longestWait, t) : "–",
            { dataset: { testid: "wall-longest-wait", value: String(g.longestWait) } }),
        ),
      ),
    );
    this.$("wall-agents").replaceChildren(
      ...f.tenants.map((tenant) =>
        el("tr", { dataset: { testid: "wall-agent-row", tenant } },
          el("th", { scope: "row", text: tenant }),
          ...STATES.map((s) => cell(f.byState[tenant]?.[s] ?? 0, { dataset: { state: s, testid: `wall-agents-${s}` } })),
          cell(loadText(f.agents.filter((a) => a.tenant === tenant)), { dataset: { testid: "wall-load" } }),
        ),
      ),
    );
    this.$("wall-agent-loads").replaceChildren(
      ...f.agents.map((a) =>
        el("tr", { dataset: { testid: "wall-agent", agent: a.name, tenant: a.tenant } },
          el("th", { scope: "row", text: a.name }),
          cell(t(`status_${a.state}`)),
          cell(a.capacity ? `${a.load}/${a.capacity}` : String(a.load)),
        ),
      ),
    );
    this.$("wall-negative").replaceChildren(
      ...f.negative.map((n) => {
        const s = sentimentOf(n.sentiment);
        return el("tr", { dataset: { testid: "wall-negative-row", conversationId: n.id } },
          el("th", { scope: "row", text: `#${shortId(BigInt(n.id))}` }),
          cell(n.group),
          cell(n.owner || "–"),
          cell(s ? `${s.percent}%` : "–"),
          el("td", {},
            el("button", { type: "button", dataset: { testid: "wall-watch" }, text: t("watch"),
              "aria-label": `${t("watch")} #${shortId(BigInt(n.id))}`, on: { click: () => this.watch(BigInt(n.id)) } }),
          ),
        );
      }),
    );
    if (!f.negative.length) {
      this.$("wall-negative").append(el("tr", {}, el("td", { colspan: "5", class: "empty", text: t("none") })));
    }
    this.$("wall-updated").textContent = t("wall_updated", { time: formatTime(f.receivedAt) });
  }

  // --- watching and whispering -------------------------------------------------------------------------------

  async watch(id) {
    if (this.watched && this.watched.id === id) {
      this.$("whisper-input").focus();
      return;
    }
    try {
      await this.client.service.watch(id, true);
    } catch (error) {
      this.notify(t("refused", { reason: reasonOf(error) }));
      return;
    }
    if (this.watched) this.client.service.watch(this.watched.id, false).catch(() => {});
    this.watched = { id, key: String(id), log: new MessageLog(), agents: new Set() };
    this.$("watched").hidden = false;
    this.renderWatched(true);
    this.$("whisper-input").focus();
    await this.history(this.watched);
  }

  async history(watched) {
    try {
      for (const channel of [watched.id, staffChannel(watched.id)]) {
        const result = await this.client.sync({ conversationId: channel, afterSeq: 0n, untilSeq: LATEST_SEQ, limit: 0 });
        for (const m of result.messages) this.add(watched, m);
      }
    } catch (error) {
      this.notify(t("failed", { reason: reasonOf(error) }));
    }
    if (this.watched === watched) this.renderWatched();
  }

  async unwatch() {
    const watched = this.watched;
    if (!watched) return;
    this.watched = null;
    this.$("watched").hidden = true;
    try {
      await this.client.service.watch(watched.id, false);
    } catch (error) {
      this.notify(t("refused", { reason: reasonOf(error) }));
    }
    this.$("watch-input").focus();
  }

  async whisper() {
    const watched = this.watched;
    const input = this.$("whisper-input");
    const text = input.value.trim();
    if (!watched || !text) return;
    input.value = "";
    try {
      const receipt = await this.client.send(staffChannel(watched.id), text);
      watched.log.add({ channel: 1, seq: BigInt(receipt.seq), sender: this.session.app_id, text,
        ts: receipt.timestampMs, kind: "whisper" });
      this.renderWatched();
    } catch (error) {
      input.value = text;
      this.notify(t("refused", { reason: reasonOf(error) }));
    }
  }

  async transfer() {
    if (!this.watched) return;
    if (await askTransfer(this.client, this.watched.id, this.$("sup-transfer-button"))) this.notify(t("transferred_ok"));
  }

  async end() {
    if (!this.watched) return;
    try {
      await this.client.service.end(this.watched.id, "ended by a supervisor");
      this.notify(t("ended"));
    } catch (error) {
      this.notify(t("refused", { reason: reasonOf(error) }));
    }
  }

  /** A delivered message: shown if it belongs to the watched conversation. */
  onMessage(m) {
    const id = BigInt(m.conversationId);
    if (!isService(id) || !this.watched || baseConversation(id) !== this.watched.id) return;
    this.add(this.watched, m);
    this.renderWatched();
  }

  add(watched, m) {
    const staff = isStaffChannel(BigInt(m.conversationId));
    const event = m.event;
    if (event && (event.event === "assigned" || event.event === "transferred")) {
      if (event.agent) watched.agents.add(event.agent);
      if (staff) return; // the same event is shown from the conversation itself
    }
    let kind = "visitor";
    if (event) kind = "event";
    else if (isDraft(m)) kind = "draft";
    else if (staff) kind = "whisper";
    else if (watched.agents.has(m.sender)) kind = "agent";
    else if (m.sender === "#kefu") kind = "bot";
    watched.log.add({ channel: staff ? 1 : 0, seq: BigInt(m.seq), sender: m.sender, text: m.text,
      event, ts: Number(m.timestampMs ?? Date.now()), kind });
  }

  renderWatched(remount = false) {
    const watched = this.watched;
    if (!watched) return;
    const title = this.$("watched-title");
    title.textContent = t("watching", { id: `#${shortId(watched.id)}` });
    title.dataset.conversationId = watched.key;
    const list = this.$("watched-log");
    if (remount || list.dataset.conversationId !== watched.key) {
      list.dataset.conversationId = watched.key;
      watched.log.mount(list, this.session.app_id);
    } else {
      watched.log.sync(list, this.session.app_id);
    }
  }
}

// --- the API's answer --------------------------------------------------------------------------------------------

/** GET /v1/wall's JSON in one shape: {tenants, groups, agents, byState, negative} (see H5 notes / spec 17). */
export function normalise(raw) {
  const data = raw && typeof raw === "object" ? raw : {};
  const nested = data.tenants && !Array.isArray(data.tenants) ? data.tenants : data.by_tenant;
  const flat = (key) => {
    if (Array.isArray(data[key])) return data[key];
    if (nested && typeof nested === "object") {
      return Object.entries(nested).flatMap(([tenant, v]) => (Array.isArray(v?.[key]) ? v[key] : []).map((x) => ({ tenant, ...x })));
    }
    if (Array.isArray(data.tenants)) {
      return data.tenants.flatMap((v) => (Array.isArray(v?.[key]) ? v[key] : []).map((x) => ({ tenant: v.tenant ?? v.name, ...x })));
    }
    return [];
  };
  const groups = flat("groups").map((g) => ({
    tenant: String(g.tenant ?? ""),
    group: String(g.group ?? g.name ?? ""),
    waiting: Number(g.waiting ?? g.waiting_conversations ?? 0),
    longestWait: Number(g.longest_wait_s ?? g.longest_wait_seconds ?? g.longest_wait ?? 0),
  }));
  groups.sort((a, b) => a.tenant.localeCompare(b.tenant) || a.group.localeCompare(b.group));
  const agents = flat("agents").filter((a) => a && typeof a === "object" && (a.name || a.agent)).map((a) => ({
    tenant: String(a.tenant ?? ""),
    name: String(a.name ?? a.agent),
    state: String(a.state ?? a.status ?? "offline"),
    load: Number(a.load ?? a.conversations ?? 0),
    capacity: Number(a.capacity ?? a.max_concurrent ?? 0),
  }));
  agents.sort((a, b) => a.tenant.localeCompare(b.tenant) || a.name.localeCompare(b.name));
  const byState = {};
  const states = data.agents_by_state ?? data.agent_states;
  if (Array.isArray(states)) {
    for (const s of states) (byState[s.tenant] ??= {})[s.state] = Number(s.count ?? s.agents ?? 0);
  } else if (states && typeof states === "object") {
    for (const [tenant, counts] of Object.entries(states)) byState[tenant] = { ...counts };
  } else if (nested && typeof nested === "object") {
    for (const [tenant, v] of Object.entries(nested)) if (v?.agents_by_state) byState[tenant] = { ...v.agents_by_state };
  } else {
    for (const a of agents) (byState[a.tenant] ??= {})[a.state] = (byState[a.tenant][a.state] ?? 0) + 1;
  }
  const negative = flat("negative").concat(flat("negative_sentiment")).map((n) => ({
    id: String(n.conversation_id ?? n.id),
    tenant: String(n.tenant ?? ""),
    group: String(n.group ?? ""),
    owner: String(n.owner ?? n.agent ?? ""),
    sentiment: n.sentiment ?? n.score,
  }));
  const tenants = [...new Set([...groups.map((g) => g.tenant), ...Object.keys(byState), ...agents.map((a) => a.tenant)])].sort();
  return { tenants, groups, agents, byState, negative };
}

/** "3/8 (38%)": the tenant's conversations against its agents' capacity. */
function loadText(agents) {
  const load = agents.reduce((n, a) => n + a.load, 0);
  const capacity = agents.reduce((n, a) => n + a.capacity, 0);
  if (!capacity) return String(load);
  return `${load}/${capacity} (${Math.round((100 * load) / capacity)}%)`;
}
