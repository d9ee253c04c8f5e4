// The Vistrit dashboard: one page, five views, each drawn from the JSON API (/api/...).
// Every value from the API is put in the page as text (never as HTML): a task's name is
// whatever its client chose. The view in the address (#cluster, #tasks?state=Failed,
// #task/ID, ...) is redrawn every second while it is shown, except while the pointer is on
// it (so that what you are about to click stays where it is).
"use strict";

const REFRESH_MS = 1000;
const STATES = ["Pending", "Scheduled", "Running", "Completed", "Failed", "Cancelled"];
const view = document.getElementById("view");
let timer = null;
let pointing = false;
view.addEventListener("mouseenter", () => { pointing = true; });
view.addEventListener("mouseleave", () => { pointing = false; });

// -- small helpers --------------------------------------------------------------------------

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (key === "class") node.className = value;
    else if (key === "onclick") node.addEventListener("click", value);
    else node.setAttribute(key, value === true ? "" : String(value));
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

function svgEl(tag, attrs, ...children) {
  const node = document.createElementNS("http://www.w3.org/2000/svg", tag);
  for (const [key, value] of Object.entries(attrs || {})) node.setAttribute(key, String(value));
  for (const child of children) node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  return node;
}

function clock(seconds) {
  if (seconds === null || seconds === undefined) return "–";
  return new Date(seconds * 1000).toLocaleTimeString([], { hour12: false });
}

function ago(seconds) {
  if (seconds === null || seconds === undefined) return "–";
  return seconds < 60 ? `${seconds.toFixed(1)} s` : `${Math.round(seconds / 60)} min`;
}

function size(bytes) {
  if (bytes === null || bytes === undefined) return "–";
  const units = ["B", "KiB", "MiB", "GiB"];
  let value = bytes, unit = 0;
  while (value >= 1024 && unit < units.length - 1) { value /= 1024; unit++; }
  return `${unit ? value.toFixed(1) : value} ${units[unit]}`;
}

function short(id) { return id ? id.slice(0, 8) : "–"; }

function table(headers, rows, numeric = []) {
  return el("table", {},
    el("thead", {}, el("tr", {}, headers.map((h, i) => el("th", { class: numeric.includes(i) ? "num" : null }, h)))),
    el("tbody", {}, rows));
}

function cells(values, numeric = [], attrs = {}) {
  return el("tr", attrs, values.map((v, i) => el("td", { class: numeric.includes(i) ? "num" : null }, v)));
}

async function api(path) {
  const response = await fetch(path, { credentials: "same-origin", cache: "no-store" });
  const body = await response.json();
  if (!response.ok) {
    const err = new Error(body.error || `${response.status}`);
    err.answered = true;  // the coordinator answered: it is the request that failed
    throw err;
  }
  return body;
}

// Each view is drawn by a function given `show`, which puts its nodes in the page only if
// no later drawing has started meanwhile (answers may come back out of order).
let generation = 0;

function shower(mine) {
  return (...nodes) => {
    if (mine === generation) view.replaceChildren(...nodes.filter(n => n !== null && n !== undefined));
  };
}

function status(text, bad = false) {
  const footer = document.getElementById("status");
  footer.textContent = text;
  footer.className = bad ? "error" : "";
}

// -- the header: which coordinator, which role ----------------------------------------------

function header(c) {
  const term = c.term === null ? "" : ` · term ${c.term}`;
  document.getElementById("where").textContent = `${c.name} at ${c.address} · ${c.role}${term}`;
  const banner = document.getElementById("banner");
  if (c.role !== "Leader") {
    const leader = c.leader ? `coordinator ${c.leader.rank} at ${c.leader.address} (term ${c.leader.term})` : "not known yet";
    banner.textContent = `This coordinator is a ${c.role.toLowerCase()}: the leader is ${leader}. ` +
      "Workers and clients are served there; the tasks shown here are this coordinator's copy.";
    banner.hidden = false;
  } else {
    banner.hidden = true;
  }
}

// -- the cluster ----------------------------------------------------------------------------

function throughputChart(all) {
  // From the first second anything finished (but at least the last minute) to now.
  const first = all.findIndex(p => p.completed + p.failed);
  const points = all.slice(Math.max(0, Math.min(first < 0 ? all.length : first, all.length - 60)));
  const width = 720, height = 140, pad = 28;
  const max = Math.max(1, ...points.map(p => p.completed + p.failed));
  const svg = svgEl("svg", { width, height, viewBox: `0 0 ${width} ${height}`, id: "throughput", role: "img" });
  svg.append(svgEl("title", {}, "tasks finished per second"));
  const step = (width - pad) / Math.max(1, points.length);
  points.forEach((p, i) => {
    const total = p.completed + p.failed;
    if (!total) return;
    const h = (height - pad) * total / max;
    const bad = (height - pad) * p.failed / max;
    svg.append(svgEl("rect", { x: pad + i * step, y: height - pad / 2 - h, width: Math.max(1, step - 0.5), height: h - bad, fill: "#2e8b57" }));
    if (bad) svg.append(svgEl("rect", { x: pad + i * step, y: height - pad / 2 - bad, width: Math.max(1, step - 0.5), height: bad, fill: "#c0392b" }));
  });
  svg.append(svgEl("text", { x: 2, y: 12 }, `${max}/s`));
  svg.append(svgEl("text", { x: 2, y: height - 4 }, points.length ? clock(points[0].time) : ""));
  svg.append(svgEl("text", { x: width - 60, y: height - 4 }, points.length ? clock(points[points.length - 1].time) : ""));
  return svg;
}

function workerRow(w) {
  const load = el("span", { class: "bar-box" }, el("span", { class: "bar", style: null }));
  load.firstChild.style.width = `${Math.min(100, w.load * 100)}%`;
  return cells([w.name, w.address, w.slots, w.running, load, ago(w.heartbeat_age), w.state,
    w.tags.join(", ") || "–", Object.entries(w.offers).map(([k, v]) => `${k}: ${v.join(", ")}`).join("; ") || "–"],
    [2, 3, 5], { "data-worker": w.id, "data-name": w.name });
}

async function drawCluster(show) {
  const c = await api("/api/cluster");
  header(c.coordinator);
  const counts = c.counts;
  const card = (label, value, id) => el("div", { class: "card", id }, el("b", {}, value), el("span", {}, label));
  const peers = c.coordinator.peers.length
    ? table(["coordinator", "address", "link"], c.coordinator.peers.map(p =>
        cells([p.rank, p.address, p.linked ? "connected" : "down"])))
    : el("p", {}, "One coordinator: it leads; there is no election.");
  show(
    el("h2", {}, "Tasks"),
    el("div", { class: "cards" },
      card("workers", c.workers.length, "count-workers"),
      card("queued", counts.queued, "count-queued"),
      card("waiting on others", counts.waiting, "count-waiting"),
      card("on workers", counts.held, "count-held"),
      card("completed", counts.completed_total, "count-completed"),
      card("failed or cancelled", counts.failed_total, "count-failed"),
      card("remembered", counts.remembered, "count-remembered"),
      card("clients", counts.clients, "count-clients")),
    el("h2", {}, "Throughput: tasks finished per second (red: failed)"),
    throughputChart(c.throughput),
    el("h2", {}, "Workers"),
    c.workers.length
      ? table(["name", "address", "slots", "running", "load", "heartbeat", "state", "tags", "offers"],
          c.workers.map(workerRow), [2, 3, 5])
      : el("p", { id: "no-workers" }, "No worker has joined."),
    c.departed.length ? el("h2", {}, "Workers that left") : null,
    c.departed.length
      ? table(["name", "address", "slots", "left", "gone for"], c.departed.map(w =>
          el("tr", { class: "gone", "data-gone": w.id, "data-name": w.name },
            el("td", {}, w.name), el("td", {}, w.address), el("td", { class: "num" }, w.slots),
            el("td", { class: "why" }, `left at ${clock(w.left_at)}`), el("td", {}, ago(w.gone_for)))))
      : null,
    el("h2", {}, "Coordinators"),
    el("p", {}, `This one: ${c.coordinator.name} (${c.coordinator.address}), ${c.coordinator.role}` +
      (c.coordinator.journal ? `, journal ${c.coordinator.journal}` : ", no journal")),
    peers,
  );
}

// -- the task stream ------------------------------------------------------------------------

function lanes(tasks) {
  // Each worker's tasks on as few lanes as they fit: a lane is a slot, as it was used.
  const byWorker = new Map();
  for (const t of [...tasks].sort((a, b) => a.start - b.start)) {
    const ends = byWorker.get(t.worker) || [];
    let lane = ends.findIndex(end => end <= t.start);
    if (lane < 0) { lane = ends.length; ends.push(0); }
    ends[lane] = t.end === null ? Infinity : t.end;
    t.lane = lane;
    byWorker.set(t.worker, ends);
  }
  return byWorker;
}

async function drawStream(show) {
  const s = await api("/api/stream");
  const used = lanes(s.tasks);
  const rows = [];
  for (const w of s.workers) {
    const count = Math.max(w.slots || 1, (used.get(w.id) || []).length);
    for (let lane = 0; lane < count; lane++) rows.push({ worker: w, lane });
  }
  const starts = s.tasks.map(t => t.start);
  // From the first start to the last end (now, while one runs): the tasks fill the width.
  const from = starts.length ? Math.min(...starts) : s.now - 60;
  const to = starts.length ? Math.max(...s.tasks.map(t => t.end === null ? s.now : t.end)) : s.now;
  const width = 900, rowHeight = 18, left = 150;
  const height = Math.max(40, rows.length * rowHeight + 24);
  const x = t => left + (width - left - 10) * (t - from) / Math.max(0.001, to - from);
  const svg = svgEl("svg", { width, height, viewBox: `0 0 ${width} ${height}`, id: "stream", role: "img" });
  svg.append(svgEl("title", {}, "what ran on which worker slot, when"));
  rows.forEach((row, i) => {
    const label = `${row.worker.name} #${row.lane + 1}${row.worker.connected ? "" : " (gone)"}`;
    svg.append(svgEl("text", { x: 4, y: i * rowHeight + 13 }, label));
  });
  const index = new Map(rows.map((row, i) => [`${row.worker.id}/${row.lane}`, i]));
  const colours = { Completed: "#2e8b57", Failed: "#c0392b", Cancelled: "#c0392b", Running: "#2f6fd6" };
  for (const t of s.tasks) {
    const i = index.get(`${t.worker}/${t.lane}`);
    if (i === undefined) continue;
    const end = t.end === null ? to : t.end;
    const rect = svgEl("rect", { x: x(t.start), y: i * rowHeight + 3, width: Math.max(2, x(end) - x(t.start)),
      height: rowHeight - 6, fill: colours[t.state] || "#999", "data-task": t.id, class: "task-bar" });
    rect.append(svgEl("title", {}, `${t.name} ${short(t.id)}: ${t.state}`));
    rect.addEventListener("click", () => { location.hash = `#task/${t.id}`; });
    svg.append(rect);
  }
  svg.append(svgEl("text", { x: left, y: height - 4 }, clock(from)));
  svg.append(svgEl("text", { x: width - 60, y: height - 4 }, clock(to)));
  show(el("h2", {}, `Task stream: the last ${s.tasks.length} tasks (blue: running; click one)`),
    rows.length ? svg : el("p", {}, "Nothing has run yet."));
}

// -- the task list and a task's page --------------------------------------------------------

async function drawTasks(params, show) {
  const state = params.get("state") || "";
  const offset = Number(params.get("offset") || 0);
  const limit = 50;
  const query = new URLSearchParams({ limit, offset });
  if (state) query.set("state", state);
  const page = await api(`/api/tasks?${query}`);
  const link = (label, s, o) => {
    const q = new URLSearchParams();
    if (s) q.set("state", s);
    if (o) q.set("offset", o);
    return el("a", { href: `#tasks?${q}`, class: (s === state && !o) ? "active" : null }, label);
  };
  const rows = page.tasks.map(t => el("tr", { "data-task": t.id },
    el("td", { class: "mono" }, el("a", { href: `#task/${t.id}` }, short(t.id))),
    el("td", {}, t.name || "–"), el("td", {}, `${t.kind} ${t.function}`),
    el("td", { class: `state-${t.state}` }, t.state + (t.progress !== null ? ` ${t.progress}%` : "")),
    el("td", {}, t.worker_name || short(t.worker)), el("td", {}, clock(t.submitted_at)),
    el("td", {}, clock(t.finished_at)), el("td", { class: "num" }, t.attempts ?? "–"),
    el("td", {}, t.waiting || "")));
  show(
    el("h2", {}, "Tasks, newest first"),
    el("div", { class: "filters" }, link("all", "", 0), STATES.map(s => link(s, s, 0))),
    rows.length ? table(["id", "name", "what", "state", "worker", "submitted", "finished", "attempts", "waiting"], rows, [7])
                : el("p", { id: "no-tasks" }, "No task to show."),
    el("div", { class: "pager" },
      offset ? link("← newer", state, Math.max(0, offset - limit)) : null,
      page.tasks.length === limit ? link("older →", state, offset + limit) : null,
      page.total !== null ? el("span", {}, `${page.total} remembered`) : null));
}

async function drawTask(id, show) {
  const t = await api(`/api/tasks/${encodeURIComponent(id)}`);
  const row = (label, value) => el("tr", {}, el("th", {}, label), el("td", {}, value ?? "–"));
  show(
    el("h2", {}, `Task ${t.id}`),
    el("table", { id: "task" }, el("tbody", {},
      row("name", t.name || "–"), row("what", `${t.kind} ${t.function}`), row("needs", t.needs),
      row("state", el("span", { class: `state-${t.state}` }, t.state)),
      row("progress", t.progress === null ? "–" : `${t.progress}%`),
      row("waiting", t.waiting), row("priority", t.priority),
      row("attempts", t.attempts === null ? `not known here (settled by an earlier leader)`
        : `${t.attempts} (at most ${t.max_retries + 1})`),
      row("workers", t.workers.map(w => w.name || short(w.id)).join(", ") || "–"),
      row("submitted", clock(t.submitted_at)), row("started", clock(t.started_at)),
      row("finished", clock(t.finished_at)),
      row("duration", t.duration_ms === null ? "–" : `${t.duration_ms} ms`),
      row("timeout", t.timeout_seconds ? `${t.timeout_seconds} s` : "none"),
      row("input", size(t.input_bytes)), row("output", size(t.output_bytes)),
      row("tags", t.tags.join(", ") || "–"), row("depends on", t.dependencies.map(short).join(", ") || "–"),
      row("error", t.error))),
    t.errors.length > 1 ? el("h2", {}, "Every attempt's error") : null,
    t.errors.length > 1 ? el("ol", {}, t.errors.map(e => el("li", {}, e))) : null,
    t.traceback ? el("h2", {}, "Remote traceback") : null,
    t.traceback ? el("pre", { id: "traceback" }, t.traceback) : null);
}

// -- elections and frames -------------------------------------------------------------------

async function drawElections(show) {
  const e = await api("/api/elections");
  if (!e.cluster) {
    show(el("h2", {}, "Elections"), el("p", { id: "no-election" },
      "One coordinator: it leads alone, and there is no election. Start several with --id and --peers."));
    return;
  }
  const rows = [...e.changes].reverse().map(c =>
    el("tr", {}, el("td", {}, clock(c.time)), el("td", { class: "num" }, c.term),
      el("td", {}, el("b", {}, c.event), c.why ? `: ${c.why}` : ""), el("td", {}, c.role),
      el("td", {}, c.leader ?? "none known")));
  show(el("h2", {}, `Elections: coordinator ${e.rank}, now ${e.role} in term ${e.term}; leader: ${e.leader ?? "none known"}`),
    rows.length ? table(["when", "term", "what happened", "role after", "leader after"], rows, [1])
                : el("p", {}, "No move yet."));
}

async function drawFrames(params, show) {
  const number = params.get("frame");
  const list = await api("/api/frames");
  const rows = [...list.frames].reverse().slice(0, 100).map(f => el("tr", { "data-frame": f.number },
    el("td", { class: "num" }, el("a", { href: `#frames?frame=${f.number}` }, f.number)),
    el("td", {}, clock(f.time)), el("td", {}, f.direction === "in" ? "→ in" : "← out"),
    el("td", {}, f.peer), el("td", {}, f.type), el("td", { class: "num" }, `v${f.version}`),
    el("td", { class: "num" }, f.size)));
  const parts = [el("h2", {}, "Frames, sampled (the newest first; click one for its bytes)"),
    rows.length ? table(["#", "when", "way", "peer", "message", "version", "bytes"], rows, [0, 5, 6])
                : el("p", {}, "No frame sampled yet.")];
  if (number) {
    try {
      const f = await api(`/api/frames/${encodeURIComponent(number)}`);
      const hex = f.hex;
      const spanRows = f.spans.map(s => cells([s.offset, s.length,
        hex.slice(s.offset * 2, Math.min(s.offset + Math.min(s.length, 16), hex.length / 2) * 2).replace(/(..)/g, "$1 ") +
          (s.length > 16 ? "…" : ""), s.field, s.wire_type, s.value], [0, 1]));
      parts.unshift(el("h2", { id: "byte-table" }, `Frame ${f.number}: ${f.type} (v${f.version}, ${f.size} bytes, ${f.direction === "in" ? "from" : "to"} ${f.peer})`),
        table(["offset", "length", "bytes", "field", "wire type", "value"], spanRows, [0, 1]));
    } catch (err) {
      parts.unshift(el("p", { class: "error" }, String(err.message)));
    }
  }
  show(...parts);
}

// -- the router -----------------------------------------------------------------------------

async function draw(event) {
  clearTimeout(timer);
  const mine = ++generation;
  if (event === "timer" && pointing) {  // hold still under the pointer; look again soon
    status("paused while the pointer is on the page");
    timer = setTimeout(draw, REFRESH_MS / 4, "timer");
    return;
  }
  const [path, search] = (location.hash.slice(1) || "cluster").split("?");
  const params = new URLSearchParams(search || "");
  const name = path.split("/")[0];
  for (const a of document.querySelectorAll("nav a")) a.classList.toggle("active", a.dataset.view === name || (name === "task" && a.dataset.view === "tasks"));
  try {
    const show = shower(mine);
    if (name === "stream") await drawStream(show);
    else if (name === "tasks") await drawTasks(params, show);
    else if (name === "task") await drawTask(path.slice(5), show);
    else if (name === "elections") await drawElections(show);
    else if (name === "frames") await drawFrames(params, show);
    else await drawCluster(show);
    if (name !== "cluster") header((await api("/api/cluster")).coordinator);
    status(`updated ${clock(Date.now() / 1000)}`);
  } catch (err) {
    if (err.answered) {
      shower(mine)(el("p", { class: "error", id: "refused" }, err.message));
      status(err.message, true);
    } else {
      status(`cannot reach the coordinator: ${err.message}`, true);
    }
  }
  if (mine === generation) timer = setTimeout(draw, REFRESH_MS, "timer");  // one chain only
}

window.addEventListener("hashchange", () => draw("hashchange"));
draw();
