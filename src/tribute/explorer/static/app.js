// tribute explorer — vanilla JS, no build step, no network beyond this server.
"use strict";

const TOKEN = new URLSearchParams(location.search).get("token");
const state = { subject: null, info: null, index: 0, view: "explain", jobs: {}, lb: null };
const POS = [178, 24, 43], NEG = [33, 102, 172];
const COLORS = ["#3b5bdb", "#e8590c", "#2b8a3e", "#ae3ec9", "#c92a2a", "#1098ad"];

const $ = (id) => document.getElementById(id);
function el(tag, attrs, ...kids) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k === "class") e.className = v;
    else if (k === "text") e.textContent = v;
    else if (k.startsWith("on")) e.addEventListener(k.slice(2), v);
    else e.setAttribute(k, v);
  }
  for (const k of kids) if (k != null) e.append(k);
  return e;
}
function fmt(v, d = 3) {
  if (v === null || v === undefined || Number.isNaN(v)) return "—";
  const a = Math.abs(v);
  if (a !== 0 && (a < 1e-3 || a >= 1e4)) return v.toExponential(2);
  return v.toFixed(d);
}

async function api(path, opts = {}) {
  const headers = Object.assign({}, opts.headers || {});
  if (TOKEN) headers["X-Tribute-Token"] = TOKEN;
  const res = await fetch(path, Object.assign({}, opts, { headers }));
  let data = null;
  try { data = await res.json(); } catch (e) { data = { error: `HTTP ${res.status}` }; }
  if (!res.ok) throw new Error((data && data.error) || `HTTP ${res.status}`);
  return data;
}

// ------------------------------------------------------------------ colour
function rgba(v, scale, alpha = 0.85) {
  const t = scale > 0 ? Math.max(-1, Math.min(1, v / scale)) : 0;
  const c = t >= 0 ? POS : NEG;
  return `rgba(${c[0]},${c[1]},${c[2]},${(Math.abs(t) * alpha).toFixed(3)})`;
}
// signed === false: unsigned importances (sobol, smoothgrad_sq, vargrad: no direction), read
// from 0; "+x raises the output" said a direction these scores do not have (rev48x)
function legend(scale, what, signed = true) {
  const c = el("canvas", { width: 160, height: 12 });
  const g = c.getContext("2d");
  for (let x = 0; x < 160; x++) {
    const v = signed === false ? x / 159 : (x / 159) * 2 - 1;
    g.fillStyle = "#fff"; g.fillRect(x, 0, 1, 12);
    g.fillStyle = rgba(v, 1, 1); g.fillRect(x, 0, 1, 12);
  }
  if (signed === false) {
    return el("div", { class: "legend" }, el("span", { text: "0" }), c,
      el("span", { text: `${fmt(scale)}: importance for ${what || "the output"} (unsigned: no direction)` }));
  }
  return el("div", { class: "legend" },
    el("span", { text: `−${fmt(scale)} lowers` }), c,
    el("span", { text: `+${fmt(scale)} raises ${what || "the output"}` }));
}
function drawGray(g, img, cell) {
  const h = img.length, w = img[0].length;
  for (let i = 0; i < h; i++) for (let j = 0; j < w; j++) {
    const v = Math.round(255 * img[i][j]);
    g.fillStyle = `rgb(${v},${v},${v})`; g.fillRect(j * cell, i * cell, cell, cell);
  }
}
function imageCanvas(img, size) {
  const h = img.length, w = img[0].length, cell = Math.max(1, Math.floor(size / Math.max(h, w)));
  const c = el("canvas", { width: w * cell, height: h * cell });
  drawGray(c.getContext("2d"), img, cell);
  return c;
}
function overlayCanvas(img, values, scale, size) {
  const h = values.length, w = values[0].length, cell = Math.max(1, Math.floor(size / Math.max(h, w)));
  const c = el("canvas", { width: w * cell, height: h * cell, class: "heatmap" });
  const g = c.getContext("2d");
  if (img) {
    // the input, dimmed, under the signed credits
    drawGray(g, img, cell);
    g.fillStyle = "rgba(255,255,255,0.55)"; g.fillRect(0, 0, w * cell, h * cell);
  } else { g.fillStyle = "#fff"; g.fillRect(0, 0, w * cell, h * cell); }
  for (let i = 0; i < h; i++) for (let j = 0; j < w; j++) {
    g.fillStyle = rgba(values[i][j], scale); g.fillRect(j * cell, i * cell, cell, cell);
  }
  return c;
}
function tokensView(preview, values, scale) {
  const box = el("div", { class: "tokens" });
  preview.tokens.forEach((t, i) => {
    if (preview.pad && preview.pad[i]) return;
    if (preview.split && i === preview.split) box.append(el("span", { class: "tok sep", text: "‖" }));
    const s = el("span", { class: "tok heat-token", text: t, title: `${t}: ${fmt(values ? values[i] : 0, 4)}` });
    if (values) s.style.background = rgba(values[i], scale, 0.9);
    box.append(s);
  });
  return box;
}
function waterfall(names, values, base, what) {
  const order = values.map((v, i) => i).sort((a, b) => Math.abs(values[b]) - Math.abs(values[a])).slice(0, 20);
  const W = 560, row = 20, H = order.length * row + 40, left = 160;
  let acc = base || 0; const pts = [];
  for (const i of order) { pts.push([acc, acc + values[i], i]); acc += values[i]; }
  const lo = Math.min(...pts.map((p) => Math.min(p[0], p[1]))), hi = Math.max(...pts.map((p) => Math.max(p[0], p[1])));
  const x = (v) => left + ((v - lo) / ((hi - lo) || 1)) * (W - left - 60);
  const ns = "http://www.w3.org/2000/svg";
  const svg = document.createElementNS(ns, "svg");
  svg.setAttribute("width", W); svg.setAttribute("height", H); svg.setAttribute("class", "waterfall");
  pts.forEach(([a, b, i], k) => {
    const r = document.createElementNS(ns, "rect");
    r.setAttribute("x", Math.min(x(a), x(b))); r.setAttribute("y", 10 + k * row);
    r.setAttribute("width", Math.max(1, Math.abs(x(b) - x(a)))); r.setAttribute("height", row - 6);
    r.setAttribute("fill", values[i] >= 0 ? "#b2182b" : "#2166ac");
    svg.append(r);
    const t = document.createElementNS(ns, "text");
    t.setAttribute("x", 4); t.setAttribute("y", 10 + k * row + 11); t.textContent = names[i];
    svg.append(t);
    const v = document.createElementNS(ns, "text");
    v.setAttribute("x", Math.max(x(a), x(b)) + 4); v.setAttribute("y", 10 + k * row + 11);
    v.textContent = (values[i] >= 0 ? "+" : "") + fmt(values[i]);
    svg.append(v);
  });
  const cap = document.createElementNS(ns, "text");
  cap.setAttribute("x", 4); cap.setAttribute("y", H - 8);
  cap.textContent = `largest ${order.length} credits towards ${what || "the output"}, from the baseline (cumulative)`;
  svg.append(cap);
  return svg;
}
function lineChart(series, title, yLabel) {
  const W = 330, H = 210, L = 44, B = 30, ns = "http://www.w3.org/2000/svg";
  const all = series.flatMap((s) => s.y.filter((v) => v !== null));
  const lo = Math.min(...all), hi = Math.max(...all);
  const X = (f) => L + f * (W - L - 10), Y = (v) => H - B - ((v - lo) / ((hi - lo) || 1)) * (H - B - 24);
  const svg = document.createElementNS(ns, "svg");
  svg.setAttribute("width", W); svg.setAttribute("height", H); svg.setAttribute("class", "curve");
  const mk = (tag, at, text) => { const e = document.createElementNS(ns, tag); for (const [k, v] of Object.entries(at)) e.setAttribute(k, v); if (text) e.textContent = text; svg.append(e); return e; };
  mk("line", { x1: L, y1: H - B, x2: W - 10, y2: H - B, class: "axis" });
  mk("line", { x1: L, y1: 20, x2: L, y2: H - B, class: "axis" });
  mk("text", { x: L, y: 13 }, title);
  mk("text", { x: L, y: H - 8 }, "fraction of players " + (title.startsWith("Deletion") ? "removed" : "inserted"));
  mk("text", { x: 2, y: Y(hi) + 4 }, fmt(hi, 2)); mk("text", { x: 2, y: Y(lo) }, fmt(lo, 2));
  series.forEach((s, k) => {
    const pts = s.x.map((f, i) => (s.y[i] === null ? null : `${X(f).toFixed(1)},${Y(s.y[i]).toFixed(1)}`)).filter(Boolean);
    mk("polyline", { points: pts.join(" "), fill: "none", stroke: COLORS[k % COLORS.length], "stroke-width": 2 });
  });
  return svg;
}

// ------------------------------------------------------------------ jobs
function jobUi(prefix) {
  const box = $(`${prefix}-job`);
  return { fill: box.querySelector(".fill"), status: box.querySelector(".status"), cancel: $(`${prefix}-cancel`), run: $(`${prefix}-run`) };
}
function setStatus(ui, st, text) {
  ui.status.dataset.state = st; ui.status.textContent = text;
}
async function runJob(prefix, body, render) {
  const ui = jobUi(prefix);
  const old = state.jobs[prefix];
  if (old && old.source) old.source.close();
  ui.fill.style.width = "0%"; setStatus(ui, "queued", "starting…");
  ui.run.disabled = true; ui.cancel.disabled = false;
  const finish = () => { ui.run.disabled = false; ui.cancel.disabled = true; };
  let job;
  try { job = await api("/api/jobs", { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body) }); }
  catch (e) { setStatus(ui, "error", e.message); finish(); return; }
  const entry = { id: job.id }; state.jobs[prefix] = entry;
  ui.cancel.onclick = async () => {
    ui.cancel.disabled = true;
    try { await api(`/api/jobs/${job.id}`, { method: "DELETE" }); } catch (e) { setStatus(ui, "error", e.message); }
  };
  const done = async (pub) => {
    if (state.jobs[prefix] !== entry) return;
    finish();
    if (pub.status === "done") {
      const full = pub.result ? pub : await api(`/api/jobs/${job.id}`);
      ui.fill.style.width = "100%";
      setStatus(ui, "done", `done in ${fmt(full.seconds, 2)} s${full.cached ? " (cached)" : ""}`);
      try {
        // drawn over the input it explains: an input picked while the job ran got the job's
        // credits over its own image, beside its own prediction (aud46x); a model picked
        // while it ran got them over its input of the same number (rev46x): not drawn
        const r = full.result;
        if (body.subject !== state.subject.name) {
          setStatus(ui, "done", `done for model ${body.subject}, not drawn: model ${state.subject.name} is selected now`);
          return;
        }
        if (prefix !== "training" && r && Number.isInteger(r.index) && r.index !== state.index) await selectInput(r.index);
        render(r);
      } catch (e) { setStatus(ui, "error", "could not draw the result: " + e.message); }
    } else if (pub.status === "cancelled") { setStatus(ui, "cancelled", "cancelled"); }
    else { setStatus(ui, "error", pub.error || "failed"); }
  };
  if (job.status === "done" || job.status === "error" || job.status === "cancelled") { await done(job); return; }
  const url = `/api/jobs/${job.id}/events` + (TOKEN ? `?token=${encodeURIComponent(TOKEN)}` : "");
  const src = new EventSource(url); entry.source = src;
  const onMsg = (ev) => {
    const pub = JSON.parse(ev.data);
    ui.fill.style.width = `${Math.round(100 * pub.progress)}%`;
    if (pub.status === "running" || pub.status === "queued")
      setStatus(ui, "running", `${pub.step || pub.status} — ${Math.round(100 * pub.progress)}%` + (pub.rows_total ? ` (${pub.rows_done}/${pub.rows_total} rows)` : ""));
  };
  src.addEventListener("progress", onMsg);
  src.addEventListener("end", (ev) => { src.close(); onMsg(ev); done(JSON.parse(ev.data)); });
  src.onerror = async () => {
    if (src.readyState === EventSource.CLOSED) return;
    src.close();
    try { done(await api(`/api/jobs/${job.id}`)); } catch (e) { setStatus(ui, "error", e.message); finish(); }
  };
}

// ------------------------------------------------------------------ inputs
async function loadSubject(name) {
  state.subject = await api(`/api/subjects/${name}`);
  // results of the previous model are not left beside this model's inputs (rev46x)
  for (const id of ["explain-result", "compare-result", "components-result", "training-result"]) { const b = $(id); if (b) b.replaceChildren(); }
  state.index = 0;
  const s = state.subject;
  $("subject-desc").textContent = s.description;
  $("add-text").hidden = !s.typed_text;
  $("upload").hidden = s.kind === "text";
  $("upload-hint").textContent = s.kind === "image" ? `.png/.jpg (resized to ${(s.image_size || s.sample_shape.slice(-2)).join("×")}) or .npy of shape ${JSON.stringify(s.sample_shape)}` : `.csv or .npy with ${s.sample_shape[0]} columns`;
  fillMethods();
  await drawGallery();
  await selectInput(0);
  $("tabs").querySelector('[data-view="components"]').hidden = !s.components;
  $("tabs").querySelector('[data-view="training"]').hidden = !s.training;
}
async function drawGallery() {
  const s = state.subject, g = $("gallery");
  g.replaceChildren();
  const n = Math.min(s.n_inputs, 96);
  for (let i = 0; i < n; i++) {
    if (s.kind === "image") {
      const b = el("button", { class: "thumb", title: s.labels[i] || `input ${i}`, "data-index": i, onclick: () => selectInput(i) });
      g.append(b);
      api(`/api/subjects/${s.name}/inputs/${i}`).then((p) => b.append(imageCanvas(p.image, 48))).catch(() => {});
    } else {
      g.append(el("button", { class: "row", "data-index": i, text: `${i}: ${s.labels[i] || "input " + i}`, onclick: () => selectInput(i) }));
    }
  }
  if (s.n_inputs > n) {
    // inputs past the gallery (a --data file's rows 96..511, uploads after them) were out of
    // reach without a word (aud46x): say how many are shown and go to any by its number
    const box = el("input", { type: "number", id: "goto-index", min: 0, max: s.n_inputs - 1, value: n });
    const go = () => {
      const i = Number(box.value);
      if (Number.isInteger(i) && i >= 0 && i < s.n_inputs) selectInput(i).catch((e) => { $("inputs-msg").textContent = e.message; });
      else $("inputs-msg").textContent = `input number must be a whole number in 0..${s.n_inputs - 1}`;
    };
    g.append(el("div", { id: "gallery-more", class: "muted small" },
      el("span", { text: `inputs 0–${n - 1} of ${s.n_inputs} shown; input ` }), box,
      el("button", { id: "goto-btn", type: "button", text: "show", onclick: go })));
  }
}
async function selectInput(i) {
  state.index = i;
  for (const b of $("gallery").children) b.classList.toggle("selected", Number(b.dataset.index) === i);
  const p = await api(`/api/subjects/${state.subject.name}/inputs/${i}`);
  state.preview = p;
  for (const id of ["explain-input", "compare-input", "components-input"]) {
    const box = $(id); box.replaceChildren();
    if (p.image) box.append(imageCanvas(p.image, 96));
    else if (p.tokens) box.append(tokensView(p, null, 1));
    box.append(el("div", {}, el("div", { text: `input ${i}: ${p.label}` }),
      el("div", { class: "muted small", text: `model says: ${p.prediction.name}` })));
  }
}

// ------------------------------------------------------------------ explain
// why method m cannot run with the removal picked ("" where it can): a text subject's
// catalogue says it per removal (removal 'delete' takes neither gradients nor fractional
// masks: sobol and the gradient methods were offered there and then raised, rev47t)
function whyNot(m, removal) {
  const w = m.why_by_removal;
  return w && removal !== null && removal !== undefined && removal in w ? w[removal] : m.why;
}
function fillMethods() {
  for (const id of ["explain", "compare"]) {  // text subjects: how removed words are removed
    const rs = state.subject.removals || [], r = $(`${id}-removal`);
    r.replaceChildren(...rs.map((v) => el("option", { value: v, text: v })));
    $(`${id}-removal-label`).hidden = !rs.length;
  }
  $("explain-removal").onchange = fillExplainMethods;
  $("compare-removal").onchange = () => fillCompareMethods(false);
  fillExplainMethods(true);
  fillCompareMethods(true);
  $("explain-budget").placeholder = `default (${state.subject.default_budget})`;
}
function fillExplainMethods(fresh) {
  const sel = $("explain-method"), was = fresh === true ? null : sel.value;
  const ms = state.subject.methods, removal = removalOf("explain");
  sel.replaceChildren();
  const pref = state.subject.kind === "text" ? "kernel_shap" : "integrated_gradients";
  for (const m of ms) {
    const why = whyNot(m, removal);
    const o = el("option", { value: m.name, text: why ? `${m.name} (n/a)` : m.name });
    if (why) { o.disabled = true; o.title = why; }
    sel.append(o);
  }
  const ok = (name) => ms.some((m) => m.name === name && !whyNot(m, removal));
  sel.value = was && ok(was) ? was : ok(pref) ? pref : (ms.find((m) => !whyNot(m, removal)) || {}).name;
  sel.onchange = drawParams; drawParams();
}
function fillCompareMethods(fresh) {
  const box = $("compare-methods"), removal = removalOf("compare");
  const was = fresh === true ? null : new Set([...box.querySelectorAll("input:checked")].map((c) => c.value));
  box.replaceChildren();
  const defaults = state.subject.kind === "text" ? ["kernel_shap", "feature_ablation"] : ["integrated_gradients", "kernel_shap"];
  for (const m of state.subject.methods.filter((m) => !whyNot(m, removal))) {
    const cb = el("input", { type: "checkbox", value: m.name, name: "compare-method" });
    cb.checked = was ? was.has(m.name) : defaults.includes(m.name);
    box.append(el("label", {}, cb, m.name));
  }
}
function removalOf(id) { return (state.subject.removals || []).length ? $(`${id}-removal`).value : null; }
function drawParams() {
  const m = state.subject.methods.find((x) => x.name === $("explain-method").value);
  const box = $("explain-params"); box.replaceChildren();
  if (!m) return;
  $("method-summary").textContent = `${m.summary} ${m.paper ? "— " + m.paper : ""}${m.budget_rule ? " · default budget: " + m.budget_rule : ""}`;
  for (const f of m.params) {
    let input;
    if (f.type === "bool") { input = el("input", { type: "checkbox" }); input.checked = !!f.default; }
    else if (f.type === "choice") {
      input = el("select", {});
      if (f.nullable) input.append(el("option", { value: "", text: "None" }));
      for (const c of f.choices) input.append(el("option", { value: String(c), text: String(c) }));
      input.value = f.default === null ? "" : String(f.default);
    } else {
      input = el("input", { type: f.type === "text" ? "text" : "number" });
      if (f.type === "float") input.step = "any";
      if (f.min !== null && f.min !== undefined) input.min = f.min;
      if (f.max !== null && f.max !== undefined) input.max = f.max;
      input.value = f.default === null ? "" : String(f.default);
      if (f.default === null) input.placeholder = "None";
    }
    input.dataset.param = f.name; input.dataset.type = f.type;
    if (f.allowed) input.title = f.allowed;
    box.append(el("label", { title: f.allowed || "" }, f.name, input));
  }
}
function readParams() {
  const out = {};
  for (const input of $("explain-params").querySelectorAll("[data-param]")) {
    const t = input.dataset.type, k = input.dataset.param;
    if (t === "bool") out[k] = input.checked;
    else if (input.value === "") out[k] = null;
    else if (t === "int" || t === "float") out[k] = Number(input.value);
    else out[k] = input.value;
  }
  return out;
}
function numOrNull(id) { const v = $(id).value; return v === "" ? null : Number(v); }
function mapView(r, size, caption) {
  const p = state.preview, what = r.target || "the output";
  const wrap = el("div", { class: "panel" });
  if (state.subject.kind === "image") wrap.append(overlayCanvas(p.image, r.values, r.scale, size));
  else if (state.subject.kind === "text") wrap.append(tokensView(p, r.values, r.scale));
  else wrap.append(waterfall(r.features || p.features.map((f) => f.name), r.values, 0, what));
  wrap.append(legend(r.scale, what, r.signed));
  if (caption) wrap.append(el("div", { class: "cap", text: caption }));
  return wrap;
}
function renderExplain(r) {
  const box = $("explain-result"); box.replaceChildren();
  box.append(mapView(r, 256, `${r.method} · target: ${r.target} · ${r.n_evals} model rows · ${fmt(r.seconds, 2)} s`));
  const sums = (r.signed === false ? `sum of the importances ${fmt(r.positive + r.negative)} (unsigned scores, not additive credits)`
    : `sum of positive credits ${fmt(r.positive)}, of negative credits ${fmt(r.negative)}`) + (r.gap !== null && r.gap !== undefined ? ` · completeness gap ${fmt(r.gap)}` : "");
  box.append(el("p", { class: "muted small", text: sums }));
  if (r.pair) box.append(pairHeatMap(r.pair, r.method));
}
function pairHeatMap(pair, method) {
  // word x word interactions of a sentence pair (rows: first text, columns: second); every
  // word goes through textContent, never HTML
  const t = el("table", { class: "matrix pair-map" });
  t.append(el("tr", {}, el("th", { class: "l", text: "" }), ...pair.cols.map((w) => el("th", { class: "pair-word", text: w }))));
  pair.values.forEach((row, i) => {
    t.append(el("tr", {}, el("th", { class: "l pair-word", text: pair.rows[i] }), ...row.map((v, j) => {
      const td = el("td", { class: "pair-cell", text: fmt(v, 3), title: `${pair.rows[i]} × ${pair.cols[j]}: ${fmt(v, 4)}` });
      td.style.background = rgba(v, pair.scale || 1, 0.85); return td;
    })));
  });
  return el("div", { class: "panel pair" }, el("h3", { text: `Word × word interactions (${method})` }), t,
    legend(pair.scale || 0, "the similarity together"));
}

// ------------------------------------------------------------------ compare
function renderCompare(r) {
  const box = $("compare-result"); box.replaceChildren();
  const maps = el("div", {});
  r.panels.forEach((p) => maps.append(mapView(Object.assign({ target: r.target }, p), 160, `${p.method} · ${p.n_evals} rows · ${fmt(p.seconds, 2)} s`)));
  box.append(maps);
  const t = el("table", { class: "matrix" });
  t.append(el("tr", {}, el("th", { class: "l", text: "Spearman ρ" }), ...r.methods.map((m) => el("th", { text: m }))));
  r.spearman.forEach((row, i) => {
    t.append(el("tr", {}, el("th", { class: "l", text: r.methods[i] }), ...row.map((v) => {
      const td = el("td", { text: fmt(v, 2) }); if (v !== null) td.style.background = rgba(v, 1, 0.6); return td;
    })));
  });
  box.append(el("h3", { text: "Agreement (rank correlation of the credits)" }), t);
  box.append(el("h3", { text: "Faithfulness (computed live with tribute.evaluate)" }));
  const curves = el("div", { class: "imgs" });
  for (const [metric, title] of [["deletion", "Deletion (lower area = more faithful)"], ["insertion", "Insertion (higher area = more faithful)"]]) {
    curves.append(lineChart(r.panels.map((p) => ({ x: p[metric].fraction, y: p[metric].curve })), title));
  }
  box.append(curves);
  const key = el("table", {});
  key.append(el("tr", {}, el("th", { class: "l", text: "method" }), el("th", { text: "deletion AUC ↓" }), el("th", { text: "insertion AUC ↑" })));
  r.panels.forEach((p, k) => {
    const sw = el("td", { class: "l", text: "■ " + p.method }); sw.style.color = COLORS[k % COLORS.length];
    key.append(el("tr", {}, sw, el("td", { text: fmt(p.deletion.auc) }), el("td", { text: fmt(p.insertion.auc) })));
  });
  box.append(key);
}

// ------------------------------------------------------------------ components
function renderComponents(r) {
  const box = $("components-result"); box.replaceChildren(); $("components-detail").replaceChildren();
  const cols = Math.max(...r.grid.map((row) => row.length)), cell = Math.max(14, Math.min(36, Math.floor(640 / cols)));
  const L = 150, c = el("canvas", { width: L + cols * cell, height: r.grid.length * cell + 18, id: "components-heat" });
  const g = c.getContext("2d");
  g.fillStyle = "#fff"; g.fillRect(0, 0, c.width, c.height);
  g.font = "11px system-ui"; g.fillStyle = "#1d2330";
  r.grid.forEach((row, i) => {
    g.fillStyle = "#1d2330"; g.fillText(r.layers[i], 4, i * cell + cell / 2 + 4);
    row.forEach((v, j) => { g.fillStyle = rgba(v || 0, r.scale, 1); g.fillRect(L + j * cell, i * cell, cell - 1, cell - 1); g.strokeStyle = "#e4e7ec"; g.strokeRect(L + j * cell, i * cell, cell - 1, cell - 1); });
  });
  g.fillStyle = "#667085";
  for (let j = 0; j < cols; j += Math.ceil(cols / 12)) g.fillText(String(j), L + j * cell + 2, r.grid.length * cell + 13);
  c.addEventListener("click", (ev) => {
    const rect = c.getBoundingClientRect();
    const j = Math.floor((ev.clientX - rect.left - L) / cell), i = Math.floor((ev.clientY - rect.top) / cell);
    if (i < 0 || i >= r.grid.length || j < 0 || j >= r.grid[i].length) return;
    showUnit(r, r.layers[i], j);
  });
  box.append(el("div", { class: "heat" }, c), legend(r.scale, r.shown_target),
    el("p", { class: "muted small", text: `${r.method}: credit of each ${r.unit} (rows: layers, columns: ${r.unit}s) for ${r.shown_target}; ${r.n_evals} model rows. Click a cell to see its effect on every output.` }));
}
function showUnit(r, layer, j) {
  const name = `${layer} ${r.unit} ${j}`, vals = r.per_unit[name];
  const box = $("components-detail"); box.replaceChildren();
  if (!vals) return;
  const m = Math.max(1e-12, ...vals.map((v) => Math.abs(v || 0)));
  const t = el("table", { id: "unit-effect" });
  t.append(el("tr", {}, el("th", { class: "l", text: r.outputs.length > 1 ? "class" : "output" }), el("th", { text: `credit (${r.output_kind})` }), el("th", { class: "l", text: "" })));
  vals.forEach((v, k) => {
    const bar = el("div", {}); bar.style.width = `${Math.round(120 * Math.abs(v || 0) / m)}px`; bar.style.height = "10px"; bar.style.background = (v || 0) >= 0 ? "#b2182b" : "#2166ac";
    t.append(el("tr", {}, el("td", { class: "l", text: r.outputs[k] }), el("td", { text: fmt(v, 4) }), el("td", { class: "l" }, bar)));
  });
  box.append(el("h3", { text: `${name}: removing it changes each output by minus this credit` }), t);
}

// ------------------------------------------------------------------ training data
function renderTraining(r) {
  const box = $("training-result"); box.replaceChildren();
  box.append(el("div", { class: "imgs" }, el("figure", {}, imageCanvas(r.image, 96), el("figcaption", { text: `test point ${r.index}: label ${r.label}, predicted ${r.predicted}` }))));
  // the credits are those of the test point's LABEL (target=y): "the prediction's margin" was
  // wrong for a misclassified point (label 1, predicted 8: proponents were 1s) (aud46x)
  for (const [key, title] of [["proponents", `Proponents (raise the margin of its label, ${r.label})`], ["opponents", `Opponents (lower the margin of its label, ${r.label})`]]) {
    const row = el("div", { class: "imgs" });
    for (const it of r[key]) row.append(el("figure", {}, imageCanvas(it.image, 64), el("figcaption", { text: `#${it.index} (label ${it.label}) ${fmt(it.credit)}` })));
    if (!r[key].length) row.append(el("p", { class: "muted", text: "none" }));
    box.append(el("h3", { text: title }), row);
  }
  box.append(el("p", { class: "muted small", text: `${r.method} over ${r.n_train} training digits of a logistic model (tribute.TrainingData + attr.top); ${fmt(r.seconds, 2)} s.` }));
}

// ------------------------------------------------------------------ leaderboard
async function loadLeaderboard() {
  if (!state.lb) {
    try { state.lb = await api("/api/leaderboard"); } catch (e) { $("lb-msg").textContent = e.message; return; }
  }
  const runs = state.lb.runs || [];
  if (!runs.length) { $("lb-msg").textContent = state.lb.hint || "no results.json found under --results"; return; }
  const sel = $("lb-run"); if (!sel.options.length) {
    runs.forEach((r, i) => sel.append(el("option", { value: i, text: `${r.name} (${r.suite || "?"})` })));
    sel.onchange = () => { fillLbFilters(); drawLeaderboard(); };
    fillLbFilters();
  }
  drawLeaderboard();
}
function fillLbFilters() {
  const run = state.lb.runs[Number($("lb-run").value || 0)];
  for (const [id, key] of [["lb-case", "case"], ["lb-metric", "metric"]]) {
    const s = $(id); s.replaceChildren(el("option", { value: "", text: "all" }));
    [...new Set(run.rows.map((r) => r[key]))].sort().forEach((v) => s.append(el("option", { value: v, text: v })));
    s.onchange = drawLeaderboard;
  }
  state.lbSort = { key: "rank", dir: 1 };
}
function drawLeaderboard() {
  const run = state.lb.runs[Number($("lb-run").value || 0)];
  $("lb-msg").textContent = run.error || `${run.rows.length} scores; 95% interval = mean ± t standard errors (Student's t with n − 1 degrees of freedom; 1.96 where n is not recorded); rank 1 = best in the metric's direction. Click a column to sort.`;
  if (run.report) {
    const href = `/api/files/results/${run.report.split("/").map(encodeURIComponent).join("/")}` + (TOKEN ? `?token=${encodeURIComponent(TOKEN)}` : "");
    $("lb-msg").append(" ", el("a", { href, target: "_blank", rel: "noopener", text: "open this run's HTML report" }));
  }
  let rows = run.rows.filter((r) => (!$("lb-case").value || r.case === $("lb-case").value) && (!$("lb-metric").value || r.metric === $("lb-metric").value));
  const { key, dir } = state.lbSort;
  rows = rows.slice().sort((a, b) => {
    const x = a[key], y = b[key];
    if (x === y) return a.case.localeCompare(b.case) || a.metric.localeCompare(b.metric) || a.rank - b.rank;
    if (x === null) return 1; if (y === null) return -1;
    return (typeof x === "string" ? x.localeCompare(y) : x - y) * dir;
  });
  const cols = [["case", "case", 1], ["metric", "metric", 1], ["method", "method", 1], ["rank", "rank", 0], ["mean", "mean", 0], ["lo", "95% interval", 0], ["n", "n", 0], ["seconds", "seconds", 0]];
  const t = el("table", { id: "lb" });
  t.append(el("tr", {}, ...cols.map(([k, label, l]) => el("th", { class: l ? "l" : "", "data-key": k, text: label + (key === k ? (dir > 0 ? " ▲" : " ▼") : ""), onclick: () => { state.lbSort = { key: k, dir: key === k ? -dir : 1 }; drawLeaderboard(); } }))));
  for (const r of rows) {
    t.append(el("tr", {}, el("td", { class: "l", text: r.case }), el("td", { class: "l", text: `${r.metric} ${r.higher_is_better ? "↑" : "↓"}` }), el("td", { class: "l", text: r.method }),
      el("td", { text: r.rank }), el("td", { text: fmt(r.mean) }), el("td", { text: r.lo === null ? "—" : `[${fmt(r.lo)}, ${fmt(r.hi)}]` }), el("td", { text: r.n ?? "—" }), el("td", { text: fmt(r.seconds, 2) })));
  }
  $("lb-table").replaceChildren(t);
}

// ------------------------------------------------------------------ wiring
function show(view) {
  state.view = view;
  for (const b of $("tabs").children) b.classList.toggle("active", b.dataset.view === view);
  for (const s of document.querySelectorAll(".view")) s.hidden = s.id !== `view-${view}`;
  const wide = view === "leaderboard" || view === "training";
  $("inputs").hidden = wide;
  document.querySelector("main").classList.toggle("wide", wide);
  if (view === "leaderboard") loadLeaderboard();
}
async function upload(file) {
  const s = state.subject; $("inputs-msg").textContent = "";
  try {
    const buf = await file.arrayBuffer();
    const r = await api(`/api/subjects/${s.name}/inputs?filename=${encodeURIComponent(file.name)}`, { method: "POST", headers: { "Content-Type": "application/octet-stream" }, body: buf });
    state.subject = await api(`/api/subjects/${s.name}`);
    await drawGallery(); await selectInput(r.indices[0]);
    // the reader's warnings (a column of row numbers read as a feature...), as --data gives them
    $("inputs-msg").textContent = (r.warnings || []).join(" ");
  } catch (e) { $("inputs-msg").textContent = e.message; }
}
async function init() {
  for (const b of $("tabs").children) b.addEventListener("click", () => show(b.dataset.view));
  $("explain-form").addEventListener("submit", (ev) => {
    ev.preventDefault();
    runJob("explain", { kind: "explain", subject: state.subject.name, index: state.index, method: $("explain-method").value, params: readParams(), budget: numOrNull("explain-budget"), seed: numOrNull("explain-seed") || 0, removal: removalOf("explain") }, renderExplain);
  });
  $("compare-form").addEventListener("submit", (ev) => {
    ev.preventDefault();
    const names = [...document.querySelectorAll('input[name="compare-method"]:checked')].map((c) => c.value);
    runJob("compare", { kind: "compare", subject: state.subject.name, index: state.index, methods: names, budget: numOrNull("compare-budget"), removal: removalOf("compare") }, renderCompare);
  });
  $("components-form").addEventListener("submit", (ev) => {
    ev.preventDefault();
    runJob("components", { kind: "components", subject: state.subject.name, index: state.index, method: $("components-method").value }, renderComponents);
  });
  $("training-form").addEventListener("submit", (ev) => {
    ev.preventDefault();
    runJob("training", { kind: "training", subject: state.subject.name, index: Number($("training-index").value || 0), method: $("training-method").value }, renderTraining);
  });
  $("upload-file").addEventListener("change", (ev) => { if (ev.target.files[0]) upload(ev.target.files[0]); });
  $("add-text-btn").addEventListener("click", async () => {
    $("inputs-msg").textContent = "";
    try {
      const r = await api(`/api/subjects/${state.subject.name}/inputs`, { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify({ text_a: $("text-a").value, text_b: $("text-b").value }) });
      state.subject = await api(`/api/subjects/${state.subject.name}`);
      await drawGallery(); await selectInput(r.indices[0]);
    } catch (e) { $("inputs-msg").textContent = e.message; }
  });
  state.info = await api("/api/info");
  const sel = $("subject");
  for (const s of state.info.subjects) sel.append(el("option", { value: s.name, text: s.title }));
  sel.addEventListener("change", () => loadSubject(sel.value).catch((e) => { $("inputs-msg").textContent = e.message; }));
  const want = new URLSearchParams(location.search).get("subject");
  if (want && state.info.subjects.some((s) => s.name === want)) sel.value = want;
  $("tabs").querySelector('[data-view="leaderboard"]').hidden = !state.info.results;
  document.body.dataset.ready = "loading";
  try { await loadSubject(sel.value); document.body.dataset.ready = "yes"; }
  catch (e) { $("inputs-msg").textContent = e.message; document.body.dataset.ready = "error"; }
}
document.addEventListener("DOMContentLoaded", init);
