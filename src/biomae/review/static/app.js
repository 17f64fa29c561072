// biomae review: list, show, play and decide on events. No dependencies; the API is in server.py.
"use strict";
const $ = (id) => document.getElementById(id);
const state = { offset: 0, limit: 100, rows: [], index: -1, event: null, image: null, drag: null, drawing: false };
const canvas = $("canvas"), ctx = canvas.getContext("2d");

async function api(path, body) {
  const init = body === undefined ? {} : { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body) };
  const response = await fetch(path, init);
  const data = await response.json();
  if (!response.ok) { $("message").textContent = data.error || response.statusText; throw new Error(data.error); }
  $("message").textContent = "";
  return data;
}
const enc = encodeURIComponent;
const fmt = (x, d) => (x === null || x === undefined ? "" : Number(x).toFixed(d));

async function loadMeta() {
  const meta = await api("api/meta");
  for (const r of meta.recordings) $("f-rec").add(new Option(r.key, r.key));
  for (const l of meta.labels) $("f-label").add(new Option(l, l));
}

async function loadList(keepId) {
  const q = new URLSearchParams({ offset: state.offset, limit: state.limit, min_score: $("f-min").value,
    max_score: $("f-max").value, label: $("f-label").value, recording: $("f-rec").value, reviewed: $("f-rev").value });
  const data = await api("api/events?" + q);
  state.rows = data.events;
  state.total = data.total;
  $("count").textContent = `${data.total} events (${state.offset + 1}–${state.offset + data.events.length})`;
  const body = $("rows");
  body.replaceChildren();
  data.events.forEach((e, i) => {
    const tr = body.insertRow();
    tr.dataset.id = e.event_id; tr.dataset.status = e.status;
    for (const v of [e.key, fmt(e.start_s, 3), fmt(e.end_s - e.start_s, 3), e.label, fmt(e.score, 2), e.status || "–"]) tr.insertCell().textContent = v;
    tr.cells[5].className = "st";
    tr.onclick = () => select(i);
  });
  const i = keepId ? state.rows.findIndex((e) => e.event_id === keepId) : -1;
  if (state.rows.length) select(i >= 0 ? i : 0);
}

async function select(i) {
  if (i >= state.rows.length && state.offset + state.limit < state.total) return page(+1);
  if (i < 0 && state.offset > 0) return page(-1, true);
  if (i < 0 || i >= state.rows.length) return;
  state.index = i;
  for (const tr of $("rows").rows) tr.classList.toggle("current", tr.dataset.id === state.rows[i].event_id);
  $("rows").rows[i].scrollIntoView({ block: "nearest" });
  const id = state.rows[i].event_id;
  state.event = await api("api/event/" + enc(id));
  $("label-input").value = state.event.label;
  $("player").src = "api/audio/" + enc(id);
  const image = new Image();
  image.onload = () => { if (state.event && state.event.event_id === id) { state.image = image; draw(); } };
  image.src = "api/spec/" + enc(id);
  showInfo();
}

function showInfo() {
  const e = state.event, v = e.view;
  $("info").textContent = `${e.event_id}  ${fmt(e.start_s, 3)}–${fmt(e.end_s, 3)} s, ${fmt(e.low_hz, 0)}–${fmt(e.high_hz, 0)} Hz, ` +
    `label ${e.label}, score ${fmt(e.score, 3)}, status ${e.status || "not reviewed"}` + (e.changed ? ` (changed: ${e.changed})` : "") +
    (v.slow > 1 ? `, played ${v.slow}× slower` : "");
}

const xOf = (t) => ((t - state.event.view.t0_s) / (state.event.view.t1_s - state.event.view.t0_s)) * canvas.width;
const yOf = (hz) => (1 - hz / state.event.view.max_hz) * canvas.height;
const tOf = (x) => state.event.view.t0_s + (x / canvas.width) * (state.event.view.t1_s - state.event.view.t0_s);
const hzOf = (y) => Math.max(0, Math.min(1, 1 - y / canvas.height)) * state.event.view.max_hz;

function draw(box) {
  ctx.clearRect(0, 0, canvas.width, canvas.height);
  if (state.image) ctx.drawImage(state.image, 0, 0, canvas.width, canvas.height);
  const e = box || state.event;
  if (!e) return;
  const colour = { accepted: "#3f3", rejected: "#f33", added: "#3cf" }[state.event.status] || "#fff";
  ctx.strokeStyle = colour; ctx.lineWidth = 2; ctx.setLineDash([]);
  ctx.strokeRect(xOf(e.start_s), yOf(e.high_hz), xOf(e.end_s) - xOf(e.start_s), yOf(e.low_hz) - yOf(e.high_hz));
  ctx.setLineDash([5, 4]);
  for (const t of [e.start_s, e.end_s]) { ctx.beginPath(); ctx.moveTo(xOf(t), 0); ctx.lineTo(xOf(t), canvas.height); ctx.stroke(); }
}

async function decide(status, values = {}, advance = false) {
  if (!state.event) return;
  const body = Object.assign(status ? { status } : {}, values);
  const row = await api("api/decide/" + enc(state.event.event_id), body);
  await refresh(row, advance);
}

async function refresh(row, advance) {
  const i = state.rows.findIndex((e) => e.event_id === row.event_id);
  if (i >= 0) {
    state.rows[i] = row;
    const tr = $("rows").rows[i];
    tr.dataset.status = row.status; tr.cells[3].textContent = row.label; tr.cells[5].textContent = row.status || "–";
    tr.cells[1].textContent = fmt(row.start_s, 3); tr.cells[2].textContent = fmt(row.end_s - row.start_s, 3);
  }
  if (advance && state.index + 1 < state.rows.length) return select(state.index + 1);
  state.event = Object.assign(state.event, row);
  $("label-input").value = row.label;
  showInfo(); draw();
}

function nudge(field, delta) {
  const e = state.event;
  if (e) decide(null, { [field]: Number((e[field] + delta).toFixed(6)) });
}

function play() { const p = $("player"); p.currentTime = 0; p.play().catch((err) => ($("message").textContent = "cannot play: " + err)); }
async function relabel() { await decide(null, { label: $("label-input").value }); $("label-input").blur(); }
async function undo() {
  if (!state.event) return;
  const row = await api("api/undo/" + enc(state.event.event_id), {});
  await loadList(row.status === "removed" ? null : row.event_id);
}
function toggleDraw() { state.drawing = !state.drawing; $("draw").textContent = state.drawing ? "Drawing: drag a box" : "Draw a missed call (n)"; }

function pos(ev) { const r = canvas.getBoundingClientRect(); return { x: ev.clientX - r.left, y: ev.clientY - r.top }; }
canvas.addEventListener("mousedown", (ev) => {
  if (!state.event) return;
  const p = pos(ev), e = state.event, near = (a, b) => Math.abs(a - b) < 8;
  if (state.drawing) state.drag = { kind: "new", x0: p.x, y0: p.y };
  else if (near(p.x, xOf(e.start_s))) state.drag = { kind: "start_s" };
  else if (near(p.x, xOf(e.end_s))) state.drag = { kind: "end_s" };
  else if (near(p.y, yOf(e.high_hz))) state.drag = { kind: "high_hz" };
  else if (near(p.y, yOf(e.low_hz))) state.drag = { kind: "low_hz" };
  state.box = Object.assign({}, e);
});
canvas.addEventListener("mousemove", (ev) => {
  if (!state.drag) return;
  const p = pos(ev), d = state.drag, b = state.box;
  if (d.kind === "new") Object.assign(b, { start_s: tOf(Math.min(d.x0, p.x)), end_s: tOf(Math.max(d.x0, p.x)), low_hz: hzOf(Math.max(d.y0, p.y)), high_hz: hzOf(Math.min(d.y0, p.y)) });
  else b[d.kind] = d.kind.endsWith("_s") ? tOf(p.x) : hzOf(p.y);
  draw(b);
});
window.addEventListener("mouseup", async () => {
  const d = state.drag, b = state.box;
  state.drag = null;
  if (!d) return;
  const values = { start_s: +b.start_s.toFixed(4), end_s: +b.end_s.toFixed(4), low_hz: +b.low_hz.toFixed(1), high_hz: +b.high_hz.toFixed(1) };
  try {
    if (d.kind === "new") {
      toggleDraw();
      const row = await api("api/add", Object.assign({ key: state.event.key, label: $("label-input").value || "call" }, values));
      await loadList(row.event_id);
    } else await decide(null, { [d.kind]: values[d.kind] });
  } catch (err) { draw(); }
});

document.addEventListener("keydown", (ev) => {
  if (ev.target.tagName === "INPUT" || ev.target.tagName === "SELECT") {
    if (ev.key === "Enter" && ev.target.id === "label-input") relabel();
    if (ev.key === "Escape") ev.target.blur();
    return;
  }
  const actions = {
    j: () => select(state.index + 1), ArrowDown: () => select(state.index + 1),
    k: () => select(state.index - 1), ArrowUp: () => select(state.index - 1),
    " ": play, a: () => decide("accepted", {}, true), r: () => decide("rejected", {}, true),
    l: () => { $("label-input").focus(); $("label-input").select(); }, u: undo, n: toggleDraw,
    "[": () => nudge("start_s", -0.01), "]": () => nudge("start_s", 0.01),
    "{": () => nudge("end_s", -0.01), "}": () => nudge("end_s", 0.01),
    "-": () => nudge("low_hz", -100), "=": () => nudge("low_hz", 100),
    _: () => nudge("high_hz", -100), "+": () => nudge("high_hz", 100),
  };
  if (actions[ev.key]) { ev.preventDefault(); actions[ev.key](); }
});

async function showSummary() {
  const s = await api("api/summary");
  const pct = (x) => (x === null ? "–" : (100 * x).toFixed(1) + "%");
  const table = (rows, first) => `<table><tr><th>${first}</th><th>events</th><th>reviewed</th><th>accepted</th><th>rejected</th><th>added</th><th>precision (95% Wilson)</th></tr>` +
    rows.map((r) => `<tr><td>${r[first] ?? "all"}</td><td>${r.events}</td><td>${r.reviewed}</td><td>${r.accepted}</td><td>${r.rejected}</td><td>${r.added}</td>` +
      `<td>${pct(r.precision)} [${pct(r.precision_low)}, ${pct(r.precision_high)}]</td></tr>`).join("") + "</table>";
  const box = $("summary");
  box.innerHTML = "<h3>Detector precision from the reviewed sample</h3>" + table([s.overall], "all") +
    "<h3>Per label</h3>" + table(s.labels, "label") + "<h3>Per recording</h3>" + table(s.recordings, "recording");
}

function tab(name) {
  $("events-view").classList.toggle("hidden", name !== "events");
  $("summary-view").classList.toggle("hidden", name !== "summary");
  if (name === "summary") showSummary();
}
$("tab-events").onclick = () => tab("events");
$("tab-summary").onclick = () => tab("summary");
$("play").onclick = play;
$("accept").onclick = () => decide("accepted", {}, true);
$("reject").onclick = () => decide("rejected", {}, true);
$("relabel").onclick = relabel;
$("undo").onclick = undo;
$("draw").onclick = toggleDraw;
for (const id of ["f-min", "f-max", "f-label", "f-rec", "f-rev"]) $(id).onchange = () => { state.offset = 0; loadList(); };
async function page(step, last = false) {
  const offset = state.offset + step * state.limit;
  if (offset < 0 || offset >= state.total) return;
  state.offset = offset;
  await loadList();
  if (last) select(state.rows.length - 1);
}
$("prev-page").onclick = () => page(-1);
$("next-page").onclick = () => page(+1);
if (location.search.includes("token=")) history.replaceState(null, "", location.pathname);
loadMeta().then(() => loadList());
