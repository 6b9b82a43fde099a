// Console dashboard: what a support lead reads every morning, as inline SVG charts (no libraries, no network),
// and the loop that turns the questions the knowledge base could not answer into new KB entries.
"use strict";
(function () {
  const S = window.voiceConsole;
  const $ = (id) => document.getElementById(id);
  const NS = "http://www.w3.org/2000/svg";
  const A = { data: null, gap: null, lastEntry: null, kbIndex: null };
  S.analytics = A; // tests read the dashboard's state here

  function svg(width, height, label) {
    const s = document.createElementNS(NS, "svg");
    s.setAttribute("viewBox", `0 0 ${width} ${height}`);
    s.setAttribute("class", "chart");
    s.setAttribute("role", "img");
    s.setAttribute("aria-label", label);
    return s;
  }
  function mk(parent, tag, attrs, text) {
    const e = document.createElementNS(NS, tag);
    for (const k in attrs) e.setAttribute(k, attrs[k]);
    if (text != null) e.textContent = text;
    parent.append(e);
    return e;
  }
  function tip(node, text) { mk(node, "title", {}, text); }
  function empty(s, w, h) { mk(s, "text", { x: w / 2 - 40, y: h / 2, class: "label" }, "no calls yet"); return s; }

  // Vertical bars, stacked when several series are given: series = [{name, cls, values}].
  function columns(labels, series, label, opts) {
    const W = 440, H = 170, L = 30, B = 22, T = 10;
    const s = svg(W, H, label);
    const totals = labels.map((_, i) => series.reduce((a, ser) => a + (ser.values[i] || 0), 0));
    const max = Math.max(1, ...totals);
    mk(s, "line", { x1: L, x2: W - 4, y1: H - B, y2: H - B, class: "axis" });
    mk(s, "text", { x: 2, y: T + 8, class: "label" }, String(max));
    mk(s, "text", { x: 2, y: H - B, class: "label" }, "0");
    if (!labels.length) return empty(s, W, H);
    const step = (W - L - 4) / labels.length, bw = Math.max(2, Math.min(40, step * 0.7));
    labels.forEach((lab, i) => {
      let y = H - B;
      for (const ser of series) {
        const v = ser.values[i] || 0;
        if (!v) continue;
        const h = (H - B - T) * v / max;
        y -= h;
        const r = mk(s, "rect", { x: L + i * step + (step - bw) / 2, y, width: bw, height: h, class: ser.cls || "bar" });
        tip(r, `${lab}: ${v} ${ser.name}`);
      }
      const every = Math.ceil(labels.length / (opts && opts.ticks || 12));
      if (i % every === 0) mk(s, "text", { x: L + i * step + step / 2 - 8, y: H - 6, class: "label" }, lab);
    });
    return s;
  }

  // Horizontal bars with their values: items = [{label, value, text}].
  function rows(items, label, max) {
    const W = 440, row = 22, H = Math.max(40, items.length * row + 10), LW = 190;
    const s = svg(W, H, label);
    if (!items.length) { mk(s, "text", { x: 10, y: 24, class: "label" }, "nothing in this range"); return s; }
    const top = max || Math.max(1, ...items.map((i) => i.value));
    items.forEach((it, i) => {
      const y = 6 + i * row;
      mk(s, "text", { x: 4, y: y + 13, class: "label" }, it.label.length > 30 ? it.label.slice(0, 29) + "…" : it.label);
      const w = Math.max(1, (W - LW - 78) * it.value / top);
      tip(mk(s, "rect", { x: LW, y, width: w, height: row - 7, class: it.cls || "bar" }), `${it.label}: ${it.text || it.value}`);
      mk(s, "text", { x: LW + w + 4, y: y + 12, class: "value" }, it.text || String(it.value));
    });
    return s;
  }

  // A line over days: points = [{label, value}] with value in [lo, hi] (null: no calls that day).
  function line(points, label, lo, hi, fmt) {
    const W = 440, H = 160, L = 34, B = 22, T = 10, R = 24;
    const s = svg(W, H, label);
    const y = (v) => T + (H - B - T) * (hi - v) / (hi - lo);
    mk(s, "line", { x1: L, x2: W - 4, y1: y(lo), y2: y(lo), class: "axis" });
    if (lo < 0) mk(s, "line", { x1: L, x2: W - 4, y1: y(0), y2: y(0), class: "axis" });
    mk(s, "text", { x: 2, y: T + 8, class: "label" }, fmt(hi));
    mk(s, "text", { x: 2, y: H - B, class: "label" }, fmt(lo));
    const known = points.filter((p) => p.value != null);
    if (!known.length) return empty(s, W, H);
    const step = points.length > 1 ? (W - L - 6 - R) / (points.length - 1) : 0;
    const x = (i) => L + 6 + i * step;
    const xy = points.map((p, i) => (p.value == null ? null : [x(i), y(Math.max(lo, Math.min(hi, p.value)))])).filter(Boolean);
    mk(s, "polyline", { points: xy.map((p) => p.join(",")).join(" "), class: "trend" });
    points.forEach((p, i) => {
      if (p.value == null) return;
      const c = mk(s, "circle", { cx: x(i), cy: y(Math.max(lo, Math.min(hi, p.value))), r: 4,
        class: "dot " + (p.value > 0.15 ? "positive" : p.value < -0.15 ? "negative" : "neutral") });
      tip(c, `${p.label}: ${fmt(p.value)}`);
      if (points.length <= 14 || i % Math.ceil(points.length / 10) === 0) mk(s, "text", { x: x(i), y: H - 6, class: "label", "text-anchor": "middle" }, p.label.slice(5));
    });
    return s;
  }

  const pct = (v) => (v == null ? "–" : Math.round(v * 100) + "%");
  const ms = (v) => (v == null ? "–" : Math.round(v) + " ms");
  const num = (v, d) => (v == null ? "–" : (Math.abs(v) < 0.005 ? 0 : Number(v)).toFixed(d == null ? 2 : d));

  function query() {
    const f = new FormData($("an-filter"));
    const q = new URLSearchParams();
    for (const [k, v] of f.entries()) if (v) q.set(k, v);
    q.set("tz", String(-new Date().getTimezoneOffset()));
    return q;
  }

  async function load() {
    const q = query();
    let d;
    try { d = await S.api("GET", "/api/analytics?" + q.toString()); } catch (err) { S.message(err.message); return; }
    A.data = d;
    for (const t of ["calls", "days", "gaps"]) {
      const c = new URLSearchParams(q); c.set("format", "csv"); c.set("table", t);
      $("an-csv-" + t).href = "/api/analytics?" + c.toString();
    }
    const f = new FormData($("an-filter"));
    $("an-range").textContent = f.get("since") || f.get("until") ? `${f.get("since") || "…"} to ${f.get("until") || "today"}` : "all calls";
    const kpi = (value, name, id) => S.el("div", { class: "kpi", "data-kpi": id }, S.el("b", {}, value), S.el("span", {}, name));
    $("an-kpis").replaceChildren(
      kpi(String(d.calls), "calls", "calls"), kpi(pct(d.containment_rate), "contained by the assistant", "containment"),
      kpi(d.avg_handle_s == null ? "–" : S.dur(d.avg_handle_s), "average handle time", "handle"),
      kpi(ms(d.latency_ms.p50) + " / " + ms(d.latency_ms.p95), "latency p50 / p95", "latency"),
      kpi(num(d.sentiment.start) + " → " + num(d.sentiment.end), "caller sentiment, start → end", "sentiment"),
      kpi(String(d.kb_gaps.reduce((a, g) => a + g.count, 0)), "unanswered questions", "gaps"),
      kpi(String(d.barge_ins), "barge-ins", "barge"));
    const days = d.per_day.map((x) => x.day.slice(5));
    $("an-days").replaceChildren(columns(days, [
      { name: "contained", cls: "bar-contained", values: d.per_day.map((x) => x.contained) },
      { name: "transferred", cls: "bar-transferred", values: d.per_day.map((x) => x.transferred) },
      { name: "abandoned", cls: "bar-abandoned", values: d.per_day.map((x) => x.abandoned) },
      { name: "error", cls: "bar-error", values: d.per_day.map((x) => x.error) }], "Calls per day"), legend());
    $("an-hours").replaceChildren(columns(d.per_hour.map((h) => String(h.hour).padStart(2, "0")),
      [{ name: "calls", values: d.per_hour.map((h) => h.calls) }], "Calls per hour of the day", { ticks: 8 }));
    $("an-containment").replaceChildren(line(d.per_day.map((x) => ({ label: x.day, value: x.containment })),
      "Containment rate per day", 0, 1, pct));
    $("an-reasons").replaceChildren(rows(d.transfer_reasons.map((r) => ({ label: r.reason, value: r.count })),
      "Transfer reasons"));
    $("an-sentiment").replaceChildren(line(d.per_day.map((x) => ({ label: x.day, value: x.sentiment })),
      "Caller sentiment per day", -1, 1, (v) => num(v, 1)));
    $("an-latency").replaceChildren(rows(["p50", "p90", "p95", "p99"].filter((k) => d.latency_ms[k] != null)
      .map((k) => ({ label: k + " of " + d.latency_ms.turns + " turns", value: d.latency_ms[k], text: ms(d.latency_ms[k]) })),
      "Latency percentiles"));
    const QA = { greeted: "greeted the caller", empathy_on_upset: "empathy on upset turns",
      no_guard_rejections: "no grounding-guard rejections", transfer_offered_when_asked: "transfer offered when asked" };
    $("an-qa").replaceChildren(rows(Object.entries(d.qa).filter(([, v]) => v.checked)
      .map(([k, v]) => ({ label: QA[k] || k, value: v.passed / v.checked, text: `${pct(v.passed / v.checked)} of ${v.checked}` })),
      "QA checks passed", 1));
    $("an-topics").replaceChildren(rows(d.topics.slice(0, 8).map((t) => ({ label: t.id, value: t.count })), "KB entries used"));
    gaps(d.kb_gaps);
  }

  function legend() {
    const l = S.el("div", { class: "legend" });
    for (const [name, color] of [["contained", "var(--pos)"], ["transferred", "#e0a030"], ["abandoned", "var(--neu)"], ["error", "var(--danger)"]]) {
      const i = S.el("i", {}); i.style.background = color; l.append(i, name);
    }
    return l;
  }

  function gaps(groups) {
    const body = $("an-gaps");
    body.replaceChildren();
    $("an-gaps-empty").hidden = groups.length > 0;
    groups.forEach((g, n) => {
      const examples = S.el("td", { class: "caption" });
      for (const e of g.examples) examples.append(S.el("div", {}, "“" + e + "”"));
      const act = S.el("td", {});
      if (S.can("agent")) act.append(S.el("button", { class: "primary", "data-action": "kb-entry", onclick: () => openEntry(g) }, "Add to KB"));
      body.append(S.el("tr", { "data-gap": String(n) }, S.el("td", {}, g.question), S.el("td", {}, String(g.count)),
        S.el("td", {}, String(g.calls)), examples, S.el("td", {}, S.when(g.last_seen)), act));
    });
  }

  function openEntry(g) {
    A.gap = g;
    const f = $("an-entry-form");
    f.elements.question.value = g.question;
    // every wording callers used (the server drops the one equal to the final question)
    f.elements.also.value = g.examples.join("\n");
    f.elements.answer.value = "";
    $("an-entry").hidden = false;
    f.elements.answer.focus();
    $("an-entry").scrollIntoView({ block: "nearest" });
  }
  $("an-entry-cancel").addEventListener("click", () => { $("an-entry").hidden = true; A.gap = null; });
  $("an-entry-form").addEventListener("submit", async (e) => {
    e.preventDefault();
    const f = e.target.elements;
    const body = { question: f.question.value, answer: f.answer.value, topic: f.topic.value,
      also: f.also.value.split("\n").map((x) => x.trim()).filter(Boolean), covers: A.gap ? A.gap.norms : [] };
    try {
      const made = await S.api("POST", "/api/kb/entries", body);
      A.lastEntry = made;
      $("an-entry").hidden = true; A.gap = null;
      S.message(`Added to the knowledge base as ${made.name}; the assistant answers it once the index is rebuilt.`);
      watchIndex();
      load();
    } catch (err) { S.message(err.message); }
  });

  async function watchIndex() {
    // The index rebuilds in the background: say when the new entry is live.
    for (;;) {
      let kb;
      try { kb = await S.api("GET", "/api/kb"); } catch (err) { return; }
      A.kbIndex = kb.index.state;
      if (kb.index.state !== "rebuilding") {
        if (kb.index.state === "ready" && A.lastEntry) S.message(`${A.lastEntry.name} is in the knowledge base; the assistant answers it now.`);
        if (kb.index.state === "error") S.message("The knowledge base did not rebuild: " + (kb.index.error || "unknown error"));
        return;
      }
      await new Promise((r) => setTimeout(r, 1000));
    }
  }

  $("an-filter").addEventListener("submit", (e) => { e.preventDefault(); load(); });
  S.loaders.analytics = load;
})();
