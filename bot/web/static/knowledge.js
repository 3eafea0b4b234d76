/* The console's Knowledge tab, for content editors, supervisors and admins, over /api/v1/kb: every entry with
 * its tags, file, questions per language, answer languages (gaps in red) and how its answers land
 * (GET /api/v1/answers); search by text or by meaning, filter by tag; an entry's form (saved with If-Match:
 * a stale version shows both versions side by side); its history with revert; and a box to try a message
 * with the KB as saved or with the unsaved form. Built on console.js's helpers; text goes in as textContent.
 */
(function () {
  "use strict";

  var C = window.supportbotConsole;
  if (!C) return;
  var el = C.el, clear = C.clear, api = C.api;
  var K = { entries: [], languages: [], files: [], landing: {}, open: null, etag: null, isNew: false, loading: 0 };

  function $(id) { return document.getElementById(id); }
  function when(iso) { return iso ? new Date(iso).toLocaleString([], { dateStyle: "medium", timeStyle: "short" }) : ""; }
  function lines(text) { return text.split("\n").map(function (l) { return l.trim(); }).filter(Boolean); }

  // --- the tab ----------------------------------------------------------------------------------
  function show(on) {
    $("app-view").classList.toggle("show-knowledge", on);
    $("knowledge-view").hidden = !on;
    $("tab-knowledge").classList.toggle("active", on);
    $("tab-knowledge").setAttribute("aria-pressed", String(on));
    if (on) {
      $("insights-view").hidden = true;
      $("app-view").classList.remove("show-insights");
      ["tab-insights", "tab-conversations"].forEach(function (id) {
        $(id).classList.remove("active");
        $(id).setAttribute("aria-pressed", "false");
      });
      load();
    }
  }
  function ready(me) {
    var editor = me.role === "editor";
    var may = editor || me.role === "supervisor" || me.role === "admin"; // the API refuses agents anyway
    $("tab-knowledge").hidden = !may;
    $("tab-conversations").hidden = editor;
    $("tab-insights").hidden = editor;
    if (may) $("tabs").hidden = false;
    K.open = null;
    show(editor); // an editor has no conversations: the knowledge is their console
  }
  document.addEventListener("console:ready", function (event) { ready(event.detail); });
  if (C.me()) ready(C.me());
  document.addEventListener("console:gone", function () { show(false); });
  $("tab-knowledge").addEventListener("click", function () { show(true); });
  ["tab-insights", "tab-conversations"].forEach(function (id) {
    $(id).addEventListener("click", function () { show(false); });
  });

  // --- the list -----------------------------------------------------------------------------------
  function query() {
    var text = $("kb-search").value.trim(), params = [];
    if (text) params.push(($("kb-search-mode").value === "meaning" ? "meaning=" : "q=") + encodeURIComponent(text));
    if ($("kb-tag").value) params.push("tag=" + encodeURIComponent($("kb-tag").value));
    return "/kb/entries" + (params.length ? "?" + params.join("&") : "");
  }
  function load() {
    var mine = ++K.loading;
    return Promise.all([
      api("GET", query()),
      api("GET", "/answers?days=30").catch(function () { return { answers: [] }; })
    ]).then(function (answers) {
      if (mine !== K.loading) return;
      var kb = answers[0];
      K.entries = kb.entries; K.languages = kb.languages; K.files = kb.files;
      K.landing = {};
      answers[1].answers.forEach(function (a) { K.landing[a.entry] = a; });
      renderTags(kb.tags);
      renderList();
    }).catch(C.failed);
  }
  function renderTags(tags) {
    var picker = $("kb-tag"), chosen = picker.value;
    clear(picker).appendChild(el("option", { value: "", text: "every tag" }));
    tags.forEach(function (tag) { picker.appendChild(el("option", { value: tag, text: tag })); });
    picker.value = chosen;
  }
  function languagesCell(e, counts, missing, what) {
    return el("td", {}, K.languages.map(function (lang) {
      var gap = missing.indexOf(lang) >= 0;
      var text = lang + (counts ? " " + (counts[lang] || 0) : "");
      return el("span", { class: "lang" + (gap ? " gap" : ""), title: gap ? "no " + what + " in " + lang : null, text: text });
    }));
  }
  function landing(id) {
    var a = K.landing[id];
    if (!a || !a.answered) return el("td", { class: "muted", text: "not used lately" });
    var share = a.down_share === null ? "" : " · " + Math.round(a.down_share * 100) + " % 👎";
    return el("td", { text: a.answered + " answers · 👍 " + a.up + " 👎 " + a.down + share });
  }
  function renderList() {
    var body = clear($("kb-list").querySelector("tbody"));
    $("kb-count").textContent = String(K.entries.length);
    K.entries.forEach(function (e) {
      body.appendChild(el("tr", {
        class: K.open === e.id ? "open" : null, data: { id: e.id },
        on: { click: function () { openEntry(e.id); } }
      }, [
        el("td", {}, [el("strong", { text: e.title }), el("div", { class: "muted small", text: e.id + (e.score !== null ? " · " + e.score.toFixed(2) : "") })]),
        el("td", { text: e.tags.join(", ") }),
        el("td", { class: "small", text: e.file.split("/").pop() + ":" + e.line }),
        languagesCell(e, e.question_counts, e.missing_questions, "questions"),
        languagesCell(e, null, e.missing_answers, "answer"),
        landing(e.id)
      ]));
    });
  }
  var searchTimer = null;
  $("kb-search").addEventListener("input", function () { clearTimeout(searchTimer); searchTimer = setTimeout(load, 300); });
  $("kb-search").addEventListener("keydown", function (event) { if (event.key === "Enter") { clearTimeout(searchTimer); load(); } });
  $("kb-search-mode").addEventListener("change", load);
  $("kb-tag").addEventListener("change", load);

  // --- one entry: the form --------------------------------------------------------------------------
  function openEntry(id) {
    return api("GET", "/kb/entries/" + encodeURIComponent(id)).then(function (entry) {
      K.open = id; K.isNew = false; K.etag = entry.etag;
      renderForm(entry);
      renderList();
    }).catch(C.failed);
  }
  $("kb-new").addEventListener("click", function () {
    K.open = null; K.isNew = true; K.etag = null;
    renderForm({ id: "", own_title: "", tags: [], questions: {}, answer: {}, handoff: false, action: null, file: "" });
  });
  function field(label, input, name) {
    return el("label", {}, [label, input, el("p", { class: "field-error", data: { errorFor: name } })]);
  }
  function renderForm(entry) {
    var box = clear($("kb-editor"));
    box.hidden = false;
    var languages = K.languages.slice();
    Object.keys(entry.questions).concat(Object.keys(entry.answer)).forEach(function (l) { if (languages.indexOf(l) < 0) languages.push(l); });
    var form = el("form", { id: "kb-form", on: { submit: function (event) { event.preventDefault(); save(); } } }, [
      el("h3", { text: K.isNew ? "New entry" : entry.id }),
      K.isNew ? field("Id", el("input", { type: "text", id: "kb-id", maxlength: 64, required: true, placeholder: "gift_wrapping" }), "id") : null,
      K.isNew ? field("File", el("select", { id: "kb-file" }, K.files.map(function (f) { return el("option", { value: f, text: f }); })), "file")
        : el("p", { class: "muted small", text: entry.file + ", line " + entry.line }),
      field("Title (for editors)", el("input", { type: "text", id: "kb-title", maxlength: 200, value: entry.own_title || "" }), "title"),
      field("Tags (comma-separated)", el("input", { type: "text", id: "kb-tags", value: entry.tags.join(", ") }), "tags"),
      el("label", { class: "row" }, [el("input", { type: "checkbox", id: "kb-handoff", checked: entry.handoff }), "Hand over to a person after answering"])
    ].concat(languages.map(function (lang) {
      return el("div", { class: "lang-block", data: { lang: lang } }, [
        field("Questions in " + lang + " (one per line)", el("textarea", { rows: 3, data: { field: "questions." + lang } }), "questions." + lang),
        field("Answer in " + lang, el("textarea", { rows: 4, data: { field: "answer." + lang } }), "answer." + lang)
      ]);
    })).concat([
      el("p", { class: "form-error", id: "kb-form-error", role: "alert" }),
      el("div", { class: "row" }, [
        el("button", { type: "submit", class: "primary", id: "kb-save" }, ["Save"]),
        K.isNew ? null : el("button", { type: "button", id: "kb-delete", on: { click: remove } }, ["Delete"]),
        K.isNew ? null : el("button", { type: "button", id: "kb-history-open", on: { click: function () { history(entry.id); } } }, ["History"])
      ]),
      el("div", { id: "kb-conflict" }),
      el("div", { id: "kb-history" })
    ]));
    box.appendChild(form);
    languages.forEach(function (lang) { // values set as properties: never parsed
      form.querySelector('[data-field="questions.' + lang + '"]').value = (entry.questions[lang] || []).join("\n");
      form.querySelector('[data-field="answer.' + lang + '"]').value = entry.answer[lang] || "";
    });
    form.dataset.action = entry.action || "";
  }
  function formBody() {
    var form = $("kb-form"), questions = {}, answer = {};
    Array.prototype.forEach.call(form.querySelectorAll("textarea[data-field]"), function (area) {
      var parts = area.dataset.field.split("."), value = area.value;
      if (parts[0] === "questions" && lines(value).length) questions[parts[1]] = lines(value);
      if (parts[0] === "answer" && value.trim()) answer[parts[1]] = value.trim();
    });
    var body = {
      title: $("kb-title").value.trim(),
      tags: $("kb-tags").value.split(",").map(function (t) { return t.trim(); }).filter(Boolean),
      questions: questions, answer: answer, handoff: $("kb-handoff").checked,
      action: form.dataset.action || null
    };
    if (K.isNew) { body.id = $("kb-id").value.trim(); body.file = $("kb-file").value; }
    return body;
  }
  function showProblems(error) {
    Array.prototype.forEach.call(document.querySelectorAll("#kb-form .field-error"), function (p) { p.textContent = ""; });
    var problems = (error.detail && error.detail.problems) || [];
    var general = [];
    problems.forEach(function (p) {
      var where = (p.file ? p.file + ":" + p.line + ": " : "") + p.message;
      var slot = p.field && document.querySelector('#kb-form [data-error-for="' + p.field + '"]');
      if (slot) slot.textContent = where; else general.push(where);
    });
    $("kb-form-error").textContent = problems.length ? general.join("\n") : error.message;
  }
  function saved(change, what) {
    C.toast(what);
    $("kb-form-error").textContent = "";
    clear($("kb-conflict"));
    if (change.entry) { K.open = change.entry.id; K.isNew = false; K.etag = change.entry.etag; renderForm(change.entry); }
    else { K.open = null; $("kb-editor").hidden = true; }
    return load();
  }
  function save(force) {
    var body = formBody(), request;
    if (K.isNew) request = api("POST", "/kb/entries", body);
    else request = api("PUT", "/kb/entries/" + encodeURIComponent(K.open), body, { "If-Match": '"' + (force || K.etag) + '"' });
    $("kb-save").disabled = true;
    return request.then(function (change) { return saved(change, "Saved: the bot answers with it now."); })
      .catch(function (error) {
        if (error.status === 412) conflict(body, error.detail.current);
        else showProblems(error);
      })
      .then(function () { var b = $("kb-save"); if (b) b.disabled = false; });
  }
  function remove() {
    if (!window.confirm("Delete entry " + K.open + "?")) return;
    api("DELETE", "/kb/entries/" + encodeURIComponent(K.open), undefined, { "If-Match": '"' + K.etag + '"' })
      .then(function (change) { return saved(change, "Deleted."); })
      .catch(function (error) { if (error.status === 412) conflict(formBody(), error.detail.current); else showProblems(error); });
  }

  // --- a stale version: both versions, side by side ----------------------------------------------------
  function conflict(mine, current) {
    var box = clear($("kb-conflict"));
    var theirs = current ? current.text : "(deleted meanwhile)";
    box.appendChild(el("div", { class: "kb-conflict" }, [
      el("strong", { text: "Someone changed this entry since you opened it (another editor, or its file on disk)." }),
      el("div", { class: "versions" }, [
        el("div", {}, [el("h4", { text: "Yours (not saved)" }), el("pre", { class: "mine", text: JSON.stringify(mine, null, 2) })]),
        el("div", {}, [el("h4", { text: "Now in the file" }), el("pre", { class: "theirs", text: theirs })])
      ]),
      el("div", { class: "row" }, [
        current ? el("button", { type: "button", id: "kb-take-theirs", on: { click: function () { K.etag = current.etag; renderForm(current); } } }, ["Load theirs (drop mine)"]) : null,
        current ? el("button", { type: "button", id: "kb-keep-mine", on: { click: function () { save(current.etag); } } }, ["Save mine over theirs"]) : null
      ])
    ]));
  }

  // --- history and revert ----------------------------------------------------------------------------
  function history(id) {
    return api("GET", "/kb/entries/" + encodeURIComponent(id) + "/history").then(function (h) {
      var box = clear($("kb-history"));
      box.appendChild(el("h4", { text: "History" }));
      if (!h.events.length) { box.appendChild(el("p", { class: "muted small", text: "No changes in the workspace yet." })); return; }
      box.appendChild(el("ul", { class: "kb-history" }, h.events.map(function (e) {
        return el("li", { data: { eventId: e.id } }, [
          el("div", { text: when(e.at) + " · " + e.kind.replace("kb_entry_", "") + " by " + e.by.replace("agent:", "") }),
          el("details", {}, [el("summary", { text: "before / after" }),
            el("pre", { text: e.before === null ? "(none)" : e.before }), el("pre", { text: e.after === null ? "(none)" : e.after })]),
          el("button", { type: "button", class: "revert", on: { click: function () { revert(id, e.id); } } }, ["Restore the version before this change"])
        ]);
      })));
    }).catch(C.failed);
  }
  function revert(id, eventId) {
    api("POST", "/kb/entries/" + encodeURIComponent(id) + "/revert", { event_id: eventId })
      .then(function (change) { return saved(change, "Restored.").then(function () { if (change.entry) history(change.entry.id); }); })
      .catch(function (error) { if (error.status === 412) conflict(formBody(), error.detail.current); else C.failed(error); });
  }

  // --- try it ------------------------------------------------------------------------------------------
  function tryIt() {
    var text = $("try-text").value;
    if (!text.trim()) return;
    var body = { text: text };
    if ($("try-draft").checked && $("kb-form")) {
      var draft = formBody();
      draft.id = K.isNew ? draft.id : K.open;
      delete draft.file;
      body.draft = draft;
    }
    var box = clear($("try-result"));
    box.appendChild(el("span", { class: "muted small", text: "Trying…" }));
    api("POST", "/kb/try", body).then(function (t) {
      clear(box).appendChild(el("div", {}, [
        el("strong", { class: "decision", text: t.decision + (t.entry ? " · " + t.entry : "") }),
        el("span", { class: "muted small", text: " score " + t.score.toFixed(2) + " · language " + t.language + " · " + t.reason + (t.draft ? " · with the unsaved form" : "") }),
        t.answer ? el("p", { class: "answer", text: t.answer }) : null,
        el("div", { class: "muted small", text: "Runners-up: " + t.candidates.map(function (c) { return c.label + " " + c.score.toFixed(2); }).join(", ") })
      ].concat(t.warnings.map(function (w) { return el("p", { class: "field-error warning", text: w }); }))));
    }).catch(function (error) { clear(box); C.failed(error); });
  }
  $("try-run").addEventListener("click", tryIt);
  $("try-text").addEventListener("keydown", function (event) { if (event.key === "Enter") tryIt(); });
})();
