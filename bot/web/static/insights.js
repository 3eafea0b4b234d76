/* The console's Insights view, for supervisors: the support lead's numbers (GET /api/v1/stats), the
 * questions the bot missed (GET /api/v1/misses), each of which can become a question of a knowledge-base
 * entry or an out-of-scope example, and how each entry's answers land (GET /api/v1/answers); both tables
 * download as CSV. Built on console.js's helpers (same token); text goes in as textContent.
 */
(function () {
  "use strict";

  var C = window.supportbotConsole;
  if (!C) return;
  var el = C.el, clear = C.clear, api = C.api;
  var MISSES_SHOWN = 100;
  var entries = null; // the KB entries in service, fetched once per log-in
  var loading = 0; // answers of older loads are dropped

  function $(id) { return document.getElementById(id); }
  function known(x) { return x !== null && x !== undefined; }
  function percent(share) { return known(share) ? (Math.round(share * 1000) / 10) + " %" : "–"; }
  function wait(seconds) { return known(seconds) ? C.duration(seconds) : "–"; }
  function when(iso) { return iso ? new Date(iso).toLocaleString([], { dateStyle: "medium", timeStyle: "short" }) : ""; }
  function day(iso) { return iso ? new Date(iso).toLocaleDateString([], { dateStyle: "medium" }) : ""; }

  // --- the tab --------------------------------------------------------------------------------
  function show(insights) {
    $("app-view").classList.toggle("show-insights", insights);
    $("insights-view").hidden = !insights;
    $("tab-insights").classList.toggle("active", insights);
    $("tab-insights").setAttribute("aria-pressed", String(insights));
    $("tab-conversations").classList.toggle("active", !insights);
    $("tab-conversations").setAttribute("aria-pressed", String(!insights));
    if (insights) load();
  }
  function ready(me) {
    $("tabs").hidden = me.role !== "supervisor" && me.role !== "admin"; // the API refuses agents anyway
    entries = null;
    show(false);
  }
  document.addEventListener("console:ready", function (event) { ready(event.detail); });
  if (C.me()) ready(C.me()); // logged in before this script ran
  document.addEventListener("console:gone", function () { $("tabs").hidden = true; show(false); });
  $("tab-conversations").addEventListener("click", function () { show(false); });
  $("tab-insights").addEventListener("click", function () { show(true); });
  $("insights-days").addEventListener("change", load);
  $("insights-refresh").addEventListener("click", load);
  function saveCsv(button, path) {
    button.addEventListener("click", function () {
      button.disabled = true;
      C.download(path + "?days=" + $("insights-days").value)
        .then(function (name) { C.toast("Saved " + name + "."); })
        .catch(C.failed)
        .then(function () { button.disabled = false; });
    });
  }
  saveCsv($("answers-csv"), "/answers.csv");
  saveCsv($("misses-csv"), "/misses.csv");

  function load() {
    var days = $("insights-days").value;
    var mine = ++loading;
    return Promise.all([
      api("GET", "/stats?days=" + days),
      api("GET", "/misses?days=" + days + "&limit=" + MISSES_SHOWN),
      entries ? Promise.resolve(entries) : api("GET", "/kb/entries").then(function (kb) { return kb.entries; }),
      api("GET", "/answers?days=" + days),
      api("GET", "/flags?days=" + days),
      api("GET", "/kudos?days=" + days)
    ]).then(function (answers) {
      if (mine !== loading) return;
      entries = answers[2];
      renderStats(answers[0]);
      renderMisses(answers[1].misses);
      renderAnswers(answers[3].answers);
      renderFlags(answers[4], answers[5]);
    }).catch(C.failed);
  }

  // --- the numbers ----------------------------------------------------------------------------
  function tile(label, value, note) {
    return el("div", { class: "tile" }, [
      el("span", { class: "muted small", text: label }),
      el("span", { class: "value", text: value }),
      note ? el("span", { class: "muted small", text: note }) : null
    ]);
  }

  function table(caption, head, rows, empty) {
    return el("table", { class: "data" }, [
      el("caption", { text: caption }),
      el("thead", {}, [el("tr", {}, head.map(function (h) { return el("th", { text: h }); }))]),
      el("tbody", {}, rows.length
        ? rows.map(function (row) { return el("tr", {}, row.map(function (cell) { return el("td", { text: String(cell) }); })); })
        : [el("tr", {}, [el("td", { colspan: String(head.length), class: "muted", text: empty })])])
    ]);
  }

  function counted(counts, total) {
    return Object.keys(counts).sort(function (a, b) { return counts[b] - counts[a]; }).map(function (key) {
      return [key, counts[key], percent(total ? counts[key] / total : null)];
    });
  }

  function renderStats(s) {
    $("insights-period").textContent = day(s.since) + " – " + day(s.until);
    var d = s.decisions, h = s.handoffs, w = s.wait, f = s.feedback, csat = s.csat;
    var numbers = clear($("insights-numbers"));
    [
      tile("Conversations", String(s.conversations), s.customer_messages + " customer messages"),
      tile("Answered by the bot", percent(d.rates.answer), d.counts.answer + " of " + d.total + " questions"),
      tile("Clarifying questions", percent(d.rates.clarify), d.counts.clarify + " questions"),
      tile("Fallbacks", percent(d.rates.fallback), d.counts.fallback + " questions"),
      tile("Handed to a person", percent(d.rates.handoff), h.total + " handoffs in " + h.conversations + " conversations"),
      tile("Wait for an agent (median)", wait(w.median_seconds), "p90 " + wait(w.p90_seconds) + " · " + w.answered + " answered, " + w.unanswered + " unanswered"),
      tile("SLA breaches", String(s.sla_breaches), "first response later than the SLA"),
      tile("Resolved by agents", String(s.resolved)),
      tile("👍 / 👎", f.up + " / " + f.down, percent(f.up_share) + " 👍"),
      tile("CSAT", known(csat.average) ? csat.average.toFixed(2) + " / 3" : "–", csat.count + " ratings · " + percent(csat.satisfied_share) + " 😀"),
      tile("Complaints / compliments", s.complaints + " / " + s.compliments),
      tile("NPS", known(s.nps.score) ? String(s.nps.score) : "–", s.nps.count + " answers · " + s.nps.promoters + " promoters, " + s.nps.detractors + " detractors"),
      tile("Code Red", String(s.code_red.count), percent(s.code_red.resolved_share) + " resolved · " + s.kudos + " kudos")
    ].forEach(function (node) { numbers.appendChild(node); });

    var tables = clear($("insights-tables"));
    tables.appendChild(table("By channel", ["Channel", "Conversations", "Share"], counted(s.by_channel, s.conversations), "none"));
    tables.appendChild(table("By language", ["Language", "Conversations", "Share"], counted(s.by_language, s.conversations), "none"));
    tables.appendChild(table("Handoff reasons", ["Reason", "Handoffs", "Share"], counted(h.reasons, h.total), "no handoffs"));
    tables.appendChild(table("Agents", ["Agent", "Resolved", "Ratings", "CSAT"], s.agents.map(function (a) {
      return [a.name + " (" + a.login + ")", a.resolved, a.csat_count, known(a.csat_average) ? a.csat_average.toFixed(2) : "–"];
    }), "nobody resolved or was rated"));
  }

  // --- Code Red and kudos (GET /api/v1/flags, /api/v1/kudos) -------------------------------------
  function renderFlags(red, kudos) {
    var tables = $("insights-tables");
    tables.appendChild(table("Code Red: likely unhappy customers", ["When", "Conversation", "Signal", "Why", "Their words", "Resolved"], red.map(function (f) {
      return [when(f.created_at), "#" + f.conversation_id + " " + (f.customer || ""), f.signal, f.reason.why || "", f.text || "", f.resolved ? "yes" : "no"];
    }), "no Code Red in this period"));
    tables.appendChild(table("Kudos: to share with the team", ["When", "Conversation", "Agent", "Their words"], kudos.map(function (f) {
      return [when(f.created_at), "#" + f.conversation_id + " " + (f.customer || ""), f.agent || "", f.text || f.reason.why || ""];
    }), "no kudos in this period"));
  }

  // --- the misses -----------------------------------------------------------------------------
  var KINDS = { fallback: "fallback", clarify: "asked to clarify", disliked: "answer got 👎" };

  function entryPicker(miss) {
    var picker = el("select", { "aria-label": "Knowledge-base entry", class: "entry-pick" }, [
      el("option", { value: "", text: "Choose an entry…" })
    ]);
    (entries || []).forEach(function (e) {
      picker.appendChild(el("option", { value: e.id, text: e.id + " · " + e.title }));
    });
    picker.value = miss.closest_entry && (entries || []).some(function (e) { return e.id === miss.closest_entry; })
      ? miss.closest_entry : "";
    return picker;
  }

  function act(button, request, done) {
    button.disabled = true;
    request().then(function (answer) {
      C.toast(done(answer) + " The running bot reloads it by itself.");
      return load();
    }).catch(C.failed).then(function () { button.disabled = false; });
  }

  function actions(miss) {
    if (miss.handled) {
      var what = miss.handled.action === "question" ? "added to " + miss.handled.entry : "marked out of scope";
      return el("span", { class: "done", text: "✓ " + what + " by " + miss.handled.by + ", " + when(miss.handled.at) });
    }
    var picker = entryPicker(miss);
    var languages = (C.settings() && C.settings().languages) || [];
    var asQuestion = el("button", { type: "button", class: "add-question" }, ["Add as a question"]);
    asQuestion.addEventListener("click", function () {
      if (!picker.value) { C.toast("Choose the entry that answers it first.", true); return; }
      var body = { text: miss.text };
      if (languages.indexOf(miss.language) >= 0) body.language = miss.language;
      act(asQuestion, function () {
        return api("POST", "/kb/entries/" + encodeURIComponent(picker.value) + "/questions", body);
      }, function (a) { return "Added to " + a.entry + " (" + a.file + ", line " + a.line + ")."; });
    });
    var outOfScope = el("button", { type: "button", class: "add-oos", title: "The bot should decline questions like this" }, ["Out of scope"]);
    outOfScope.addEventListener("click", function () {
      act(outOfScope, function () {
        return api("POST", "/intents/oos/examples", { text: miss.text });
      }, function (a) { return "Marked out of scope (" + a.file + ", line " + a.line + ")."; });
    });
    return el("div", { class: "act" }, [picker, asQuestion, outOfScope]);
  }

  function renderMisses(misses) {
    $("misses-count").textContent = String(misses.length);
    var body = clear($("misses").querySelector("tbody"));
    if (!misses.length) {
      body.appendChild(el("tr", {}, [el("td", { colspan: "7", class: "muted", text: "Nothing missed in this period." })]));
      return;
    }
    misses.forEach(function (m) {
      var happened = m.kinds.map(function (k) { return KINDS[k] || k; }).join(", ") + (m.reason ? " (" + m.reason + ")" : "");
      body.appendChild(el("tr", { class: m.handled ? "handled" : null }, [
        el("td", { class: "miss-text", text: m.text }),
        el("td", { class: "num", text: String(m.count) }),
        el("td", { text: happened }),
        el("td", { text: m.language || "" }),
        el("td", { text: m.closest_entry ? m.closest_entry + " (" + m.score.toFixed(2) + ")" : "–" }),
        el("td", { text: when(m.last_seen) }),
        el("td", {}, [actions(m)])
      ]));
    });
  }

  // --- how the answers land -------------------------------------------------------------------
  function renderAnswers(rows) {
    function used(r) { return r.answered > 0 || r.up > 0 || r.down > 0; }
    $("answers-count").textContent = String(rows.filter(used).length);
    var body = clear($("answers").querySelector("tbody"));
    rows.forEach(function (r) {
      var questions = r.recent_down.map(function (d) { return el("li", { title: when(d.at), text: d.question }); });
      body.appendChild(el("tr", { class: used(r) ? null : "unused", data: { entry: r.entry } }, [
        el("td", {}, [
          el("span", { class: "entry-id", text: r.entry }),
          el("span", { class: "muted small entry-title", text: r.in_service ? r.title : "no longer in the knowledge base" })
        ]),
        el("td", { class: "num", text: String(r.answered) }),
        el("td", { class: "num", text: String(r.up) }),
        el("td", { class: "num", text: String(r.down) }),
        el("td", { class: "num", text: percent(r.down_share) }),
        el("td", { class: "num handed-off", text: r.answered ? r.handed_off + " (" + percent(r.handed_off_share) + ")" : "–" }),
        el("td", {}, [questions.length ? el("ul", { class: "down-questions" }, questions) : null])
      ]));
    });
  }
})();
