// The agent desk: routed conversations (from their messages and the server's events, spec 13.2), the visitor's
// record (CONVERSATION_INFO: attributes, sentiment, routing trace), replies, history (SYNC ranges), search, AI drafts
// (DRAFT_DECISION), transfer and end.
//
// Theory of operation: an agent learns of a conversation routed to it by receiving it: when it becomes the owner it
// is made a member and catches up on the whole history from seq 1 (spec 13.2), starting with the `opened` event.
// The first message of a conversation not yet on screen adds it to the list (and marks
// `kefu:conversation-shown:<id>` for the time-to-screen measurement); its record is asked for at once and refreshed
// on each event that changes it. The staff channel (id | 2^63) carries drafts, whispers and staff-only events; those
// are shown in the conversation they belong to. Ownership follows the events: `assigned`/`transferred` naming this
// agent make the conversation its own, naming another agent make it "transferred away" (read-only). The ids of
// the conversations on screen are kept in sessionStorage so that a reload can show them again (their history is
// then fetched with SYNC).

import { t, onLanguageChange } from "./i18n.js";
import {
  baseConversation, el, formatTime, isDraft, isService, isStaffChannel, metaOf,
  LATEST_SEQ, reasonOf, sentimentOf, shortId, staffChannel,
} from "./util.js";
import { MessageLog } from "./messagelog.js";
import { askTransfer } from "./transfer.js";

const LIST_KEY = "kefu.console.conversations";
const HISTORY_PAGE = 50;
const RESTORE_PAGES = 10;
/** Finished conversations (closed, or transferred away) kept in the list; older ones leave it (search finds them). */
const MAX_FINISHED_SHOWN = 30;

/** One conversation as the desk knows it. */
class Conversation {
  constructor(id) {
    this.id = id;
    this.key = String(id);
    this.state = "waiting";
    this.mine = false;
    this.gone = false;
    this.record = null;
    this.sentiment = null;
    this.drafts = new Map();
    this.decided = new Set();
    this.log = new MessageLog();
    this.agents = new Set();
    this.unread = 0;
  }
}

export class AgentDesk {
  constructor(root, session, client, notify) {
    this.root = root;
    this.me = session.app_id;
    this.client = client;
    this.notify = notify;
    this.conversations = new Map();
    this.selected = null;
    this.$ = (id) => document.getElementById(id);
    this.wire();
    onLanguageChange(() => this.renderAll());
  }

  wire() {
    this.$("reply-form").addEventListener("submit", (e) => {
      e.preventDefault();
      this.reply();
    });
    this.$("reply-input").addEventListener("keydown", (e) => {
      if (e.key === "Enter" && (e.ctrlKey || e.metaKey)) {
        e.preventDefault();
        this.reply();
      }
    });
    this.$("transfer-button").addEventListener("click", () => this.transfer());
    this.$("end-button").addEventListener("click", () => this.end());
    this.$("history-button").addEventListener("click", () => this.loadEarlier());
    this.$("search-form").addEventListener("submit", (e) => {
      e.preventDefault();
      this.search(this.$("search-input").value);
    });
  }

  // --- start -------------------------------------------------------------------------------------------------

  /** Show again the conversations of this tab's earlier page (after a reload). */
  async restore() {
    let ids = [];
    try {
      ids = JSON.parse(sessionStorage.getItem(LIST_KEY) || "[]");
    } catch {
      ids = [];
    }
    for (const text of ids) {
      const id = BigInt(text);
      const conv = this.ensure(id);
      await this.refresh(conv);
      await this.fetchHistory(conv, 0n, LATEST_SEQ);
    }
  }

  remember() {
    const ids = [...this.conversations.values()].filter((c) => c.mine && c.state !== "closed").map((c) => c.key);
    sessionStorage.setItem(LIST_KEY, JSON.stringify(ids));
  }

  // --- from the connection -----------------------------------------------------------------------------------

  /** A delivered message. */
  onMessage(m) {
    const id = BigInt(m.conversationId);
    if (!isService(id)) return;
    const staff = isStaffChannel(id);
    const conv = this.ensure(baseConversation(id));
    if (staff) this.onStaffMessage(conv, m);
    else this.onConversationMessage(conv, m);
    if (conv === this.selected) this.renderSelected();
    else if (!m.isSystemEvent && m.sender !== this.me) conv.unread += 1;
    this.renderItem(conv);
  }

  onConversationMessage(conv, m) {
    if (m.isSystemEvent) this.applyEvent(conv, m.event || {}, false);
    conv.log.add(entryOf(m, this.me, false, conv));
  }

  onStaffMessage(conv, m) {
    if (isDraft(m)) {
      const seq = BigInt(m.seq);
      if (!conv.decided.has(String(seq))) {
        conv.drafts.set(String(seq), { seq, text: m.text, plugin: metaOf(m, "kefu.plugin") });
      }
      return;
    }
    if (m.isSystemEvent) {
      const event = m.event || {};
      this.applyEvent(conv, event, true);
      if (event.event === "assigned" || event.event === "transferred") return; // shown from the conversation itself
    }
    conv.log.add(entryOf(m, this.me, true, conv));
  }

  /** A service event (queue position, sentiment, system). */
  onService(e) {
    if (e.kind !== "sentiment") return;
    const conv = this.conversations.get(String(baseConversation(e.conversationId)));
    if (!conv) return;
    conv.sentiment = e.score ?? e.scorePermille / 1000;
    this.renderItem(conv);
    if (conv === this.selected) this.renderVisitor();
  }

  /** The connection is back: the server forgot this device's status with it. */
  applyEvent(conv, event, staff) {
    switch (event.event) {
      case "assigned":
      case "transferred":
        if (event.agent) conv.agents.add(event.agent);
        if (event.agent === this.me) {
          conv.mine = true;
          conv.gone = false;
          conv.state = event.event;
        } else if (event.agent || staff) {
          // another agent took it, or (staff channel, group transfer) it left this agent for a queue
          if (conv.mine || staff) conv.gone = true;
          conv.mine = false;
          conv.state = event.agent ? event.event : "waiting";
        }
        break;
      case "closed":
        conv.state = "closed";
        break;
      case "tagged":
        if (conv.record) conv.record.tags = [...new Set([...(conv.record.tags || []), ...(event.tags || [])])];
        break;
      case "draft_approve":
      case "draft_edit":
      case "draft_reject":
        conv.decided.add(String(event.draft_seq));
        conv.drafts.delete(String(event.draft_seq));
        break;
      default:
        break;
    }
    if (["assigned", "transferred", "closed", "overflowed", "tagged"].includes(event.event)) {
      this.refreshSoon(conv);
    }
    this.remember();
  }

  // --- the list ----------------------------------------------------------------------------------------------

  /** The conversation `id`, added to the screen if new. */
  ensure(id) {
    const key = String(id);
    let conv = this.conversations.get(key);
    if (conv) return conv;
    conv = new Conversation(id);
    this.conversations.set(key, conv);
    const item = el("li", { class: "conversation-item", dataset: { testid: "conversation-item", conversationId: key } });
    const button = el("button", { type: "button", class: "conversation-open", on: { click: () => this.select(conv) } });
    item.append(button);
    conv.item = item;
    this.$("conversation-list").append(item);
    this.$("no-conversations").hidden = true;
    this.renderItem(conv);
    performance.mark(`kefu:conversation-shown:${key}`);
    this.refreshSoon(conv);
    if (!this.selected || this.selected.state === "closed" || this.selected.gone) this.select(conv, { focus: false });
    this.prune();
    return conv;
  }

  /** Drop the oldest finished conversations beyond MAX_FINISHED_SHOWN (never the selected one). */
  prune() {
    const finished = [...this.conversations.values()].filter((c) => (c.state === "closed" || c.gone) && c !== this.selected);
    for (const conv of finished.slice(0, Math.max(0, finished.length - MAX_FINISHED_SHOWN))) {
      conv.item.remove();
      this.conversations.delete(conv.key);
    }
  }

  renderItem(conv) {
    const button = conv.item.querySelector("button");
    const who = (conv.record && (conv.record.customer || conv.record.visitor)) || `#${shortId(conv.id)}`;
    const s = sentimentOf(conv.sentiment ?? (conv.record && conv.record.sentiment));
    const parts = [
      el("span", { class: "conv-who", text: who }),
      el("span", { class: `badge state-${stateClass(conv)}`, dataset: { testid: "conversation-state" }, text: stateText(conv) }),
      s ? el("span", { class: `sentiment-dot${s.negative ? " negative" : ""}`, text: `${s.percent}%` }) : null,
      conv.unread ? el("span", { class: "unread", dataset: { testid: "unread" }, text: String(conv.unread) }) : null,
    ];
    button.replaceChildren(...parts.filter(Boolean));
    button.setAttribute("aria-current", conv === this.selected ? "true" : "false");
    conv.item.dataset.state = stateClass(conv);
    const label = [who, stateText(conv), conv.unread ? `${conv.unread}` : ""].filter(Boolean).join(", ");
    button.setAttribute("aria-label", label);
  }

  select(conv, { focus = true } = {}) {
    const previous = this.selected;
    this.selected = conv;
    conv.unread = 0;
    if (previous) this.renderItem(previous);
    this.renderItem(conv);
    this.renderSelected(true);
    if (focus) this.$("reply-input").focus();
  }

  /** Select the next (+1) or previous (-1) conversation of the list. */
  step(delta) {
    const all = [...this.conversations.values()];
    if (!all.length) return;
    const at = all.indexOf(this.selected);
    const next = all[(at + delta + all.length) % all.length];
    this.select(next, { focus: false });
    next.item.querySelector("button").focus();
  }

  // --- the selected conversation -----------------------------------------------------------------------------

  renderAll() {
    for (const conv of this.conversations.values()) this.renderItem(conv);
    if (this.selected) this.renderSelected(true);
  }

  renderSelected(switched = false) {
    const conv = this.selected;
    if (!conv) return;
    const title = this.$("chat-title");
    title.removeAttribute("data-i18n");
    title.textContent = `${(conv.record && (conv.record.customer || conv.record.visitor)) || t("visitor")} · #${shortId(conv.id)}`;
    title.dataset.conversationId = conv.key;
    const state = this.$("chat-state");
    state.textContent = stateText(conv);
    state.className = `badge state-${stateClass(conv)}`;
    const active = conv.mine && !conv.gone && conv.state !== "closed";
    this.$("reply-input").disabled = !active;
    this.$("reply-send").disabled = !active;
    this.$("transfer-button").disabled = !active;
    this.$("end-button").disabled = !active;
    this.$("history-button").hidden = !(conv.log.firstSeq() > 1n);
    const list = this.$("message-log");
    if (switched || list.dataset.conversationId !== conv.key) {
      list.dataset.conversationId = conv.key;
      conv.log.mount(list, this.me);
    } else {
      conv.log.sync(list, this.me);
    }
    this.renderDrafts();
    this.renderVisitor();
  }

  renderDrafts() {
    const conv = this.selected;
    const box = this.$("drafts");
    const list = this.$("draft-list");
    const pending = conv ? [...conv.drafts.values()] : [];
    box.hidden = pending.length === 0 || !conv.mine;
    const keep = new Set(pending.map((d) => String(d.seq)));
    for (const item of [...list.children]) if (!keep.has(item.dataset.draftSeq)) item.remove();
    for (const draft of pending) {
      if (list.querySelector(`[data-draft-seq="${draft.seq}"]`)) continue;
      list.append(this.draftItem(conv, draft));
    }
  }

  draftItem(conv, draft) {
    const text = el("p", { class: "draft-text", dataset: { testid: "draft-text" }, text: draft.text });
    const editor = el("textarea", { class: "draft-editor", dataset: { testid: "draft-editor" }, rows: "3", hidden: true,
      "aria-label": t("edit") });
    editor.value = draft.text;
    const send = el("button", { type: "button", hidden: true, dataset: { testid: "draft-send-edited" },
      text: t("send_edited"), on: { click: () => this.decide(conv, draft, "edit", editor.value) } });
    const item = el("li", { class: "draft", dataset: { testid: "draft", draftSeq: String(draft.seq) } },
      el("span", { class: "draft-from", text: t("draft_from", { plugin: draft.plugin || "AI" }) }),
      text, editor,
      el("div", { class: "draft-buttons" },
        el("button", { type: "button", dataset: { testid: "draft-approve" }, "aria-keyshortcuts": "Alt+A",
          text: t("approve"), on: { click: () => this.decide(conv, draft, "approve") } }),
        el("button", { type: "button", dataset: { testid: "draft-edit" }, "aria-keyshortcuts": "Alt+E", text: t("edit"),
          on: { click: () => { editor.hidden = false; send.hidden = false; text.hidden = true; editor.focus(); } } }),
        send,
        el("button", { type: "button", dataset: { testid: "draft-reject" }, "aria-keyshortcuts": "Alt+X",
          text: t("reject"), on: { click: () => this.decide(conv, draft, "reject") } }),
      ),
    );
    editor.addEventListener("keydown", (e) => {
      if (e.key === "Enter" && (e.ctrlKey || e.metaKey)) {
        e.preventDefault();
        this.decide(conv, draft, "edit", editor.value);
      }
    });
    return item;
  }

  renderVisitor() {
    const conv = this.selected;
    const record = (conv && conv.record) || {};
    const facts = this.$("visitor-facts");
    const rows = [
      [t("visitor"), record.customer ? `${record.customer} (${record.visitor})` : record.visitor],
      [t("group"), record.group],
      [t("agent"), record.owner],
      [t("tags"), (record.tags || []).join(", ")],
      [t("opened_at"), record.created_ms ? formatTime(record.created_ms) : ""],
    ];
    facts.replaceChildren(...rows.filter(([, v]) => v).flatMap(([k, v]) => [el("dt", { text: k }), el("dd", { text: v })]));
    const s = sentimentOf(conv && (conv.sentiment ?? record.sentiment));
    const sentiment = this.$("sentiment");
    sentiment.textContent = s ? `${s.percent}%` : "–";
    sentiment.dataset.negative = s && s.negative ? "true" : "false";
    const attributes = Object.entries(record.attributes || {});
    this.$("attributes").replaceChildren(...attributes.flatMap(([k, v]) => [el("dt", { text: k }), el("dd", { text: String(v) })]));
    this.$("trace").replaceChildren(...(record.trace || []).map((entry) => el("li", { text: traceText(entry) })));
  }

  // --- requests ----------------------------------------------------------------------------------------------

  refreshSoon(conv) {
    if (conv.refreshing) {
      conv.refreshAgain = true;
      return;
    }
    conv.refreshing = true;
    this.refresh(conv).finally(() => {
      conv.refreshing = false;
      if (conv.refreshAgain) {
        conv.refreshAgain = false;
        this.refreshSoon(conv);
      }
    });
  }

  /** Ask for the conversation's record (CONVERSATION_INFO). */
  async refresh(conv) {
    try {
      const record = await this.client.service.info(conv.id);
      conv.record = record;
      if (record.state) conv.state = String(record.state);
      if (record.owner === this.me) {
        conv.mine = true;
        conv.gone = false;
      } else if (conv.mine) {
        conv.mine = false;
        conv.gone = true;
      }
    } catch (error) {
      conv.infoError = reasonOf(error);
    }
    this.renderItem(conv);
    if (conv === this.selected) this.renderSelected();
    this.remember();
  }

  async reply() {
    const conv = this.selected;
    const input = this.$("reply-input");
    const text = input.value.trim();
    if (!conv || !text || input.disabled) return;
    input.value = "";
    try {
      const receipt = await this.client.send(conv.id, text);
      conv.log.add({ channel: 0, seq: BigInt(receipt.seq), sender: this.me, text, ts: receipt.timestampMs, kind: "me" });
      if (conv === this.selected) this.renderSelected();
    } catch (error) {
      input.value = text;
      this.notify(t("refused", { reason: reasonOf(error) }));
    }
  }

  async decide(conv, draft, action, edited = "") {
    try {
      const outcome = await this.client.service.decideDraft(conv.id, draft.seq, action, action === "edit" ? edited : undefined);
      conv.decided.add(String(draft.seq));
      conv.drafts.delete(String(draft.seq));
      if (action !== "reject" && outcome.seq) {
        const text = action === "edit" ? edited : draft.text;
        conv.log.add({ channel: 0, seq: BigInt(outcome.seq), sender: this.me, text, ts: Date.now(), kind: "me" });
      }
      if (conv === this.selected) this.renderSelected();
      this.$("reply-input").focus();
    } catch (error) {
      this.notify(t("refused", { reason: reasonOf(error) }));
    }
  }

  /** The newest pending draft of the selected conversation, for the shortcuts. */
  newestDraft() {
    const conv = this.selected;
    if (!conv || !conv.mine) return null;
    const drafts = [...conv.drafts.values()];
    return drafts.length ? drafts[drafts.length - 1] : null;
  }

  shortcutDraft(action) {
    const draft = this.newestDraft();
    if (!draft) return;
    if (action === "edit") {
      const item = this.$("draft-list").querySelector(`[data-draft-seq="${draft.seq}"]`);
      item && item.querySelector('[data-testid="draft-edit"]').click();
    } else {
      this.decide(this.selected, draft, action);
    }
  }

  async transfer() {
    const conv = this.selected;
    if (!conv || this.$("transfer-button").disabled) return;
    const done = await askTransfer(this.client, conv.id, this.$("transfer-button"));
    if (done) {
      conv.mine = false;
      conv.gone = true;
      this.notify(t("transferred_ok"));
      this.refreshSoon(conv);
      this.renderItem(conv);
      this.renderSelected();
    }
  }

  async end() {
    const conv = this.selected;
    if (!conv || this.$("end-button").disabled) return;
    try {
      await this.client.service.end(conv.id, "ended by the agent");
      conv.state = "closed";
      this.notify(t("ended"));
      this.renderItem(conv);
      this.renderSelected();
      this.remember();
    } catch (error) {
      this.notify(t("refused", { reason: reasonOf(error) }));
    }
  }

  /** History: the messages before the first one shown (SYNC ranges, spec 4.5). */
  async loadEarlier() {
    const conv = this.selected;
    if (!conv) return;
    const first = conv.log.firstSeq();
    if (first <= 1n) return;
    const after = first - 1n > BigInt(HISTORY_PAGE) ? first - 1n - BigInt(HISTORY_PAGE) : 0n;
    await this.fetchHistory(conv, after, first - 1n, 1);
    this.renderSelected();
  }

  /** Fetch messages afterSeq < seq <= untilSeq (LATEST_SEQ: to the last), up to `pages` pages, into the conversation. */
  async fetchHistory(conv, afterSeq, untilSeq, pages = RESTORE_PAGES) {
    let after = afterSeq;
    try {
      for (let page = 0; page < pages; page += 1) {
        const result = await this.client.sync({ conversationId: conv.id, afterSeq: after, untilSeq, limit: HISTORY_PAGE });
        for (const m of result.messages) {
          if (m.isSystemEvent) this.applyEvent(conv, m.event || {}, false);
          conv.log.add(entryOf(m, this.me, false, conv));
        }
        if (!result.more || !result.messages.length) break;
        after = BigInt(result.messages[result.messages.length - 1].seq);
      }
      if (conv.mine || conv.record?.owner === this.me) await this.fetchStaff(conv);
    } catch (error) {
      this.notify(t("failed", { reason: reasonOf(error) }));
    }
    if (conv === this.selected) this.renderSelected();
  }

  /** The staff channel's history (drafts still pending, whispers), after a reload. */
  async fetchStaff(conv) {
    const result = await this.client.sync({ conversationId: staffChannel(conv.id), afterSeq: 0n, untilSeq: LATEST_SEQ, limit: 0 });
    for (const m of result.messages) this.onStaffMessage(conv, m);
  }

  async search(query) {
    const results = this.$("search-results");
    if (!query.trim()) {
      results.replaceChildren();
      return;
    }
    try {
      const hits = await this.client.service.search(query.trim(), { limit: 20 });
      results.replaceChildren(
        ...hits.map((hit) =>
          el("li", { dataset: { testid: "search-hit", conversationId: String(hit.conversationId), seq: String(hit.seq) } },
            el("button", { type: "button", on: { click: () => this.openHit(hit) } },
              el("span", { class: "hit-meta", text: `#${shortId(hit.conversationId)} · ${formatTime(hit.timestampMs)}` }),
              el("span", { class: "hit-snippet", text: hit.snippet }),
            ),
          ),
        ),
      );
      if (!hits.length) results.append(el("li", { class: "empty", text: t("search_none") }));
    } catch (error) {
      results.replaceChildren(el("li", { class: "error", text: t("refused", { reason: reasonOf(error) }) }));
    }
  }

  /** Show the conversation of a search hit with its history up to the hit and after. */
  async openHit(hit) {
    const id = BigInt(hit.conversationId);
    const known = this.conversations.get(String(id));
    const conv = known || this.ensure(id);
    this.select(conv, { focus: false });
    const seq = BigInt(hit.seq);
    const after = seq > BigInt(HISTORY_PAGE) ? seq - BigInt(HISTORY_PAGE) : 0n;
    await this.fetchHistory(conv, after, LATEST_SEQ, 2);
    const line = this.$("message-log").querySelector(`[data-channel="0"][data-seq="${seq}"]`);
    if (line) {
      line.classList.add("hit");
      line.scrollIntoView({ block: "center" });
    }
  }
}

// --- helpers ---------------------------------------------------------------------------------------------------

/** A log entry of a delivered message. */
function entryOf(m, me, staff, conv) {
  let kind = "visitor";
  if (m.isSystemEvent) kind = "event";
  else if (m.sender === me) kind = "me";
  else if (staff) kind = "whisper";
  else if (m.sender === "#kefu") kind = "bot";
  else if (conv.agents.has(m.sender)) kind = "agent"; // an earlier owner's message
  return {
    channel: staff ? 1 : 0,
    seq: BigInt(m.seq),
    sender: m.sender,
    text: m.text,
    event: m.event,
    ts: Number(m.timestampMs ?? Date.now()),
    kind,
  };
}

function stateClass(conv) {
  if (conv.gone && conv.state !== "closed") return "gone";
  return conv.state;
}

function stateText(conv) {
  return t(`state_${stateClass(conv)}`);
}


/** One routing-trace entry as a line: its step, then its fields. */
function traceText(entry) {
  if (!entry || typeof entry !== "object") return String(entry);
  const { step, ...rest } = entry;
  const json = (v) => JSON.stringify(v, (_, x) => (typeof x === "bigint" ? x.toString() : x));
  const fields = Object.entries(rest).map(([k, v]) => `${k}=${v !== null && typeof v === "object" ? json(v) : v}`);
  return `${step || "?"}: ${fields.join(", ")}`;
}
