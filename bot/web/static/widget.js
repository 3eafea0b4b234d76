/* supportbot web chat widget. Embed with:
 *   <script src="https://support.example/static/widget.js" defer
 *           data-title="Customer care" data-subtitle="We usually answer at once"
 *           data-name="(optional) the customer's name" data-lang="(optional) en"></script>
 * It talks to /api/v1/webchat on the host the script came from (data-api overrides it). Everything a
 * person typed is shown with textContent, never parsed as HTML.
 */
(function () {
  "use strict";
  if (window.SupportbotWidget) return;

  var script = document.currentScript;
  var data = (script && script.dataset) || {};
  var base = data.api || (script && script.src ? new URL(script.src, location.href).origin : location.origin);
  var API = base.replace(/\/$/, "") + "/api/v1/webchat/";
  var VISITOR_KEY = "supportbot.visitor";
  var CHAT_KEY = "supportbot.chat";
  var lang = (data.lang || navigator.language || "en").toLowerCase().split("-")[0];

  var STRINGS = {
    en: { open: "Chat with us", close: "Close chat", placeholder: "Type your question…", send: "Send",
          bot: "Bot", team: "Northwind", agent: "Agent", you: "You", waiting: "Waiting for a person",
          position: "you are number {n} in the queue", with: "You are chatting with {name}",
          ourTeam: "our team", limited: "Too many messages: please wait {n} s and send again.",
          failed: "Not sent.", retry: "Retry", offline: "Connection lost, reconnecting…" },
    ru: { open: "Чат с нами", close: "Закрыть чат", placeholder: "Напишите вопрос…", send: "Отправить",
          bot: "Бот", team: "Northwind", agent: "Оператор", you: "Вы", waiting: "Ждём оператора",
          position: "вы {n}-й в очереди", with: "С вами {name}", ourTeam: "наша команда",
          limited: "Слишком много сообщений: подождите {n} с и отправьте ещё раз.",
          failed: "Не отправлено.", retry: "Повторить", offline: "Связь потеряна, переподключаемся…" },
    pl: { open: "Czat z nami", close: "Zamknij czat", placeholder: "Napisz pytanie…", send: "Wyślij",
          bot: "Bot", team: "Northwind", agent: "Konsultant", you: "Ty", waiting: "Czekasz na konsultanta",
          position: "jesteś {n}. w kolejce", with: "Rozmawiasz z: {name}", ourTeam: "nasz zespół",
          limited: "Za dużo wiadomości: odczekaj {n} s i wyślij ponownie.",
          failed: "Nie wysłano.", retry: "Ponów", offline: "Brak połączenia, łączę ponownie…" },
    uk: { open: "Чат з нами", close: "Закрити чат", placeholder: "Напишіть запитання…", send: "Надіслати",
          bot: "Бот", team: "Northwind", agent: "Оператор", you: "Ви", waiting: "Чекаємо на оператора",
          position: "ви {n}-й у черзі", with: "З вами {name}", ourTeam: "наша команда",
          limited: "Забагато повідомлень: зачекайте {n} с і надішліть ще раз.",
          failed: "Не надіслано.", retry: "Повторити", offline: "Зв'язок втрачено, перепідключаємося…" }
  };
  var T = STRINGS[lang] || STRINGS.en;
  function t(key, values) {
    var text = T[key] || STRINGS.en[key] || key;
    Object.keys(values || {}).forEach(function (name) { text = text.split("{" + name + "}").join(String(values[name])); });
    return text;
  }

  function randomId() {
    var bytes = new Uint8Array(16);
    crypto.getRandomValues(bytes);
    return Array.prototype.map.call(bytes, function (b) { return ("0" + b.toString(16)).slice(-2); }).join("");
  }
  function storage(key, value) {
    try {
      if (value === undefined) return localStorage.getItem(key);
      localStorage.setItem(key, value);
    } catch (e) { /* private mode: the chat lasts as long as the page */ }
    return null;
  }
  var visitor = storage(VISITOR_KEY);
  if (!visitor || !/^[A-Za-z0-9_-]{16,64}$/.test(visitor)) {
    visitor = randomId();
    storage(VISITOR_KEY, visitor);
  }

  // --- the DOM, inside a shadow root so the host page's styles do not leak in -------------------
  function el(tag, className, text) {
    var node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined && text !== null) node.textContent = text;
    return node;
  }
  var host = el("div");
  host.id = "supportbot-widget";
  var root = host.attachShadow({ mode: "open" });
  var css = el("link");
  css.rel = "stylesheet";
  css.href = base.replace(/\/$/, "") + "/static/widget.css";
  root.appendChild(css);

  var launcher = el("button", "sb-launcher");
  launcher.type = "button";
  launcher.setAttribute("aria-label", t("open"));
  launcher.appendChild(el("span", "sb-launcher-text", t("open")));
  var badge = el("span", "sb-badge");
  badge.hidden = true;
  launcher.appendChild(badge);

  var panel = el("section", "sb-panel");
  panel.setAttribute("role", "dialog");
  panel.setAttribute("aria-label", data.title || "Chat");
  panel.hidden = true;
  var head = el("header", "sb-head");
  var titles = el("div", "sb-titles");
  titles.appendChild(el("strong", "sb-title", data.title || "Customer care"));
  var statusLine = el("span", "sb-status", data.subtitle || "");
  titles.appendChild(statusLine);
  head.appendChild(titles);
  var closeButton = el("button", "sb-close", "×");
  closeButton.type = "button";
  closeButton.setAttribute("aria-label", t("close"));
  head.appendChild(closeButton);
  var log = el("div", "sb-log");
  log.setAttribute("role", "log");
  log.setAttribute("aria-live", "polite");
  var notice = el("p", "sb-notice");
  notice.setAttribute("role", "alert");
  notice.hidden = true;
  var form = el("form", "sb-form");
  var input = el("textarea", "sb-input");
  input.rows = 1;
  input.maxLength = 8000;
  input.placeholder = t("placeholder");
  input.setAttribute("aria-label", t("placeholder"));
  var sendButton = el("button", "sb-send", t("send"));
  sendButton.type = "submit";
  form.appendChild(input);
  form.appendChild(sendButton);
  panel.appendChild(head);
  panel.appendChild(log);
  panel.appendChild(notice);
  panel.appendChild(form);
  root.appendChild(panel);
  root.appendChild(launcher);

  // --- state ------------------------------------------------------------------------------------
  var seen = new Set();
  var lastId = 0;
  var loaded = null;
  var source = null;
  var isOpen = false;
  var unread = 0;

  function scrollDown() { log.scrollTop = log.scrollHeight; }
  function showNotice(text) { notice.textContent = text || ""; notice.hidden = !text; }

  function senderLabel(message) {
    if (message.sender === "agent") return message.agent || t("agent");
    if (message.sender === "bot") return t("bot");
    return t("team");
  }

  function render(message) {
    if (message.id !== undefined && message.id !== null) {
      if (seen.has(message.id)) return null;
      seen.add(message.id);
      lastId = Math.max(lastId, message.id);
    }
    if (message.direction === "in" && !(message.text || "").trim()) return null; // the silent "start"
    var row = el("div", "sb-msg " + (message.direction === "in" ? "sb-in" : "sb-out sb-from-" + message.sender));
    if (message.direction !== "in") row.appendChild(el("span", "sb-who", senderLabel(message)));
    row.appendChild(el("div", "sb-bubble", message.text || ""));
    if (message.buttons && message.buttons.length) {
      var choices = el("div", "sb-choices");
      message.buttons.forEach(function (button) {
        var choice = el("button", "sb-choice", button.title);
        choice.type = "button";
        choice.addEventListener("click", function () {
          Array.prototype.forEach.call(choices.querySelectorAll("button"), function (b) { b.disabled = true; });
          choice.classList.add("sb-chosen");
          send(button.title, button.payload);
        });
        choices.appendChild(choice);
      });
      row.appendChild(choices);
    }
    log.appendChild(row);
    scrollDown();
    if (message.direction !== "in" && !isOpen) {
      unread += 1;
      badge.textContent = String(unread);
      badge.hidden = false;
    }
    return row;
  }

  function setStatus(status) {
    if (!status || !status.state) return;
    var text = data.subtitle || "";
    if (status.state === "waiting") {
      text = t("waiting") + (status.queue_position ? " · " + t("position", { n: status.queue_position }) : "");
    } else if (status.state === "with_agent") {
      text = t("with", { name: status.agent || t("ourTeam") });
    }
    statusLine.textContent = text;
    panel.setAttribute("data-state", status.state);
  }

  // Live replies: Server-Sent Events read with fetch, so the visitor id travels in a header (an
  // EventSource could only put it in the URL, and URLs end up in access logs).
  function connect() {
    if (source) return;
    var controller = new AbortController();
    source = controller;
    var retried = false;
    function again() {
      if (source !== controller || retried) return;
      retried = true;
      source = null;
      showNotice(t("offline"));
      setTimeout(connect, 3000);
    }
    fetch(API + "events?since=" + lastId, { headers: { "X-Visitor-Id": visitor }, signal: controller.signal })
      .then(function (response) {
        if (!response.ok || !response.body) throw new Error("HTTP " + response.status);
        showNotice("");
        var reader = response.body.getReader();
        var decoder = new TextDecoder();
        var buffer = "";
        function pump() {
          return reader.read().then(function (chunk) {
            if (chunk.done) return null;
            buffer += decoder.decode(chunk.value, { stream: true }).replace(/\r\n/g, "\n");
            var blocks = buffer.split("\n\n");
            buffer = blocks.pop();
            blocks.forEach(onBlock);
            return pump();
          });
        }
        return pump();
      })
      .catch(function () { return null; })
      .then(again);
  }
  function onBlock(block) {
    var kind = "message", payload = null;
    block.split("\n").forEach(function (line) {
      if (line.indexOf("event: ") === 0) kind = line.slice(7);
      else if (line.indexOf("data: ") === 0) payload = (payload === null ? "" : payload + "\n") + line.slice(6);
    });
    if (payload === null) return;
    var value;
    try { value = JSON.parse(payload); } catch (e) { return; }
    if (kind === "message") render(value);
    else if (kind === "status") setStatus(value);
  }

  function load() {
    if (!loaded) {
      loaded = fetch(API + "messages?after=0", { headers: { "X-Visitor-Id": visitor } })
        .then(function (response) {
          if (!response.ok) throw new Error("HTTP " + response.status);
          return response.json();
        })
        .then(function (chat) {
          chat.messages.forEach(render);
          setStatus(chat);
          connect();
          if (!chat.messages.length) return send("", "start");
          return null;
        })
        .catch(function () {
          loaded = null;
          showNotice(t("offline"));
        });
    }
    return loaded;
  }

  function send(text, payload, clientId, pendingRow) {
    clientId = clientId || randomId();
    var row = pendingRow || null;
    if (!row && text) {
      row = render({ direction: "in", sender: "customer", text: text });
      if (row) row.classList.add("sb-pending");
    }
    if (row) {
      var old = row.querySelector(".sb-failed");
      if (old) old.remove();
    }
    storage(CHAT_KEY, "1");
    var body = { text: text || "", client_message_id: clientId, language: data.lang || navigator.language };
    if (payload) body.payload = payload;
    if (data.name) body.name = data.name;
    return fetch(API + "messages", {
      method: "POST",
      headers: { "Content-Type": "application/json", "X-Visitor-Id": visitor },
      body: JSON.stringify(body)
    }).then(function (response) {
      if (response.status === 429) {
        var wait = response.headers.get("Retry-After") || "60";
        showNotice(t("limited", { n: wait }));
        if (row) { row.remove(); }
        if (text && !payload && !input.value) input.value = text;
        return null;
      }
      if (!response.ok) throw new Error("HTTP " + response.status);
      return response.json().then(function (reply) {
        if (row) row.classList.remove("sb-pending");
        showNotice("");
        reply.replies.forEach(render);
        setStatus(reply);
        connect();
        return reply;
      });
    }).catch(function () {
      if (!row) { showNotice(t("failed")); return null; }
      var failed = el("span", "sb-failed", t("failed") + " ");
      var retry = el("button", "sb-retry", t("retry"));
      retry.type = "button";
      retry.addEventListener("click", function () { send(text, payload, clientId, row); });
      failed.appendChild(retry);
      row.appendChild(failed);
      return null;
    });
  }

  function open() {
    isOpen = true;
    panel.hidden = false;
    launcher.setAttribute("aria-expanded", "true");
    unread = 0;
    badge.hidden = true;
    load();
    input.focus();
    scrollDown();
  }
  function close() {
    isOpen = false;
    panel.hidden = true;
    launcher.setAttribute("aria-expanded", "false");
  }

  launcher.addEventListener("click", function () { if (isOpen) close(); else open(); });
  closeButton.addEventListener("click", close);
  form.addEventListener("submit", function (event) {
    event.preventDefault();
    var text = input.value;
    if (!text.trim()) return;
    input.value = "";
    send(text);
  });
  input.addEventListener("keydown", function (event) {
    if (event.key === "Enter" && !event.shiftKey) {
      event.preventDefault();
      form.requestSubmit();
    }
  });

  function mount() {
    document.body.appendChild(host);
    if (storage(CHAT_KEY)) load(); // an earlier chat: listen for the agent's replies at once
  }
  if (document.body) mount();
  else document.addEventListener("DOMContentLoaded", mount);

  window.SupportbotWidget = { open: open, close: close, visitorId: function () { return visitor; } };
})();
