/* The console's Insights view, its "Suggested from agents' answers" block (supervisors): the suggestions of
 * GET /api/v1/suggestions, each with its questions and the agents' draft answer per language in a text box
 * the editor corrects (placeholders such as {order_number} must go; a language no agent answered in must be
 * written), then accepted (POST .../accept with the edited answer: the KB file is written and the bot
 * answers with it at once) or dismissed (POST .../dismiss). Built on console.js's helpers; text goes in as
 * textContent and values.
 */
(function () {
  "use strict";

  var C = window.supportbotConsole;
  if (!C) return;
  var el = C.el, clear = C.clear, api = C.api;
  function $(id) { return document.getElementById(id); }
  var KINDS = { new_entry: "New entry", add_questions: "New wording for" };

  function load() {
    if ($("insights-view").hidden) return;
    api("GET", "/suggestions?days=" + $("insights-days").value).then(function (found) {
      render(found.suggestions);
    }).catch(C.failed);
  }
  $("tab-insights").addEventListener("click", load);
  $("insights-refresh").addEventListener("click", load);
  $("insights-days").addEventListener("change", load);

  function answerBoxes(s) {
    var boxes = {};
    var languages = Object.keys(s.answer).concat(s.missing_languages);
    var list = languages.map(function (lang) {
      boxes[lang] = el("textarea", { rows: "3", "aria-label": "Answer (" + lang + ")" });
      boxes[lang].value = s.answer[lang] || "";
      return el("label", { class: "suggested-answer" }, [el("span", { class: "muted small", text: lang }), boxes[lang]]);
    });
    return { boxes: boxes, node: el("div", {}, list) };
  }

  function act(buttons, request, done) {
    buttons.forEach(function (b) { b.disabled = true; });
    request().then(function (answer) { C.toast(done(answer)); load(); })
      .catch(C.failed).then(function () { buttons.forEach(function (b) { b.disabled = false; }); });
  }

  function render(suggestions) {
    $("kb-suggestions-count").textContent = String(suggestions.length);
    var body = clear($("kb-suggestions").querySelector("tbody"));
    if (!suggestions.length) {
      body.appendChild(el("tr", {}, [el("td", { colspan: "5", class: "muted", text: "Nothing to suggest in this period." })]));
      return;
    }
    suggestions.forEach(function (s) {
      var answers = s.kind === "new_entry" ? answerBoxes(s) : null;
      var accept = el("button", { type: "button", text: "Accept" });
      var dismiss = el("button", { type: "button", class: "secondary", text: "Dismiss" });
      accept.addEventListener("click", function () {
        var body = {};
        if (answers) {
          body.answer = {};
          Object.keys(answers.boxes).forEach(function (lang) { body.answer[lang] = answers.boxes[lang].value; });
        }
        act([accept, dismiss], function () { return api("POST", "/suggestions/" + s.id + "/accept", body); },
          function (a) { return "Written: " + a.entry + " (" + a.file + ", line " + a.line + ")."; });
      });
      dismiss.addEventListener("click", function () {
        act([accept, dismiss], function () { return api("POST", "/suggestions/" + s.id + "/dismiss"); },
          function () { return "Dismissed."; });
      });
      var questions = s.questions.map(function (q) { return el("li", { text: q.language + ": " + q.text }); });
      body.appendChild(el("tr", {}, [
        el("td", {}, [el("span", { text: KINDS[s.kind] || s.kind }), el("span", { class: "entry-id", text: " " + (s.entry || "") })]),
        el("td", {}, [el("ul", { class: "down-questions" }, questions)]),
        el("td", {}, [answers ? answers.node : el("span", { class: "muted small", text: Object.keys(s.answer).map(function (l) { return l + ": " + s.answer[l]; }).join(" / ") })]),
        el("td", { class: "num", text: String(s.conversations.length) }),
        el("td", {}, [accept, dismiss])
      ]));
    });
  }
})();
