// Support console: live calls with takeover, call search and detail, transcription jobs, knowledge base.
"use strict";
(function () {
  const $ = (id) => document.getElementById(id);
  const S = { user: null, role: null, csrf: null, tab: "live", poll: null, takeover: null, kbDoc: null };
  window.voiceConsole = S; // tests read the console's state here
  const LEVEL = { viewer: 0, agent: 1, admin: 2 };
  const can = (role) => S.role && LEVEL[S.role] >= LEVEL[role];

  function el(tag, attrs, ...children) {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (k === "class") e.className = v; else if (k.startsWith("on")) e.addEventListener(k.slice(2), v); else e.setAttribute(k, v);
    }
    for (const c of children) e.append(c instanceof Node ? c : document.createTextNode(c == null ? "" : String(c)));
    return e;
  }
  function message(text) { const m = $("message"); m.textContent = text || ""; m.hidden = !text; }
  function dur(s) { s = Math.round(s || 0); return Math.floor(s / 60) + ":" + String(s % 60).padStart(2, "0"); }
  function when(t) { return t ? new Date(t * 1000).toLocaleString() : ""; }

  async function api(method, path, body, raw) {
    const headers = {};
    if (method !== "GET" && S.csrf) headers["X-CSRF-Token"] = S.csrf;
    let payload = body;
    if (body !== undefined && !(body instanceof FormData)) { headers["Content-Type"] = "application/json"; payload = JSON.stringify(body); }
    const res = await fetch(path, { method, headers, body: payload, credentials: "same-origin" });
    if (raw) return res;
    const data = await res.json().catch(() => ({ error: "the server sent an unreadable answer (" + res.status + ")" }));
    if (res.status === 401 && path !== "/api/session") { showSignin(); }
    if (!res.ok) throw new Error(data.error || res.statusText);
    return data;
  }

  // ---- sign in --------------------------------------------------------------------------
  function showSignin() {
    S.user = null; $("signin").hidden = false; $("tabs").hidden = true; $("signout").hidden = true; $("who").textContent = "";
    for (const id of Object.keys(S.loaders)) $(id).hidden = true;
    if (S.poll) clearInterval(S.poll);
  }
  function signedIn(d) {
    S.user = d.user; S.role = d.role; S.csrf = d.csrf;
    $("signin").hidden = true; $("tabs").hidden = false; $("signout").hidden = false;
    $("who").textContent = d.user + " (" + d.role + ")";
    $("audit-tab").hidden = !can("admin");
    show(S.tab);
    if (S.poll) clearInterval(S.poll);
    S.poll = setInterval(() => { if (S.tab === "live") { loadLive(); loadWatch(); } if (S.tab === "jobs") loadJobs(); }, 1000);
  }
  $("signin-form").addEventListener("submit", async (e) => {
    e.preventDefault();
    const f = new FormData(e.target);
    try { signedIn(await api("POST", "/api/session", { username: f.get("username"), password: f.get("password") })); message(""); }
    catch (err) { message(err.message); }
  });
  $("signout").addEventListener("click", async () => { await api("DELETE", "/api/session").catch(() => null); showSignin(); });

  function show(tab) {
    S.tab = tab;
    for (const b of document.querySelectorAll(".tab")) b.classList.toggle("active", b.dataset.tab === tab);
    for (const id of Object.keys(S.loaders)) $(id).hidden = id !== tab;
    S.loaders[tab]();
  }
  // Each tab's loader; other scripts (analytics.js) add theirs and reuse these helpers.
  S.loaders = { live: loadLive, calls: loadCalls, jobs: loadJobs, kb: loadKb, audit: loadAudit };
  Object.assign(S, { api, el, message, show, when, dur, can, loadKb, customerText, openCall });
  $("tabs").addEventListener("click", (e) => { if (e.target.dataset.tab) show(e.target.dataset.tab); });

  // ---- live calls -------------------------------------------------------------------------
  async function loadLive() {
    let data;
    try { data = await api("GET", "/api/live"); } catch (err) { return; }
    const rows = $("live-rows");
    rows.replaceChildren();
    $("live-empty").hidden = data.calls.length > 0;
    for (const c of data.calls) {
      const actions = el("td", { class: "actions" });
      if (can("agent") && c.status !== "ended") {
        if (!c.agent) actions.append(el("button", { class: "primary", "data-action": "takeover", onclick: () => takeOver(c.id) }, "Take over"));
        if (c.status === "active") actions.append(el("button", { onclick: () => act(c.id, "transfer") }, "Transfer"));
        actions.append(el("button", { class: "danger", onclick: () => act(c.id, "hangup") }, "Hang up"));
      }
      const caption = c.last_caption && c.last_caption.text ? (c.last_caption.speaker === "caller" ? "Caller: " : "Agent: ") + c.last_caption.text : "";
      rows.append(el("tr", { class: "clickable" + (c.status === "waiting" ? " waiting" : ""), "data-call": c.id,
        onclick: (e) => { if (e.target.tagName !== "BUTTON") { S.watch = c.id; loadWatch(); } } },
        el("td", {}, c.remote, c.customer ? el("div", { class: "customer" }, customerText(c.customer)) : ""),
        el("td", {}, dur(c.duration)),
        el("td", {}, c.status === "waiting" ? "waiting for an agent" : c.status === "human" ? "with " + c.agent : c.status),
        el("td", {}, el("span", { class: "mood " + c.sentiment }, c.sentiment)),
        el("td", { class: "caption" }, caption), actions));
    }
  }
  async function loadWatch() {
    // The selected live call's captions, as the support team may see them (PII redacted).
    const box = $("watch-captions");
    if (!S.watch) { $("watch").hidden = true; return; }
    let d;
    try { d = await api("GET", "/api/live/" + S.watch); } catch (err) { S.watch = null; $("watch").hidden = true; return; }
    $("watch").hidden = false;
    $("watch-id").textContent = d.id + " · " + d.status;
    showCustomer($("watch-customer"), d.customer);
    box.replaceChildren();
    const who = { caller_turn: ["caller", "Caller"], agent_text: ["agent", "Assistant"], greeting: ["agent", "Assistant"],
      transfer_message: ["agent", "Assistant"], human_text: ["human", "Agent"] };
    for (const ev of d.events) {
      if (who[ev.type]) box.append(el("p", { class: "line " + who[ev.type][0] }, el("b", {}, who[ev.type][1]), " " + ev.text));
      else if (ev.type === "action") box.append(el("p", { class: "muted" }, actionLine(ev)));
      else if (ev.type === "transfer" || ev.type === "takeover") box.append(el("p", { class: "muted" }, ev.type + (ev.agent ? " → " + ev.agent : "") + (ev.reason ? ": " + ev.reason : "")));
    }
    box.scrollTop = box.scrollHeight;
  }

  // The customer the call is linked to (caller number, signed widget reference or verification): name, plan,
  // open tickets, last calls. Never the number, account or postcode: the API does not send them.
  function customerText(c) {
    const tickets = c.open_tickets === 1 ? "1 open ticket" : (c.open_tickets || 0) + " open tickets";
    const last = c.last_calls && c.last_calls.length ? " · called " + c.last_calls.join("; ") : "";
    return c.name + (c.plan ? " · " + c.plan : "") + " · " + tickets + last +
      (c.consent_recording === false ? " · no recording (customer's wish)" : "");
  }
  function showCustomer(node, c) {
    node.hidden = !c;
    node.textContent = c ? "Customer: " + customerText(c) : "";
  }

  async function act(id, action) {
    try { await api("POST", "/api/live/" + id + "/" + action); loadLive(); } catch (err) { message(err.message); }
  }

  async function takeOver(id) {
    message("");
    let stream;
    try { stream = await navigator.mediaDevices.getUserMedia({ audio: true }); }
    catch (err) { message("The microphone is blocked: allow it for this site to talk to the caller."); return; }
    const pc = new RTCPeerConnection({ iceServers: [] });
    stream.getTracks().forEach((t) => pc.addTrack(t, stream));
    const dc = pc.createDataChannel("events");
    const box = $("takeover-captions");
    box.replaceChildren();
    dc.onmessage = (m) => {
      const ev = JSON.parse(m.data);
      if (ev.type === "caller_turn") box.append(el("p", { class: "line caller" }, el("b", {}, "Caller"), " " + ev.text));
      if (ev.type === "human_text") box.append(el("p", { class: "line human" }, el("b", {}, "You"), " " + ev.text));
      if (S.assist) S.assist.event(ev, id); // suggestions, summary, and the wrap-up once the call ends
      if (ev.type === "call_end") endTakeover();
    };
    pc.ontrack = (e) => { $("takeover-audio").srcObject = e.streams[0] || new MediaStream([e.track]); };
    S.takeover = { id, pc, stream };
    try {
      await pc.setLocalDescription(await pc.createOffer());
      await new Promise((r) => { if (pc.iceGatheringState === "complete") r(); const t = setTimeout(r, 2000);
        pc.addEventListener("icegatheringstatechange", () => { if (pc.iceGatheringState === "complete") { clearTimeout(t); r(); } }); });
      const ans = await api("POST", "/api/live/" + id + "/takeover", { sdp: pc.localDescription.sdp, type: "offer" });
      await pc.setRemoteDescription({ sdp: ans.sdp, type: ans.type });
      $("takeover").hidden = false; $("takeover-id").textContent = id;
      if (S.assist) S.assist.start(id);
    } catch (err) { message("Could not take over: " + err.message); endTakeover(); }
  }
  function endTakeover() {
    const t = S.takeover; S.takeover = null;
    if (t) { t.pc.close(); t.stream.getTracks().forEach((x) => x.stop()); }
    $("takeover").hidden = true;
  }
  $("handback").addEventListener("click", async () => {
    const t = S.takeover;
    if (t) await api("POST", "/api/live/" + t.id + "/release").catch(() => null);
    endTakeover();
  });

  // ---- past calls ---------------------------------------------------------------------------
  async function loadCalls() {
    const f = new FormData($("search"));
    const q = new URLSearchParams();
    for (const [k, v] of f.entries()) if (v) q.set(k, v);
    let data;
    try { data = await api("GET", "/api/calls?" + q.toString()); } catch (err) { message(err.message); return; }
    const rows = $("call-rows");
    rows.replaceChildren();
    for (const c of data.calls) {
      rows.append(el("tr", { class: "clickable", "data-call": c.id, onclick: () => openCall(c.id) },
        el("td", {}, when(c.started_at)), el("td", {}, c.kind), el("td", {}, dur(c.duration)),
        el("td", {}, c.outcome || ""), el("td", {}, c.sentiment ? el("span", { class: "mood " + c.sentiment }, c.sentiment) : ""),
        el("td", { class: "caption" }, c.preview)));
    }
    // Encrypted transcripts are searched through a keyed index of whole words, not parts of words.
    const words = data.search_mode === "whole_words" && q.get("q") ? " (encrypted transcripts: whole words only)" : "";
    $("calls-total").textContent = data.total + " call(s)" + words;
  }
  $("search").addEventListener("submit", (e) => { e.preventDefault(); loadCalls(); });

  async function openCall(id) {
    let d;
    try { d = await api("GET", "/api/calls/" + id); } catch (err) { message(err.message); return; }
    $("detail").hidden = false;
    $("detail-id").textContent = d.id;
    $("detail-outcome").textContent = d.outcome || "";
    const tr = $("detail-transcript");
    tr.replaceChildren();
    for (const s of d.segments) {
      tr.append(el("p", { class: "line " + s.speaker }, el("span", { class: "muted" }, dur(s.start) + " "), el("b", {}, s.speaker), " " + s.text));
    }
    $("detail-chart").replaceChildren(chart(d.sentiment_timeline || [], d.duration || 0));
    $("detail-analytics").textContent = callAnalytics(d.analytics) +
      (d.events || []).filter((e) => e.type === "action").map((e) => " · " + actionLine(e)).join("");
    showCustomer($("detail-customer"), d.customer);
    if (S.assist) S.assist.showWrapup(d);
    const turns = $("detail-turns");
    turns.replaceChildren();
    for (const t of d.turns) {
      turns.append(el("tr", {}, el("td", {}, t.index + 1), el("td", { class: "caption" }, t.caller_text),
        el("td", { class: "caption" }, t.agent_text || ""),
        el("td", {}, t.sentiment || ""), el("td", { title: breakdown(t) }, t.voice_to_voice_ms != null ? Math.round(t.voice_to_voice_ms) + " ms" : "")));
    }
    const audio = $("detail-audio");
    if (d.recording_url && can("agent")) { audio.src = d.recording_url; audio.hidden = false; $("detail-norec").hidden = true; }
    else { audio.removeAttribute("src"); audio.hidden = true; $("detail-norec").hidden = false; }
    $("detail-delete").hidden = !can("admin");
    $("detail-delete").onclick = async () => {
      if (!confirm("Delete call " + d.id + " and its recording?")) return;
      try { await api("DELETE", "/api/calls/" + d.id); $("detail").hidden = true; loadCalls(); } catch (err) { message(err.message); }
    };
    $("detail").scrollIntoView({ behavior: "smooth" });
  }

  async function loadAudit() {
    let data;
    try { data = await api("GET", "/api/audit?limit=200"); } catch (err) { message(err.message); return; }
    $("audit-rows").replaceChildren(...data.audit.map((r) => el("tr", {}, el("td", {}, when(r.at)), el("td", {}, r.user),
      el("td", {}, r.action), el("td", {}, r.target), el("td", { class: "caption" }, JSON.stringify(r.detail)))));
  }

  function actionLine(e) {
    // An action the assistant carried out (or dropped): its name, outcome, time and slots (personal ones masked).
    const slots = Object.entries(e.slots || {}).map(([k, v]) => k + "=" + v).join(", ");
    return "action " + e.name + ": " + e.outcome + (e.error ? " (" + e.error + ")" : "") +
      (e.latency_ms != null ? ", " + Math.round(e.latency_ms) + " ms" : "") + (slots ? " [" + slots + "]" : "");
  }

  function callAnalytics(a) {
    // The call's numbers from the analytics computed when it ended (none for transcribed recordings).
    if (!a) return "not computed for this call";
    const qa = (a.data && a.data.qa) || {};
    const failed = Object.keys(qa).filter((k) => qa[k] === false).map((k) => k.replace(/_/g, " "));
    return `${a.outcome}${a.transfer_reason ? " (" + a.transfer_reason + ")" : ""} · handle ${dur(a.handle_s)} · ` +
      `caller ${Math.round(a.caller_talk_s)} s, agent ${Math.round(a.agent_talk_s)} s, silence ${Math.round(a.silence_s)} s, ` +
      `overlap ${Math.round(a.overlap_s)} s · barge-ins ${a.barge_ins} · QA ${a.qa_passed}/${a.qa_checked}` +
      (failed.length ? " (failed: " + failed.join(", ") + ")" : "") +
      (a.data && a.data.unanswered ? ` · ${a.data.unanswered} unanswered question(s)` : "");
  }

  function breakdown(t) {
    // Where the voice-to-voice time went: speech end -> ASR final -> first LLM token -> first TTS audio -> sent.
    const ms = (a, b) => (a != null && b != null ? Math.round((b - a) * 1000) + " ms" : "?");
    return `ASR ${ms(t.end_of_speech, t.asr_final)}, LLM ${ms(t.asr_final, t.llm_first_token)}, ` +
      `TTS ${ms(t.llm_first_token, t.tts_first_audio)}, out ${ms(t.tts_first_audio, t.first_audio_out)}`;
  }

  function chart(points, duration) {
    // Mood from -1 (upset) to +1 (happy) across the call, as inline SVG (no libraries, no network).
    const W = 420, H = 140, P = 24, NS = "http://www.w3.org/2000/svg";
    const svg = document.createElementNS(NS, "svg");
    svg.setAttribute("viewBox", `0 0 ${W} ${H}`); svg.setAttribute("class", "chart"); svg.setAttribute("role", "img");
    svg.setAttribute("aria-label", "Sentiment timeline");
    const mk = (tag, a) => { const e = document.createElementNS(NS, tag); for (const k in a) e.setAttribute(k, a[k]); svg.append(e); return e; };
    const end = Math.max(duration, ...points.map((p) => p.t || 0), 1);
    const x = (t) => P + (W - 2 * P) * (t / end);
    const y = (v) => H / 2 - (H / 2 - P / 2) * Math.max(-1, Math.min(1, v));
    mk("line", { x1: P, x2: W - P, y1: H / 2, y2: H / 2, class: "axis" });
    mk("text", { x: 2, y: P / 2 + 4, class: "label" }).textContent = "+";
    mk("text", { x: 2, y: H - 4, class: "label" }).textContent = "−";
    if (!points.length) { mk("text", { x: W / 2 - 50, y: H / 2 - 8, class: "label" }).textContent = "no sentiment data"; return svg; }
    const value = (p) => (p.mood != null ? p.mood : (p.label === "negative" ? -Math.abs(p.score || 0.6) : p.label === "positive" ? Math.abs(p.score || 0.6) : 0));
    mk("polyline", { points: points.map((p) => x(p.t || 0) + "," + y(value(p))).join(" "), class: "trend" });
    for (const p of points) {
      const c = mk("circle", { cx: x(p.t || 0), cy: y(value(p)), r: 4, class: "dot " + (p.label || "neutral") });
      const title = document.createElementNS(NS, "title"); title.textContent = `${dur(p.t)} ${p.label}`; c.append(title);
    }
    return svg;
  }

  // ---- transcription jobs -------------------------------------------------------------------
  async function loadJobs() {
    let data;
    try { data = await api("GET", "/api/jobs"); } catch (err) { return; }
    const rows = $("job-rows");
    rows.replaceChildren();
    for (const j of data.jobs) {
      const links = el("td", {});
      if (j.status === "done") for (const f of ["json", "srt", "vtt"]) links.append(el("a", { href: `/api/jobs/${j.id}/result?format=${f}`, download: "" }, f.toUpperCase()), " ");
      const bar = el("progress", { max: "1", value: String(j.progress || 0) });
      rows.append(el("tr", { "data-job": j.id }, el("td", {}, j.filename), el("td", {}, j.status + (j.error ? ": " + j.error : "")),
        el("td", {}, bar, " " + Math.round((j.progress || 0) * 100) + "%"), el("td", {}, when(j.created_at)), links));
    }
  }
  $("upload").addEventListener("submit", async (e) => {
    e.preventDefault();
    try { await api("POST", "/api/jobs", new FormData(e.target)); e.target.reset(); loadJobs(); } catch (err) { message(err.message); }
  });

  // ---- knowledge base -----------------------------------------------------------------------
  async function loadKb() {
    let data;
    try { data = await api("GET", "/api/kb"); } catch (err) { message(err.message); return; }
    $("kb-index").textContent = "index: " + (data.index.state || "") + (data.index.passages ? ", " + data.index.passages + " entries" : "");
    const list = $("kb-docs");
    list.replaceChildren();
    for (const d of data.documents) list.append(el("li", {}, el("a", { href: "#", onclick: (e) => { e.preventDefault(); openDoc(d.name); } }, d.name)));
    $("kb-save").disabled = !can("agent") || !S.kbDoc;
    $("kb-delete").disabled = !can("admin") || !S.kbDoc;
    if (data.index.state === "rebuilding") setTimeout(() => { if (S.tab === "kb") loadKb(); }, 1000);
  }
  async function openDoc(name) {
    try { const d = await api("GET", "/api/kb/" + encodeURIComponent(name)); S.kbDoc = d.name; $("kb-name").textContent = d.name; $("kb-text").value = d.text; loadKb(); }
    catch (err) { message(err.message); }
  }
  $("kb-save").addEventListener("click", async () => {
    try { await api("PUT", "/api/kb/" + encodeURIComponent(S.kbDoc), { text: $("kb-text").value }); message(""); loadKb(); } catch (err) { message(err.message); }
  });
  $("kb-delete").addEventListener("click", async () => {
    if (!confirm("Delete " + S.kbDoc + "?")) return;
    try { await api("DELETE", "/api/kb/" + encodeURIComponent(S.kbDoc)); S.kbDoc = null; $("kb-text").value = ""; $("kb-name").textContent = "Select a document"; loadKb(); } catch (err) { message(err.message); }
  });
  $("kb-new").addEventListener("submit", (e) => {
    e.preventDefault();
    const name = new FormData(e.target).get("name");
    if (!name) return;
    S.kbDoc = name; $("kb-name").textContent = name; $("kb-text").value = "# " + name.replace(/\.(md|ya?ml)$/, "") + "\n\n"; loadKb();
  });
  $("kb-upload").addEventListener("submit", async (e) => {
    e.preventDefault();
    const file = new FormData(e.target).get("file");
    if (!file || !file.name) return;
    try { await api("PUT", "/api/kb/" + encodeURIComponent(file.name), { text: await file.text() }); e.target.reset(); loadKb(); } catch (err) { message(err.message); }
  });

  // A quick sign-in can finish before this first check answers 401: never sign that person out again.
  api("GET", "/api/session").then((d) => { if (!S.user) signedIn(d); }, () => { if (!S.user) showSignin(); });
})();
