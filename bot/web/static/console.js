/* The agent console: a page over the agent API (/api/v1) with a bearer token kept in sessionStorage.
 * Every piece of customer (or agent) text is put on the page with textContent; nothing is parsed as HTML.
 */
(function () {
  "use strict";

  var TOKEN_KEY = "supportbot.console.token";
  var S = {
    token: null, me: null, settings: null, skew: 0,
    queue: [], mine: [], summary: null, unread: {}, seen: {},
    openId: null, detail: null, actionsKey: null, suggestionsFor: null,
    events: null, lastEventId: null, refreshTimer: null, refreshing: null, again: false
  };

  // --- small helpers --------------------------------------------------------------------------
  function $(id) { return document.getElementById(id); }
  function el(tag, attrs, children) {
    var node = document.createElement(tag);
    Object.keys(attrs || {}).forEach(function (key) {
      var value = attrs[key];
      if (value === null || value === undefined || value === false) return;
      if (key === "text") node.textContent = String(value);
      else if (key === "class") node.className = value;
      else if (key === "data") Object.keys(value).forEach(function (k) { node.dataset[k] = value[k]; });
      else if (key === "on") Object.keys(value).forEach(function (k) { node.addEventListener(k, value[k]); });
      else if (value === true) node.setAttribute(key, "");
      else node.setAttribute(key, String(value));
    });
    (children || []).forEach(function (child) {
      if (child === null || child === undefined || child === false) return;
      node.appendChild(typeof child === "string" || typeof child === "number" ? document.createTextNode(String(child)) : child);
    });
    return node;
  }
  function clear(node) { while (node.firstChild) node.removeChild(node.firstChild); return node; }
  function now() { return Date.now() + S.skew; }
  function duration(seconds) {
    seconds = Math.max(0, Math.round(seconds));
    if (seconds < 60) return seconds + " s";
    var minutes = Math.floor(seconds / 60);
    if (minutes < 60) return minutes + " min " + (seconds % 60) + " s";
    return Math.floor(minutes / 60) + " h " + (minutes % 60) + " min";
  }
  function clock(iso) {
    if (!iso) return "";
    var d = new Date(iso);
    return d.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
  }
  function toast(text, isError) {
    var box = $("toast");
    box.textContent = text;
    box.className = "toast" + (isError ? " toast-error" : "");
    box.hidden = false;
    clearTimeout(toast.timer);
    toast.timer = setTimeout(function () { box.hidden = true; }, isError ? 6000 : 2500);
  }
  function customerLabel(c) {
    var customer = (c && c.customer) || {};
    if (customer.name) return customer.name;
    if (customer.username) return "@" + customer.username;
    var id = String(customer.external_id || "").replace(/^visitor-/, "");  // web chat: a reference, never the id
    return (c.channel === "webchat" ? "Web visitor " : (c.channel || "") + " customer ") + id.slice(0, 6);
  }
  function languageOf(c) { return (c && c.language) || (S.settings && S.settings.default_language) || "en"; }

  function ApiError(status, code, message, detail) {
    this.status = status; this.code = code; this.message = message; this.detail = detail;
  }
  function api(method, path, body, extraHeaders) {
    var headers = Object.assign({ "Accept": "application/json" }, extraHeaders || {});
    if (S.token) headers.Authorization = "Bearer " + S.token;
    if (body !== undefined) headers["Content-Type"] = "application/json";
    return fetch("/api/v1" + path, {
      method: method, headers: headers, body: body === undefined ? undefined : JSON.stringify(body)
    }).then(function (response) {
      if (response.status === 204) return null;
      if (!response.ok) return refused(response);
      return response.json().catch(function () { return null; });
    });
  }
  function refused(response) {
    return response.json().catch(function () { return null; }).then(function (data) {
      var detail = (data && data.detail) || {};
      var message = typeof detail === "string" ? detail : detail.message || ("HTTP " + response.status);
      if (Array.isArray(detail)) message = detail.map(function (d) { return d.msg; }).join("; ");
      if (response.status === 401 && S.token) loggedOut("Your session has ended: log in again.");
      throw new ApiError(response.status, detail.code, message, detail);
    });
  }
  // A file from the API (a CSV export), saved under the name the server gives. Fetched with the token in
  // its header like every call, so a plain link would not do: tokens never go in URLs.
  function download(path) {
    var headers = { "Accept": "text/csv, application/json" };
    if (S.token) headers.Authorization = "Bearer " + S.token;
    return fetch("/api/v1" + path, { headers: headers }).then(function (response) {
      if (!response.ok) return refused(response);
      var named = /filename="([^"]+)"/.exec(response.headers.get("Content-Disposition") || "");
      var name = named ? named[1] : "export.csv";
      return response.blob().then(function (blob) {
        var url = URL.createObjectURL(blob);
        var link = el("a", { href: url, download: name, hidden: true });
        document.body.appendChild(link);
        link.click();
        link.remove();
        setTimeout(function () { URL.revokeObjectURL(url); }, 10000); // after the browser has read it
        return name;
      });
    });
  }
  function failed(error) { toast((error && error.message) || String(error), true); }
  // for the other views of the console (insights.js): the same helpers, the same token
  window.supportbotConsole = {
    api: api, download: download, el: el, clear: clear, toast: toast, failed: failed, duration: duration,
    settings: function () { return S.settings; }, me: function () { return S.me; }
  };

  // --- log in / out ---------------------------------------------------------------------------
  function showLogin(message) {
    $("app-view").hidden = true;
    $("login-view").hidden = false;
    $("login-error").textContent = message || "";
    $("login-name").focus();
  }
  function loggedOut(message) {
    S.token = null;
    try { sessionStorage.removeItem(TOKEN_KEY); } catch (e) { /* ignore */ }
    if (S.events) S.events.abort();
    S.events = null;
    document.dispatchEvent(new CustomEvent("console:gone"));
    showLogin(message);
  }
  $("login-form").addEventListener("submit", function (event) {
    event.preventDefault();
    $("login-error").textContent = "";
    api("POST", "/auth/login", { login: $("login-name").value.trim(), password: $("login-password").value })
      .then(function (answer) {
        S.token = answer.token;
        try { sessionStorage.setItem(TOKEN_KEY, answer.token); } catch (e) { /* ignore */ }
        $("login-password").value = "";
        start();
      })
      .catch(function (error) { $("login-error").textContent = error.message || "Log in failed"; });
  });
  $("logout").addEventListener("click", function () {
    api("POST", "/auth/logout").catch(function () { return null; }).then(function () { loggedOut(""); });
  });

  function start() {
    api("GET", "/console/settings").then(function (settings) {
      S.settings = settings;
      S.me = settings.agent;
      S.skew = Date.parse(settings.server_time) - Date.now();
      try { S.seen = JSON.parse(localStorage.getItem("supportbot.console.seen." + S.me.login) || "{}"); } catch (e) { S.seen = {}; }
      $("login-view").hidden = true;
      $("app-view").hidden = false;
      $("me-name").textContent = S.me.name + " (" + S.me.role + ")";
      document.dispatchEvent(new CustomEvent("console:ready", { detail: S.me }));
      $("app-view").classList.toggle("editor", S.me.role === "editor");
      if (S.me.role === "editor") return null; // content only (knowledge.js): no queue, no conversations
      renderCanned();
      listen();
      return refresh();
    }).catch(function (error) {
      if (error.status !== 401) showLogin(error.message);
    });
  }

  $("my-status").addEventListener("change", function () {
    var status = $("my-status").value;
    api("PUT", "/agents/me/status", { status: status }).then(function (answer) {
      toast("You are " + answer.status + (answer.assigned.length ? ": " + answer.assigned.length + " conversation(s) assigned" : ""));
      refresh();
    }).catch(failed);
  });

  // --- live events: SSE over fetch, so the token travels in a header, never in a URL ------------
  function listen() {
    if (S.events) S.events.abort();
    var controller = new AbortController();
    S.events = controller;
    (function connect() {
      if (controller.signal.aborted) return;
      var url = "/api/v1/events" + (S.lastEventId ? "?after=" + encodeURIComponent(S.lastEventId) : "");
      fetch(url, { headers: { Authorization: "Bearer " + S.token }, signal: controller.signal })
        .then(function (response) {
          if (response.status === 401) { loggedOut("Your session has ended: log in again."); return null; }
          if (!response.ok || !response.body) throw new Error("HTTP " + response.status);
          $("live").className = "live on";
          var reader = response.body.getReader();
          var decoder = new TextDecoder();
          var buffer = "";
          function pump() {
            return reader.read().then(function (chunk) {
              if (chunk.done) return null;
              buffer += decoder.decode(chunk.value, { stream: true });
              var blocks = buffer.split("\n\n");
              buffer = blocks.pop();
              blocks.forEach(onBlock);
              return pump();
            });
          }
          return pump();
        })
        .catch(function () { return null; })
        .then(function () {
          $("live").className = "live";
          if (!controller.signal.aborted && S.token) setTimeout(connect, 2000);
        });
    })();
  }
  function onBlock(block) {
    var kind = null, id = null, data = null;
    block.split("\n").forEach(function (line) {
      if (line.indexOf("event: ") === 0) kind = line.slice(7);
      else if (line.indexOf("id: ") === 0) id = line.slice(4);
      else if (line.indexOf("data: ") === 0) data = line.slice(6);
    });
    if (id) S.lastEventId = id;
    if (!kind || data === null) return;
    var event = null;
    try { event = JSON.parse(data); } catch (e) { return; }
    if (kind === "sla_breached") toast("SLA: conversation #" + event.conversation_id + " has waited too long", true);
    // Code Red (supervisors' stream only): a likely unhappy customer, and why
    if (kind === "code_red") toast("Code Red: conversation #" + event.conversation_id + ": " + ((event.data.reason || {}).why || event.data.signal), true);
    scheduleRefresh();
  }
  function scheduleRefresh() {
    clearTimeout(S.refreshTimer);
    S.refreshTimer = setTimeout(refresh, 120);
  }

  // --- the lists ------------------------------------------------------------------------------
  function refresh() {
    if (!S.token) return Promise.resolve();
    if (S.refreshing) { S.again = true; return S.refreshing; }
    S.refreshing = Promise.all([
      api("GET", "/conversations?state=waiting"),
      api("GET", "/conversations?mine=true"),
      api("GET", "/queue"),
      api("GET", "/console/unread"),
      api("GET", "/agents/me")
    ]).then(function (results) {
      S.queue = results[0];
      S.mine = results[1].filter(function (c) { return c.state === "with_agent"; });
      S.summary = results[2];
      S.unread = {};
      results[3].forEach(function (u) { S.unread[u.conversation_id] = u.customer_message_ids; });
      S.me = Object.assign({}, S.me, results[4]);
      renderHeader();
      renderLists();
      return S.openId ? loadConversation(S.openId) : null;
    }).catch(function (error) {
      if (error.status !== 401) failed(error);
    }).then(function () {
      S.refreshing = null;
      if (S.again) { S.again = false; scheduleRefresh(); }
    });
    return S.refreshing;
  }

  function renderHeader() {
    $("my-status").value = S.me.status;
    $("my-status").className = "status-" + S.me.status;
    $("my-load").textContent = (S.me.load || 0) + " / " + S.me.capacity + " conversations";
    var q = S.summary || {};
    var parts = [
      q.online_agents + " agent(s) online",
      q.free_slots + " free slot(s)",
      "next wait ≈ " + duration(q.estimated_wait_for_next_seconds || 0)
    ];
    if (q.open === false) parts.push("outside business hours");
    $("queue-summary").textContent = parts.join(" · ");
  }

  function unreadCount(c) {
    var ids = S.unread[c.id] || [];
    var seen = S.seen[c.id] || 0;
    return ids.filter(function (id) { return id > seen; }).length;
  }

  function item(c, kind) {
    var since = c.waiting_since || c.handoff_at;
    var flags = [];
    if (c.sla_breached) flags.push(el("span", { class: "flag flag-sla", title: "First response SLA breached", text: "SLA" }));
    if (c.code_red_at) flags.push(el("span", { class: "flag flag-red", title: "Code Red: likely unhappy (see Insights)", text: "RED" }));
    if (c.priority > 0) flags.push(el("span", { class: "flag flag-priority", title: "Priority " + c.priority, text: "P" + c.priority }));
    var unread = kind === "mine" ? unreadCount(c) : 0;
    if (unread) flags.push(el("span", { class: "unread", title: unread + " unread", text: String(unread) }));
    var waiting = kind === "queue"
      ? el("span", { class: "wait", data: { since: since || "" }, text: "" })
      : el("span", { class: "muted small", text: c.state === "with_agent" ? "with you" : c.state });
    var button = el("button", {
      type: "button", class: "conv-item" + (c.id === S.openId ? " active" : ""), data: { id: String(c.id) },
      on: { click: function () { openConversation(c.id); } }
    }, [
      el("span", { class: "conv-name", text: customerLabel(c) }),
      el("span", { class: "conv-sub muted small", text: "#" + c.id + " · " + c.channel + " · " + languageOf(c) + (kind === "queue" && c.queue_position ? " · #" + c.queue_position + " in queue" : "") }),
      el("span", { class: "conv-flags" }, [waiting].concat(flags))
    ]);
    return el("li", { class: kind === "queue" && c.sla_breached ? "sla-breached" : null }, [button]);
  }

  function renderLists() {
    var queue = clear($("queue-list"));
    S.queue.forEach(function (c) { queue.appendChild(item(c, "queue")); });
    if (!S.queue.length) queue.appendChild(el("li", { class: "muted small", text: "Nobody is waiting." }));
    $("queue-count").textContent = String(S.queue.length);
    var mine = clear($("mine-list"));
    S.mine.forEach(function (c) { mine.appendChild(item(c, "mine")); });
    if (!S.mine.length) mine.appendChild(el("li", { class: "muted small", text: "None yet: go online, or take one from the queue." }));
    $("mine-count").textContent = String(S.mine.length);
    tick();
  }

  function tick() {
    var sla = (S.settings && S.settings.sla_first_response) || 180;
    Array.prototype.forEach.call(document.querySelectorAll("[data-since]"), function (node) {
      var since = Date.parse(node.dataset.since);
      if (isNaN(since)) { node.textContent = ""; return; }
      var waited = (now() - since) / 1000;
      node.textContent = "waiting " + duration(waited);
      node.classList.toggle("sla-near", waited >= sla * 0.75 && waited < sla);
      node.classList.toggle("sla-over", waited >= sla);
    });
  }
  setInterval(tick, 1000);
  setInterval(function () { if (S.token && S.me && S.me.role !== "editor") refresh(); }, 15000);

  // --- one conversation -----------------------------------------------------------------------
  function openConversation(id) {
    if (S.openId !== id) {
      S.openId = id;
      S.detail = null;
      S.actionsKey = null;
      S.suggestionsFor = null;
      $("reply-text").value = "";
      clear($("suggestions"));
    }
    Array.prototype.forEach.call(document.querySelectorAll(".conv-item"), function (b) {
      b.classList.toggle("active", b.dataset.id === String(id));
    });
    return loadConversation(id).catch(failed);
  }

  function loadConversation(id) {
    return api("GET", "/conversations/" + id).then(function (detail) {
      if (S.openId !== id) return;
      S.detail = detail;
      renderConversation(detail);
      var lastIn = 0;
      detail.messages.forEach(function (m) { if (m.direction === "in") lastIn = Math.max(lastIn, m.id); });
      if (S.suggestionsFor !== lastIn) {
        S.suggestionsFor = lastIn;
        loadSuggestions(id);
      }
      var top = detail.messages.reduce(function (max, m) { return Math.max(max, m.id); }, 0);
      if ((S.seen[id] || 0) < top) {
        S.seen[id] = top;
        try { localStorage.setItem("supportbot.console.seen." + S.me.login, JSON.stringify(S.seen)); } catch (e) { /* ignore */ }
        renderLists();
      }
    }).catch(function (error) {
      if (error.status === 404 || error.status === 403) {
        S.openId = null;
        $("conversation-view").hidden = true;
        $("empty-view").hidden = false;
        clear($("card"));
      }
      throw error;
    });
  }

  function mineToAnswer(detail) {
    return detail.state === "with_agent" && detail.assigned_agent && detail.assigned_agent.login === S.me.login;
  }

  function renderConversation(d) {
    $("empty-view").hidden = true;
    $("conversation-view").hidden = false;
    $("conv-title").textContent = customerLabel(d);
    var meta = ["#" + d.id, d.channel, "language " + languageOf(d), d.state.replace("_", " ")];
    if (d.assigned_agent) meta.push("with " + d.assigned_agent.name);
    if (d.reason) meta.push("handed off: " + d.reason);
    if (d.sla_breached) meta.push("SLA breached");
    $("conv-meta").textContent = meta.join(" · ");
    renderActions(d);
    renderTranscript(d);
    var canAnswer = mineToAnswer(d);
    $("composer").hidden = !canAnswer;
    $("composer-off").hidden = canAnswer;
    $("composer-off").textContent = d.state === "waiting"
      ? "Take this conversation to answer it."
      : d.state === "with_agent" ? "This conversation is with " + (d.assigned_agent ? d.assigned_agent.name : "another agent") + "."
      : "This conversation is " + d.state + ".";
    renderCard(d);
  }

  function renderActions(d) {
    var key = [d.id, d.state, d.assigned_agent ? d.assigned_agent.login : ""].join("|");
    if (key === S.actionsKey) return;
    S.actionsKey = key;
    var box = clear($("conv-actions"));
    if (d.state === "waiting") {
      box.appendChild(el("button", { type: "button", class: "primary", id: "take", on: { click: function () {
        api("POST", "/conversations/" + d.id + "/accept").then(function () { toast("It is yours now."); return refresh(); }).catch(failed);
      } } }, ["Take"]));
    }
    var holder = d.state === "with_agent" && (mineToAnswer(d) || S.me.role !== "agent");
    if (!holder) return;
    var target = el("select", { id: "transfer-target", "aria-label": "Transfer to" }, [el("option", { value: "", text: "Back to the queue" })]);
    api("GET", "/console/agents").then(function (agents) {
      agents.filter(function (a) { return !a.me; }).forEach(function (a) {
        target.appendChild(el("option", { value: a.login, text: a.name + " (" + a.load + "/" + a.capacity + ")" }));
      });
    }).catch(function () { return null; });
    var reason = el("input", { id: "transfer-reason", placeholder: "Reason (optional)", maxlength: "500" });
    box.appendChild(el("span", { class: "transfer" }, [
      target, reason,
      el("button", { type: "button", id: "transfer", on: { click: function () {
        var body = target.value ? { agent_login: target.value } : { queue: true };
        if (reason.value.trim()) body.reason = reason.value.trim();
        api("POST", "/conversations/" + d.id + "/transfer", body)
          .then(function () { toast("Transferred."); return refresh(); }).catch(failed);
      } } }, ["Transfer"])
    ]));
    box.appendChild(el("button", { type: "button", class: "resolve", id: "resolve", on: { click: function () {
      api("POST", "/conversations/" + d.id + "/resolve", { reason: "resolved in the console" })
        .then(function () { toast("Resolved: the customer is back with the bot."); return refresh(); }).catch(failed);
    } } }, ["Resolve"]));
  }

  function senderName(m) {
    if (m.sender === "customer") return "Customer";
    if (m.sender === "bot") return "Bot";
    if (m.sender === "agent") return m.agent || "Agent";
    return "System";
  }

  function renderMessage(m) {
    var head = [el("span", { class: "who", text: senderName(m) })];
    if (m.sender === "bot") head.unshift(el("span", { class: "badge-bot", text: "BOT" }));
    head.push(el("time", { class: "muted small", datetime: m.at, text: clock(m.at) }));
    if (m.direction === "out" && m.status && m.status !== "sent") head.push(el("span", { class: "muted small", text: m.status }));
    var silent = m.direction === "in" && !m.text && !(m.attachments || []).length;
    var body = [silent
      ? el("div", { class: "text muted small", text: "(opened the chat)" })
      : el("div", { class: "text", text: m.text || "" })];
    (m.attachments || []).forEach(function (a) {
      body.push(el("div", { class: "attachment muted small", text: "[" + (a.kind || "file") + (a.caption ? ": " + a.caption : "") + "]" }));
    });
    if (m.buttons && m.buttons.length) {
      body.push(el("div", { class: "chips" }, m.buttons.map(function (b) { return el("span", { class: "chip", text: b.title }); })));
    }
    return el("article", { class: "msg msg-" + m.direction + " msg-" + m.sender, data: { id: String(m.id) } }, [
      el("header", {}, head)
    ].concat(body));
  }

  // The transcript follows new messages unless the agent has scrolled up to read.
  var stick = true;
  function toBottom() { var box = $("transcript"); box.scrollTop = box.scrollHeight; }
  $("transcript").addEventListener("scroll", function () {
    var box = $("transcript");
    stick = box.scrollHeight - box.scrollTop - box.clientHeight < 40;
  });
  if (window.ResizeObserver) new ResizeObserver(function () { if (stick) toBottom(); }).observe($("transcript"));

  function renderTranscript(d) {
    var box = $("transcript");
    var scrolled = box.scrollTop;
    if (box.dataset.opened !== String(d.id)) stick = true;
    clear(box);
    var handoff = d.handoff_at ? Date.parse(d.handoff_at) : null;
    var botPart = el("section", { class: "part bot-part", "aria-label": "With the bot" }, [
      el("h3", { text: "With the bot" })
    ]);
    var humanPart = el("section", { class: "part human-part", "aria-label": "With the team" }, [
      el("h3", { text: "Handed to the team" + (d.reason ? " (" + d.reason + ")" : "") })
    ]);
    var humans = 0;
    d.messages.forEach(function (m) {
      var before = handoff === null || Date.parse(m.at) < handoff;
      if (!before) humans += 1;
      (before ? botPart : humanPart).appendChild(renderMessage(m));
    });
    box.appendChild(botPart);
    if (handoff !== null || humans) box.appendChild(humanPart);
    box.dataset.opened = String(d.id);
    if (stick) toBottom(); else box.scrollTop = scrolled;
  }

  // --- the context card -------------------------------------------------------------------------
  function field(label, value) {
    if (value === null || value === undefined || value === "") return null;
    return el("div", { class: "field" }, [el("dt", { text: label }), el("dd", { text: String(value) })]);
  }
  function block(title, children, className) {
    return el("section", { class: "card-block " + (className || "") }, [el("h3", { text: title })].concat(children));
  }
  function valueText(value) {
    if (value === null || value === undefined) return "";
    if (typeof value === "object") return JSON.stringify(value);
    return String(value);
  }
  function providerBlock(name, result) {
    var children = [];
    if (!result || result.status === "pending") {
      children.push(el("p", { class: "muted small", text: "loading…" }));
    } else if (result.status !== "ok") {
      children.push(el("p", { class: "error small", text: result.error || "failed" }));
    } else {
      var data = result.data || {};
      Object.keys(data).forEach(function (key) {
        var value = data[key];
        if (Array.isArray(value) && value.length && typeof value[0] === "object") {
          var columns = Object.keys(value[0]);
          children.push(el("table", { class: "data" }, [
            el("caption", { text: key }),
            el("thead", {}, [el("tr", {}, columns.map(function (c) { return el("th", { text: c }); }))]),
            el("tbody", {}, value.map(function (row) {
              return el("tr", {}, columns.map(function (c) {
                var v = row[c];
                return el("td", { text: Array.isArray(v) ? v.join(", ") : valueText(v) });
              }));
            }))
          ]));
        } else {
          children.push(el("dl", {}, [field(key, Array.isArray(value) ? value.map(valueText).join(", ") : valueText(value))]));
        }
      });
    }
    return block("From " + name, children, "provider");
  }

  function renderCard(d) {
    var draft = $("note-text");
    var keep = draft && $("card").dataset.id === String(d.id) ? draft.value : "";
    var card = clear($("card"));
    card.dataset.id = String(d.id);
    var ctx = d.context || {};
    var customer = ctx.customer || d.customer || {};
    card.appendChild(block("Customer", [el("dl", {}, [
      field("Name", customer.name),
      field("Channel", customer.channel),
      field("Id", customer.external_id),
      field("Username", customer.username),
      field("Phone", customer.phone),
      field("Language", ctx.language || customer.language)
    ])], "profile"));
    var handoff = [
      field("Reason", ctx.reason || d.reason),
      field("Priority", d.priority),
      field("VIP", ctx.vip ? "yes" : null),
      field("Waiting since", d.waiting_since ? clock(d.waiting_since) : null),
      field("First response", d.sla && d.sla.first_response_seconds !== null && d.sla.first_response_seconds !== undefined ? duration(d.sla.first_response_seconds) : null),
      field("SLA", d.sla_breached ? "breached" : null)
    ];
    card.appendChild(block("Handoff", [el("dl", {}, handoff)]));
    var answered = ctx.answered_entries || [];
    card.appendChild(block("The bot already answered", [
      answered.length
        ? el("ul", { class: "plain" }, answered.map(function (a) { return el("li", { text: a }); }))
        : el("p", { class: "muted small", text: "nothing" })
    ], "answered"));
    var matched = ctx.matched || [];
    card.appendChild(block("What the bot understood", [
      matched.length
        ? el("ul", { class: "plain" }, matched.map(function (m) {
            return el("li", {}, [
              el("q", { text: m.text }),
              " → " + (m.decision || "") + (m.label ? " " + m.label : "") + (m.score !== null && m.score !== undefined ? " (" + Number(m.score).toFixed(2) + ")" : "")
            ]);
          }))
        : el("p", { class: "muted small", text: "nothing matched" })
    ], "matched"));
    var providers = ctx.providers || {};
    Object.keys(providers).forEach(function (name) { card.appendChild(providerBlock(name, providers[name])); });
    if (!Object.keys(providers).length) {
      card.appendChild(block("Orders", [el("p", { class: "muted small", text: "No context providers configured (handoff.context_providers)." })], "provider"));
    }
    var previous = ctx.previous_conversations || [];
    card.appendChild(block("Previous conversations", [
      previous.length
        ? el("ul", { class: "plain" }, previous.map(function (p) {
            return el("li", { text: "#" + p.id + " · " + (p.started_at ? new Date(p.started_at).toLocaleDateString() : "") + " · " + p.outcome + (p.agents && p.agents.length ? " · " + p.agents.join(", ") : "") + (p.resolution ? " · " + p.resolution : "") });
          }))
        : el("p", { class: "muted small", text: "none" })
    ], "previous"));
    var note = el("textarea", { id: "note-text", rows: "2", maxlength: "4096", placeholder: "Internal note (never sent to the customer)" });
    note.value = keep;
    card.appendChild(block("Notes", [
      el("ul", { class: "plain" }, (d.notes || []).map(function (n) { return el("li", { text: (n.author || "") + ": " + (n.text || "") }); })),
      note,
      el("button", { type: "button", id: "note-add", on: { click: function () {
        if (!note.value.trim()) return;
        api("POST", "/conversations/" + d.id + "/notes", { text: note.value }).then(function () {
          note.value = "";
          toast("Note added.");
          return loadConversation(d.id);
        }).catch(failed);
      } } }, ["Add note"])
    ], "notes"));
  }

  // --- the composer: suggestions, canned responses, reply -------------------------------------
  function insert(text) {
    var box = $("reply-text");
    box.value = box.value.trim() ? box.value.replace(/\s+$/, "") + "\n\n" + text : text;
    box.focus();
    box.setSelectionRange(box.value.length, box.value.length);
  }

  function loadSuggestions(id) {
    var box = $("suggestions");
    api("GET", "/console/conversations/" + id + "/suggestions").then(function (answer) {
      if (S.openId !== id) return;
      clear(box);
      if (!answer.suggestions.length) return;
      box.appendChild(el("h3", {}, [
        "Suggested answers",
        answer.for_message ? el("span", { class: "muted small" }, [" for ", el("q", { text: answer.for_message.text })]) : null
      ]));
      box.appendChild(el("ul", { class: "suggestion-list" }, answer.suggestions.map(function (s) {
        return el("li", { class: "suggestion", data: { entry: s.entry } }, [
          el("div", { class: "suggestion-head" }, [
            el("strong", { text: s.title }),
            el("span", { class: "muted small", text: " " + s.score.toFixed(2) + (s.already_answered ? " · the bot already sent this" : "") })
          ]),
          el("p", { class: "suggestion-text", text: s.answer }),
          el("button", { type: "button", class: "insert", on: { click: function () { insert(s.answer); } } }, ["Insert"])
        ]);
      })));
    }).catch(function () { clear(box); });
  }

  function renderCanned() {
    var box = clear($("canned"));
    var canned = (S.settings && S.settings.canned_responses) || [];
    if (!canned.length) return;
    box.appendChild(el("span", { class: "muted small", text: "Canned: " }));
    canned.forEach(function (c) {
      box.appendChild(el("button", { type: "button", class: "canned-item", on: { click: function () {
        var d = S.detail || {};
        var language = languageOf(d);
        var text = c.text[language] || c.text[S.settings.default_language] || c.text[Object.keys(c.text)[0]] || "";
        var customer = (d.customer && d.customer.name) || "";
        insert(text.split("{agent}").join(S.me.name).split("{customer}").join(customer));
      } } }, [c.title]));
    });
  }

  function sendReply() {
    var d = S.detail;
    var box = $("reply-text");
    var text = box.value;
    if (!d || !text.trim()) return;
    $("reply-send").disabled = true;
    api("POST", "/conversations/" + d.id + "/messages", { text: text }).then(function () {
      if (box.value === text) box.value = "";
      $("composer-note").textContent = "Sent " + clock(new Date().toISOString());
      return loadConversation(d.id);
    }).catch(failed).then(function () { $("reply-send").disabled = false; });
  }
  $("reply-send").addEventListener("click", sendReply);
  $("reply-text").addEventListener("keydown", function (event) {
    if (event.key === "Enter" && (event.ctrlKey || event.metaKey)) { event.preventDefault(); sendReply(); }
  });

  // --- start ------------------------------------------------------------------------------------
  try { S.token = sessionStorage.getItem(TOKEN_KEY); } catch (e) { S.token = null; }
  if (S.token) start(); else showLogin("");
})();
