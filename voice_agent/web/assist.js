// Agent assist in the console: during a takeover, the call so far, the customer and KB answers suggested for
// the caller's latest question (one click puts one in the notes); after the call, the drafted wrap-up to edit
// and save; on the call page, the saved wrap-up. console.js calls these through window.voiceConsole.assist.
"use strict";
(function () {
  const S = window.voiceConsole;
  const $ = (id) => document.getElementById(id);
  const { api, el } = S;

  function render(view) {
    if (!view) return;
    if (view.summary) $("assist-summary").textContent = view.summary;
    if (view.type !== "suggestions") return;
    $("assist-for").textContent = view.text ? "for “" + view.text + "”" : "";
    const list = $("assist-suggestions");
    list.replaceChildren();
    if (!view.suggestions.length) list.append(el("li", { class: "muted" }, view.text ? "No KB entry fits." : "Waiting for the caller's question…"));
    view.suggestions.forEach((s, i) => list.append(el("li", { "data-suggestion": s.id },
      el("b", {}, s.question), " ", el("button", { class: "insert", "data-index": String(i), onclick: () => insert(s) }, "Insert"),
      el("span", { class: "answer" }, s.answer))));
  }

  function insert(s) {
    const notes = $("agent-notes");
    notes.value = (notes.value.trim() ? notes.value.trimEnd() + "\n" : "") + s.question + " — " + s.answer;
    notes.focus();
  }

  async function start(id) {
    $("agent-notes").value = "";
    $("assist-summary").textContent = "";
    $("assist-suggestions").replaceChildren();
    $("wrapup").hidden = true;
    try {
      const d = await api("GET", "/api/live/" + id);
      const c = d.customer;
      $("assist-customer").hidden = !c;
      $("assist-customer").textContent = c ? "Customer: " + S.customerText(c) : "";
      render(d.assist);
    } catch (err) { /* the call may already have ended */ }
  }

  function event(ev, id) {
    if (ev.type === "suggestions") render(ev);
    if (ev.type === "call_end") wrapup(id, $("agent-notes").value);
  }

  // After the call: the draft comes once the call is stored (a moment after it ends).
  async function wrapup(id, notes) {
    const form = $("wrapup");
    form.hidden = false; form.dataset.call = id;
    $("wrapup-id").textContent = id;
    $("wrapup-save").disabled = true;
    $("wrapup-state").textContent = "Drafting from the call record…";
    for (let i = 0; i < 60 && form.dataset.call === id; i++) {
      try {
        const d = await api("GET", "/api/calls/" + id + "/wrapup");
        const w = d.saved || d.draft;
        for (const k of ["summary", "outcome", "follow_ups"]) form.elements[k].value = w[k] || "";
        // the agent's notes join the draft here, never in a URL
        if (!d.saved && notes && notes.trim()) form.elements.summary.value += "\nNotes: " + notes.trim();
        $("wrapup-state").textContent = d.saved ? "Saved by " + d.saved.by + "; edit and save again to change it." : "Drafted from the call: edit it and save.";
        $("wrapup-save").disabled = false;
        return;
      } catch (err) { await new Promise((r) => setTimeout(r, 500)); }
    }
    $("wrapup-state").textContent = "The call was not stored, so there is nothing to wrap up.";
  }

  $("wrapup").addEventListener("submit", async (e) => {
    e.preventDefault();
    const form = e.target, id = form.dataset.call;
    const body = {};
    for (const k of ["summary", "outcome", "follow_ups"]) body[k] = form.elements[k].value;
    try {
      await api("PUT", "/api/calls/" + id + "/wrapup", body);
      $("wrapup-state").textContent = "Saved with the call.";
      if ($("wrapup-open")) $("wrapup-open").remove();
      form.append(el("button", { type: "button", id: "wrapup-open", onclick: () => { form.hidden = true; S.show("calls"); S.openCall(id); } }, "Open the call page"));
    } catch (err) { S.message(err.message); }
  });

  // Handed back before the end: the wrap-up is drafted once the assistant's part of the call is over too.
  $("handback").addEventListener("click", async () => {
    const id = $("takeover-id").textContent, notes = $("agent-notes").value, form = $("wrapup");
    if (!id) return;
    form.hidden = false; form.dataset.call = id;
    $("wrapup-id").textContent = id;
    $("wrapup-save").disabled = true;
    $("wrapup-state").textContent = "The wrap-up is drafted when the call ends.";
    while (form.dataset.call === id) {
      try { await api("GET", "/api/live/" + id); } catch (err) { return wrapup(id, notes); } // gone: ended
      await new Promise((r) => setTimeout(r, 2000));
    }
  });

  function showWrapup(d) {
    const w = d.meta && d.meta.wrapup, box = $("detail-wrapup");
    box.hidden = !w;
    if (!w) return;
    box.querySelector(".wrapup-summary").textContent = w.summary;
    box.querySelector(".wrapup-outcome").textContent = "Outcome: " + w.outcome;
    box.querySelector(".wrapup-follow").textContent = w.follow_ups ? "Follow-ups:\n" + w.follow_ups : "";
    box.querySelector(".wrapup-by").textContent = "by " + w.by + ", " + S.when(w.at);
  }

  S.assist = { start, event, showWrapup, wrapup };
})();
