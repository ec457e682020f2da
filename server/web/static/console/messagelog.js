// The messages of one conversation on screen: its own messages (channel 0, by seq) and its staff channel's
// (channel 1: whispers, staff events), merged by time. Each entry is shown once however often it is delivered
// (a redelivery after a reconnect, a SYNC of history already seen).

import { t } from "./i18n.js";
import { el, formatTime } from "./util.js";

/** The sort key of an entry: time, then channel, then seq. */
function before(a, b) {
  if (a.ts !== b.ts) return a.ts < b.ts;
  if (a.channel !== b.channel) return a.channel < b.channel;
  return a.seq < b.seq;
}

export class MessageLog {
  constructor() {
    this.entries = [];
    this.keys = new Set();
  }

  /** Add an entry {channel, seq, sender, text, ts, kind, event?}; false if it was there already. */
  add(entry) {
    const key = `${entry.channel}:${entry.seq}`;
    if (this.keys.has(key)) return false;
    this.keys.add(key);
    let at = this.entries.length;
    while (at > 0 && before(entry, this.entries[at - 1])) at -= 1;
    this.entries.splice(at, 0, entry);
    return true;
  }

  /** The lowest seq of the conversation's own messages shown (0n when none). */
  firstSeq() {
    let first = 0n;
    for (const e of this.entries) if (e.channel === 0 && (first === 0n || e.seq < first)) first = e.seq;
    return first;
  }

  /** Render every entry into `list` (a conversation was selected, or the language changed). */
  mount(list, me) {
    list.replaceChildren(...this.entries.map((e) => render(e, me)));
    list.scrollTop = list.scrollHeight;
  }

  /** Add to `list` the entries it does not show yet, each at its place. */
  sync(list, me) {
    const shown = new Set([...list.children].map((li) => `${li.dataset.channel}:${li.dataset.seq}`));
    const stick = list.scrollHeight - list.scrollTop - list.clientHeight < 40;
    this.entries.forEach((entry, index) => {
      const key = `${entry.channel}:${entry.seq}`;
      if (shown.has(key)) return;
      const next = this.entries.slice(index + 1).find((e) => shown.has(`${e.channel}:${e.seq}`));
      const node = render(entry, me);
      const anchor = next && list.querySelector(`[data-channel="${next.channel}"][data-seq="${next.seq}"]`);
      list.insertBefore(node, anchor || null);
      shown.add(key);
    });
    if (stick) list.scrollTop = list.scrollHeight;
  }
}

/** One entry as a list item. */
function render(entry, me) {
  const item = el("li", {
    class: `msg msg-${entry.kind}`,
    dataset: { testid: "message", channel: String(entry.channel), seq: String(entry.seq), kind: entry.kind, sender: entry.sender },
  });
  if (entry.kind === "event") {
    item.append(el("span", { class: "msg-event", text: eventText(entry.event || {}) }));
    if (entry.channel === 1) item.append(el("span", { class: "msg-staff", text: ` · ${t("staff_only")}` }));
    return item;
  }
  const who = entry.sender === me ? t("you") : entry.sender;
  const head = el("span", { class: "msg-head" }, el("span", { class: "msg-sender", text: who }),
    el("time", { class: "msg-time", text: formatTime(entry.ts) }));
  if (entry.kind === "whisper") head.prepend(el("span", { class: "msg-staff", text: `${t("whisper_tag")} · ` }));
  item.append(head, el("p", { class: "msg-text", text: entry.text }));
  return item;
}

/** A system event's line, in the current language. */
export function eventText(event) {
  const name = event.event || "?";
  const values = { ...event };
  if (Array.isArray(values.tags)) values.tags = values.tags.join(", ");
  for (const k of ["group", "agent", "by", "supervisor"]) if (!values[k]) values[k] = "–";
  const key = `ev_${name}`;
  const text = t(key, values);
  return text === key ? t("ev_other", { event: name }) : text;
}
