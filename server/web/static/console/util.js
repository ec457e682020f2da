// Small helpers shared by the agent desk and the wall: conversation ids (BigInt), messages, DOM building, time.
// Messages are the JS client's (clients/js/src/message.js: text, isSystemEvent, event are its getters).

// Service conversations start at SERVICE_BASE, 2^62 (spec 13.2); a staff channel is the conversation's id with bit 63,
// STAFF_BIT, set; both, and the system sender, as the JS client's generated frames.js declares them.
import { SERVICE_BASE, STAFF_BIT, SYSTEM_SENDER } from "/js/frames.js";

/** until_seq of a history fetch that reaches the conversation's last message (0 would resume the live stream, 4.5). */
export const LATEST_SEQ = (1n << 63n) - 1n;

/** The staff channel of conversation `id` (spec 13.2: whispers, drafts, staff-only events). */
export function staffChannel(id) {
  return BigInt(id) | STAFF_BIT;
}

/** Whether `id` is a staff channel. */
export function isStaffChannel(id) {
  return (BigInt(id) & STAFF_BIT) !== 0n;
}

/** The visitor conversation of `id` (itself, or the conversation whose staff channel `id` is). */
export function baseConversation(id) {
  return BigInt(id) & (STAFF_BIT - 1n);
}

/** Whether `id` is a service conversation or a staff channel (spec 13.2). */
export function isService(id) {
  return BigInt(id) >= SERVICE_BASE;
}

/** A service conversation id from user input (the full id, or its short form as shown, "#12" or "12"), or null. */
export function parseConversationId(text) {
  const s = String(text).trim().replace(/^#/, "");
  if (!/^[0-9]{1,20}$/.test(s)) return null;
  const n = BigInt(s);
  if (n >= STAFF_BIT) return null;
  return n >= SERVICE_BASE ? n : SERVICE_BASE + n;
}

const decoder = new TextDecoder();

/** A metadata value of a message as text ('' when absent): the client's Message.metadata maps a key to its bytes. */
export function metaOf(message, key) {
  const value = message.metadata[key];
  return value === undefined ? "" : decoder.decode(value);
}

/** Whether a staff-channel message is an AI draft (spec 13.8: TEXT from #kefu with kefu.kind = draft). */
export function isDraft(message) {
  return message.sender === SYSTEM_SENDER && metaOf(message, "kefu.kind") === "draft";
}

/** Create an element: el("li", {class: "x", dataset: {testid: "y"}, text: "..."}, child, ...). */
export function el(tag, props = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(props)) {
    if (value === undefined || value === null || value === false) continue;
    if (name === "text") node.textContent = value;
    else if (name === "dataset") Object.assign(node.dataset, value);
    else if (name === "on") for (const [type, fn] of Object.entries(value)) node.addEventListener(type, fn);
    else if (name === "class") node.className = value;
    else node.setAttribute(name, value === true ? "" : value);
  }
  for (const child of children) if (child !== null && child !== undefined) node.append(child);
  return node;
}

/** A duration in seconds as "12 s" / "3 min 4 s", through `t`. */
export function formatDuration(seconds, t) {
  const n = Math.max(0, Math.round(Number(seconds) || 0));
  if (n < 60) return t("seconds", { n });
  return t("minutes", { m: Math.floor(n / 60), s: n % 60 });
}

/** A wall-clock time (ms since the epoch, a number or BigInt) as HH:MM:SS. */
export function formatTime(ms) {
  const d = new Date(Number(ms));
  return Number.isFinite(d.getTime()) ? d.toLocaleTimeString([], { hour12: false }) : "";
}

/** A sentiment score (0..1, or permille 0..1000) as a percentage and whether it is negative. */
export function sentimentOf(score) {
  if (score === null || score === undefined || Number.isNaN(Number(score))) return null;
  const value = Number(score) > 1 ? Number(score) / 1000 : Number(score);
  return { value, percent: Math.round(value * 100), negative: value < NEGATIVE_SENTIMENT };
}

/** Below this score (0..1) a conversation is shown as negative: the HTTP API's wall lists those below 0.35 too. */
export const NEGATIVE_SENTIMENT = 0.35;

/** The reason a refused request gives (the client's error), for a message line. */
export function reasonOf(error) {
  if (!error) return "";
  const detail = error.detail && typeof error.detail === "object" ? error.detail.reason : undefined;
  return String(detail || error.reason || error.message || error);
}

/** The low part of a service conversation id (ids are 2^62 + n: n is what tells two apart on screen). */
export function shortId(id) {
  const n = BigInt(id);
  return String(n >= SERVICE_BASE ? n - SERVICE_BASE : n);
}
