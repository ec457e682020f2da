/*
 * kefu visitor widget: the loader a bank puts on its page with one tag,
 *
 *   <script src="https://kefu.bank/widget/kefu-widget.js" data-tenant="bank" data-group="cards" data-lang="zh"></script>
 *
 * Theory of operation. This classic script runs in the bank's page. It draws only a launcher button and an empty
 * panel, inside a shadow root (the page's styles cannot reach them, theirs cannot leak out). Opening the panel loads
 * the chat itself as <iframe src="<kefu origin>/widget/frame.html#tenant=..">: the visitor identity, the JS client
 * and the WebSocket all live in kefu's origin, so the bank page's other scripts never see the visitor's credential
 * and no cross-origin request is needed. The frame tells the loader (postMessage, checked origin and source) when
 * the visitor presses Escape (close) and how many messages arrived while the panel was closed.
 * Whether the panel was open is remembered in the page's sessionStorage, so a reload shows the chat again.
 */
(function () {
  "use strict";

  var script = document.currentScript || document.querySelector('script[src*="kefu-widget.js"]');
  if (!script || window.__kefuWidgetLoaded) return;
  window.__kefuWidgetLoaded = true;

  var kefuOrigin = new URL(script.src, location.href).origin;
  var tenant = script.getAttribute("data-tenant") || "";
  var group = script.getAttribute("data-group") || "";
  var lang = (script.getAttribute("data-lang") || navigator.language || "zh").toLowerCase().indexOf("en") === 0 ? "en" : "zh";
  var OPEN_KEY = "kefu-widget:open:" + tenant;

  var TEXT = {
    zh: {
      open: "在线客服", close: "关闭客服窗口", title: "在线客服",
      unread: function (n) { return n + " 条新消息"; },
    },
    en: {
      open: "Chat with us", close: "Close the chat", title: "Customer service",
      unread: function (n) { return n === 1 ? "1 new message" : n + " new messages"; },
    },
  }[lang];

  var CSS =
    ":host{all:initial;position:fixed;right:20px;bottom:20px;z-index:2147483000;font:14px/1.4 system-ui,sans-serif}" +
    ".launcher{all:unset;box-sizing:border-box;display:inline-flex;align-items:center;gap:6px;cursor:pointer;" +
    "background:#0b5cad;color:#fff;border-radius:24px;padding:10px 18px;box-shadow:0 2px 8px rgba(0,0,0,.3)}" +
    ".launcher:focus-visible{outline:3px solid #f9a825;outline-offset:2px}" +
    ".badge{background:#d32f2f;color:#fff;border-radius:10px;padding:0 6px;font-size:12px}" +
    ".badge[hidden]{display:none}" +
    ".panel{position:absolute;right:0;bottom:56px;width:360px;height:520px;max-width:calc(100vw - 40px);" +
    "max-height:calc(100vh - 100px);background:#fff;border-radius:8px;box-shadow:0 4px 24px rgba(0,0,0,.35);" +
    "overflow:hidden;display:flex;flex-direction:column}" +
    ".panel[hidden]{display:none}" +
    ".bar{display:flex;justify-content:space-between;align-items:center;background:#0b5cad;color:#fff;padding:8px 12px}" +
    ".x{all:unset;cursor:pointer;font-size:18px;padding:0 6px;border-radius:4px}" +
    ".x:focus-visible{outline:2px solid #f9a825}" +
    "iframe{border:0;flex:1;width:100%}";

  var host = document.createElement("div");
  host.id = "kefu-widget";
  host.setAttribute("data-kefu-origin", kefuOrigin);
  var root = host.attachShadow({ mode: "open" });
  if (root.adoptedStyleSheets !== undefined && typeof CSSStyleSheet === "function" && CSSStyleSheet.prototype.replaceSync) {
    var sheet = new CSSStyleSheet(); // not an inline <style>: a bank page's style-src policy does not block it
    sheet.replaceSync(CSS);
    root.adoptedStyleSheets = [sheet];
  } else {
    var style = document.createElement("style");
    style.textContent = CSS;
    root.appendChild(style);
  }

  var panel = el("div", { class: "panel", id: "kefu-panel", role: "dialog", "aria-label": TEXT.title, hidden: "" });
  var bar = el("div", { class: "bar" });
  bar.appendChild(el("span", {}, TEXT.title));
  var closeButton = el("button", { class: "x", type: "button", "aria-label": TEXT.close, title: TEXT.close }, "\u00d7");
  bar.appendChild(closeButton);
  panel.appendChild(bar);

  var launcher = el("button", { class: "launcher", type: "button", "aria-expanded": "false", "aria-controls": "kefu-panel" });
  launcher.appendChild(el("span", {}, TEXT.open));
  var badge = el("span", { class: "badge", hidden: "", "aria-live": "polite" });
  launcher.appendChild(badge);
  root.appendChild(panel);
  root.appendChild(launcher);

  var frame = null;
  var frameLoaded = false; // until its page loaded, the frame is about:blank (this page's origin): post nothing

  function tellFrame(data) {
    if (frame && frameLoaded && frame.contentWindow) frame.contentWindow.postMessage(data, kefuOrigin);
  }

  function el(tag, attrs, text) {
    var node = document.createElement(tag);
    for (var name in attrs) node.setAttribute(name, attrs[name]);
    if (text) node.textContent = text;
    return node;
  }

  function frameUrl() {
    var params = new URLSearchParams({ tenant: tenant, lang: lang, embedder: location.origin });
    if (group) params.set("group", group);
    return kefuOrigin + "/widget/frame.html#" + params.toString();
  }

  function setOpen(open, byUser) {
    panel.hidden = !open;
    launcher.setAttribute("aria-expanded", String(open));
    try {
      if (open) sessionStorage.setItem(OPEN_KEY, "1");
      else sessionStorage.removeItem(OPEN_KEY);
    } catch (e) {
      /* storage may be disabled: the panel just starts closed */
    }
    if (open) {
      if (!frame) {
        frame = el("iframe", { title: TEXT.title, src: frameUrl() });
        frame.addEventListener("load", function () {
          frameLoaded = true;
          tellFrame({ kefu: "visible", open: !panel.hidden });
        });
        panel.appendChild(frame);
      } else {
        tellFrame({ kefu: "focus" });
      }
      badge.hidden = true;
      badge.textContent = "";
      if (byUser) frame.focus();
    } else if (byUser) {
      launcher.focus();
    }
    tellFrame({ kefu: "visible", open: open });
  }

  launcher.addEventListener("click", function () {
    setOpen(panel.hidden, true);
  });
  closeButton.addEventListener("click", function () {
    setOpen(false, true);
  });
  panel.addEventListener("keydown", function (event) {
    if (event.key === "Escape") setOpen(false, true);
  });
  window.addEventListener("message", function (event) {
    if (event.origin !== kefuOrigin || !frame || event.source !== frame.contentWindow) return;
    var data = event.data || {};
    if (data.kefu === "close") setOpen(false, true);
    else if (data.kefu === "unread" && panel.hidden && data.count > 0) {
      badge.hidden = false;
      badge.textContent = TEXT.unread(data.count);
    }
  });

  function mount() {
    document.body.appendChild(host);
    var wasOpen = false;
    try {
      wasOpen = sessionStorage.getItem(OPEN_KEY) === "1";
    } catch (e) {
      wasOpen = false;
    }
    if (wasOpen) setOpen(true, false);
  }
  if (document.body) mount();
  else document.addEventListener("DOMContentLoaded", mount);
})();
