// The console's text in Chinese and English. Elements carry data-i18n (text), data-i18n-label (aria-label) or
// data-i18n-placeholder; code asks t(key, values). The language comes from the switch (kept in localStorage, which
// holds no credential), else from navigator.language.

const STRINGS = {
  en: {
    title: "kefu console",
    skip_to_main: "Skip to main content",
    status: "Status",
    status_online: "Online",
    status_busy: "Busy",
    status_away: "Away",
    status_offline: "Offline",
    language: "Language",
    help: "Help",
    sign_out: "Sign out",
    sign_in_title: "Staff sign-in",
    name: "Name",
    password: "Password",
    sign_in: "Sign in",
    sign_in_hint: "Your account is created by the operator with kefu staff add.",
    sign_in_failed: "Sign-in failed: check the name and password.",
    sign_in_throttled: "Too many attempts: try again in {seconds} s.",
    sign_in_error: "Sign-in is not available now ({status}).",
    agent_desk: "Agent desk",
    conversations: "Conversations",
    no_conversations: "No conversations yet. Set your status to online to receive visitors.",
    search: "Search your conversations",
    search_go: "Find",
    search_none: "Nothing found.",
    search_more: "More matches exist: refine the search.",
    no_selection: "No conversation selected",
    transfer: "Transfer",
    end: "End",
    load_earlier: "Load earlier messages",
    messages: "Messages",
    ai_drafts: "AI drafts",
    approve: "Approve",
    edit: "Edit",
    reject: "Reject",
    send_edited: "Send edited",
    draft_from: "Draft by {plugin}",
    reply: "Reply",
    send: "Send",
    visitor: "Visitor",
    sentiment: "Sentiment",
    attributes: "Attributes",
    routing_trace: "Routing trace",
    tags: "Tags",
    opened_at: "Opened at",
    wall: "Live wall",
    queues_by_group: "Queues by group",
    tenant: "Tenant",
    group: "Group",
    waiting: "Waiting",
    longest_wait: "Longest wait",
    agents_by_state: "Agents by state and load",
    agent_loads: "Agents",
    agent: "Agent",
    load: "Load",
    negative_conversations: "Conversations with negative sentiment",
    conversation: "Conversation",
    actions: "Actions",
    watch: "Watch",
    watch_by_id: "Watch a conversation by id",
    stop_watching: "Stop watching",
    whisper_label: "Whisper to the agent (the visitor never sees it)",
    whisper: "Whisper",
    whisper_tag: "whisper",
    watching: "Watching conversation {id}",
    transfer_title: "Transfer the conversation",
    transfer_to: "To",
    an_agent: "an agent",
    a_group: "a group",
    transfer_target: "Agent or group name",
    note: "Note",
    cancel: "Cancel",
    close: "Close",
    help_title: "Keyboard shortcuts",
    sc_reply: "Go to the reply box",
    sc_send: "Send the reply (in the reply box)",
    sc_approve: "Approve the newest AI draft",
    sc_edit: "Edit the newest AI draft",
    sc_reject: "Reject the newest AI draft",
    sc_transfer: "Transfer the conversation",
    sc_next: "Next / previous conversation",
    sc_search: "Search",
    sc_whisper: "Whisper (supervisor)",
    sc_help: "This help (outside text boxes)",
    sc_close: "Close a dialog",
    conn_connecting: "Connecting…",
    conn_connected: "Connected",
    conn_disconnected: "Disconnected: reconnecting…",
    state_waiting: "waiting",
    state_assigned: "assigned",
    state_transferred: "transferred",
    state_closed: "closed",
    state_gone: "transferred away",
    ev_opened: "Conversation opened ({group})",
    ev_queued: "Queued in {group}",
    ev_assigned: "Assigned to {agent} ({group})",
    ev_transferred: "Transferred to {agent} ({group})",
    ev_overflowed: "Overflowed to {group}",
    ev_closed: "Closed by {by}",
    ev_watching: "{supervisor} is watching",
    ev_unwatched: "{supervisor} stopped watching",
    ev_tagged: "Tagged: {tags}",
    ev_draft_approve: "Draft {draft_seq} approved",
    ev_draft_edit: "Draft {draft_seq} sent edited",
    ev_draft_reject: "Draft {draft_seq} rejected",
    ev_other: "Event: {event}",
    you: "you",
    staff_only: "staff only",
    refused: "Refused: {reason}",
    failed: "Failed: {reason}",
    ended: "The conversation was ended.",
    transferred_ok: "Transferred.",
    confirm_end: "End this conversation?",
    seconds: "{n} s",
    minutes: "{m} min {s} s",
    wall_updated: "Updated {time}",
    wall_unavailable: "The wall's figures are not available: {reason}",
    none: "none",
    session_expired: "Your session has expired: sign in again.",
  },
  zh: {
    title: "客服控制台",
    skip_to_main: "跳到主要内容",
    status: "状态",
    status_online: "在线",
    status_busy: "忙碌",
    status_away: "离开",
    status_offline: "离线",
    language: "语言",
    help: "帮助",
    sign_out: "退出登录",
    sign_in_title: "坐席登录",
    name: "账号",
    password: "密码",
    sign_in: "登录",
    sign_in_hint: "账号由管理员用 kefu staff add 创建。",
    sign_in_failed: "登录失败：请检查账号和密码。",
    sign_in_throttled: "尝试次数过多：请 {seconds} 秒后再试。",
    sign_in_error: "暂时无法登录（{status}）。",
    agent_desk: "坐席工作台",
    conversations: "会话",
    no_conversations: "暂无会话。把状态设为在线即可接待访客。",
    search: "搜索我的会话",
    search_go: "查找",
    search_none: "没有找到。",
    search_more: "还有更多结果：请缩小搜索范围。",
    no_selection: "未选择会话",
    transfer: "转接",
    end: "结束",
    load_earlier: "加载更早的消息",
    messages: "消息",
    ai_drafts: "AI 草稿",
    approve: "采纳",
    edit: "修改",
    reject: "拒绝",
    send_edited: "发送修改稿",
    draft_from: "{plugin} 的草稿",
    reply: "回复",
    send: "发送",
    visitor: "访客",
    sentiment: "情绪",
    attributes: "属性",
    routing_trace: "路由记录",
    tags: "标签",
    opened_at: "开始时间",
    wall: "实时监控墙",
    queues_by_group: "各技能组排队",
    tenant: "租户",
    group: "技能组",
    waiting: "排队中",
    longest_wait: "最长等待",
    agents_by_state: "坐席状态与负载",
    agent_loads: "坐席",
    agent: "坐席",
    load: "负载",
    negative_conversations: "负面情绪会话",
    conversation: "会话",
    actions: "操作",
    watch: "监听",
    watch_by_id: "按编号监听会话",
    stop_watching: "停止监听",
    whisper_label: "悄悄话给坐席（访客永远看不到）",
    whisper: "发送悄悄话",
    whisper_tag: "悄悄话",
    watching: "正在监听会话 {id}",
    transfer_title: "转接会话",
    transfer_to: "转给",
    an_agent: "坐席",
    a_group: "技能组",
    transfer_target: "坐席或技能组名称",
    note: "备注",
    cancel: "取消",
    close: "关闭",
    help_title: "键盘快捷键",
    sc_reply: "跳到回复框",
    sc_send: "发送回复（在回复框中）",
    sc_approve: "采纳最新的 AI 草稿",
    sc_edit: "修改最新的 AI 草稿",
    sc_reject: "拒绝最新的 AI 草稿",
    sc_transfer: "转接会话",
    sc_next: "下一个 / 上一个会话",
    sc_search: "搜索",
    sc_whisper: "悄悄话（班长）",
    sc_help: "本帮助（不在输入框中时）",
    sc_close: "关闭对话框",
    conn_connecting: "连接中…",
    conn_connected: "已连接",
    conn_disconnected: "连接断开：正在重连…",
    state_waiting: "排队中",
    state_assigned: "已分配",
    state_transferred: "已转接",
    state_closed: "已结束",
    state_gone: "已转走",
    ev_opened: "会话已创建（{group}）",
    ev_queued: "在 {group} 排队",
    ev_assigned: "分配给 {agent}（{group}）",
    ev_transferred: "转接给 {agent}（{group}）",
    ev_overflowed: "溢出到 {group}",
    ev_closed: "由 {by} 结束",
    ev_watching: "{supervisor} 正在监听",
    ev_unwatched: "{supervisor} 停止监听",
    ev_tagged: "标签：{tags}",
    ev_draft_approve: "草稿 {draft_seq} 已采纳",
    ev_draft_edit: "草稿 {draft_seq} 已修改后发送",
    ev_draft_reject: "草稿 {draft_seq} 已拒绝",
    ev_other: "事件：{event}",
    you: "我",
    staff_only: "仅坐席可见",
    refused: "被拒绝：{reason}",
    failed: "失败：{reason}",
    ended: "会话已结束。",
    transferred_ok: "已转接。",
    confirm_end: "结束这个会话？",
    seconds: "{n} 秒",
    minutes: "{m} 分 {s} 秒",
    wall_updated: "更新于 {time}",
    wall_unavailable: "监控数据暂不可用：{reason}",
    none: "无",
    session_expired: "登录已过期：请重新登录。",
  },
};

export const LANGUAGES = Object.keys(STRINGS);
const LANGUAGE_KEY = "kefu.console.language";
let current = pickLanguage();

function pickLanguage() {
  let saved = null;
  try {
    saved = localStorage.getItem(LANGUAGE_KEY);
  } catch {
    // storage disabled: fall back to the browser's language
  }
  if (saved && STRINGS[saved]) return saved;
  const wanted = (navigator.languages && navigator.languages.length ? navigator.languages : [navigator.language || "en"]);
  for (const tag of wanted) {
    const base = String(tag).toLowerCase().split("-")[0];
    if (STRINGS[base]) return base;
  }
  return "en";
}

/** The current language ("zh" or "en"). */
export function language() {
  return current;
}

/** The text of `key` in the current language, with {name} placeholders filled from `values`. */
export function t(key, values = {}) {
  const text = STRINGS[current][key] ?? STRINGS.en[key] ?? key;
  return text.replace(/\{(\w+)\}/g, (whole, name) => (name in values ? String(values[name]) : whole));
}

/** Fill every data-i18n* element under `root` with the current language's text. */
export function translate(root = document) {
  document.documentElement.lang = current === "zh" ? "zh-CN" : "en";
  for (const el of root.querySelectorAll("[data-i18n]")) el.textContent = t(el.dataset.i18n);
  for (const el of root.querySelectorAll("[data-i18n-label]")) el.setAttribute("aria-label", t(el.dataset.i18nLabel));
  for (const el of root.querySelectorAll("[data-i18n-placeholder]")) el.placeholder = t(el.dataset.i18nPlaceholder);
  document.title = t("title");
}

/** Switch the language, remember it, and re-translate the page; listeners re-render their own text. */
export function setLanguage(lang) {
  if (!STRINGS[lang]) return;
  current = lang;
  try {
    localStorage.setItem(LANGUAGE_KEY, lang);
  } catch {
    // not remembered; still switched
  }
  translate();
  for (const listener of listeners) listener(lang);
}

const listeners = new Set();

/** Call `listener(lang)` after each language switch. */
export function onLanguageChange(listener) {
  listeners.add(listener);
}

/** The strings of every language (for a test that checks both have the same keys). */
export function strings() {
  return STRINGS;
}
