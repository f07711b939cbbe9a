// scanq dashboard: a hash-routed page over the REST API (no build step, no CDN).
// Views: #/ overview (a row and a card per tool and zone), #/jobs list, #/jobs/ID detail (?chunks=N: a big scan's chunk page), #/breakers,
// #/workers, #/tools, #/dead, #/approvals (jobs awaiting a person's approval, DESIGN §14).
"use strict";
const $ = (id) => document.getElementById(id);
const esc = (v) => String(v ?? "").replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c]);
const tokenBox = $("token");
tokenBox.value = localStorage.getItem("scanq-token") || "";
tokenBox.onchange = () => { localStorage.setItem("scanq-token", tokenBox.value); seen.clear(); whoami().then(route); };
let me = { admin: false, scopes: [] };
let timer = null;
let stream = null;
const samples = {}; // "tool@zone" -> [{depth, running}] sampled by the overview, newest last

function headers(extra) {
  const h = Object.assign({}, extra || {});
  if (tokenBox.value) h.Authorization = "Bearer " + tokenBox.value;
  return h;
}
// Conditional reads (DESIGN §15): each GET's last ETag and body; a poll sends If-None-Match and
// a 304 (no body) reuses what was read before.
const seen = new Map();
async function api(path, method, send) {
  const get = !method || method === "GET";
  const known = get ? seen.get(path) : undefined;
  const extra = known ? { "If-None-Match": known.etag } : send !== undefined ? { "Content-Type": "application/json" } : {};
  const r = await fetch(path, { method: method || "GET", headers: headers(extra), body: send !== undefined ? JSON.stringify(send) : undefined });
  if (r.status === 304 && known) return known.body;
  const body = await r.json().catch(() => null);
  if (!r.ok) throw new Error((body && (body.detail + (body.hint ? " — " + body.hint : ""))) || path + ": " + r.status);
  const etag = r.headers.get("ETag");
  if (get && etag) {
    seen.delete(path); seen.set(path, { etag, body });
    if (seen.size > 100) seen.delete(seen.keys().next().value);
  }
  return body;
}
const can = (scope) => me.admin || me.scopes.includes(scope);
function status(text, bad) { const s = $("status"); s.textContent = text; s.className = bad ? "bad" : "muted"; }
function table(head, rows, id) {
  return `<table${id ? ` id="${esc(id)}"` : ""}><tr>` + head.map((h) => `<th>${esc(h)}</th>`).join("") + "</tr>" +
    rows.map((r) => "<tr>" + r.map((c) => `<td>${c}</td>`).join("") + "</tr>").join("") + "</table>";
}
function act(label, path, method, cls) {
  return `<button class="${cls || ""}" data-path="${esc(path)}" data-method="${method || "POST"}">${esc(label)}</button>`;
}
// Reject (DESIGN §14): asks the person for a reason, sent with the decision.
document.addEventListener("click", async (e) => {
  const b = e.target.closest("button[data-reject]");
  if (!b) return;
  const reason = window.prompt(`Reject job ${b.dataset.reject}: why?`, "");
  if (reason === null) return;
  try { await api(`/v1/jobs/${encodeURIComponent(b.dataset.reject)}/reject`, "POST", reason.trim() ? { reason: reason.trim() } : {}); status("Reject: done"); }
  catch (err) { status(err.message, true); }
  route();
});
function decisionButtons(id) {
  return can("approve") ? act("Approve", `/v1/jobs/${encodeURIComponent(id)}/approve`, "POST", "approve") +
    `<button class="reject" data-reject="${esc(id)}">Reject</button>` : "";
}
document.addEventListener("click", async (e) => {
  const b = e.target.closest("button[data-path]");
  if (!b) return;
  try { await api(b.dataset.path, b.dataset.method); status(b.textContent + ": done"); }
  catch (err) { status(err.message, true); }
  route();
});
function spark(values) {
  if (values.length < 2) return '<svg class="spark"></svg>';
  const max = Math.max(1, ...values);
  const pts = values.map((v, i) => `${(i * 100) / (values.length - 1)},${30 - (v * 28) / max}`).join(" ");
  return `<svg class="spark" viewBox="0 0 100 31" preserveAspectRatio="none"><polyline points="${pts}"/></svg>`;
}
const jobLink = (id) => `<a href="#/jobs/${encodeURIComponent(id)}">${esc(id)}</a>`;
// A succeeded job's summary carries no progress: it is at 100 %.
const pct = (j) => {
  const p = j.progress || (j.state === "succeeded" ? { percent: 100 } : null);
  return p ? `<progress max="100" value="${p.percent}"></progress> ${p.percent.toFixed(0)}%` : "";
};
// Zones (DESIGN §13): a queue is a tool in a zone; `default` is the zone of every target the
// zone map does not place.
const zoneCell = (z) => `<span class="zone" data-zone="${esc(z || "default")}">${esc(z || "default")}</span>`;
// Why a queued job is not claimed (`waiting_for`), in words.
function waitingText(w) {
  if (!w) return "";
  if (w.startsWith("zone:")) return `no live worker of zone ${w.slice(5)} serves its tool: it starts when one does`;
  if (w === "raw_capable_worker") return "no live raw-capable worker serves its tool in its zone";
  if (w === "target_group") return "its target group runs as many jobs as the tool's per-group cap allows";
  return w;
}
const waitingShort = (w) => w.startsWith("zone:") ? `waiting for a worker of zone ${w.slice(5)}`
  : w === "raw_capable_worker" ? "waiting for a raw-capable worker" : w === "target_group" ? "waiting for its target group" : "waiting: " + w;

async function overview() {
  const stats = await api("/v1/stats");
  const rows = stats.tools || []; // one per tool and zone
  const queues = table(["tool", "zone", "depth", "running", "oldest (ms)", "ok", "failed", "cancelled"],
    rows.map((t) => [esc(t.tool), zoneCell(t.zone), esc(t.queue_depth), esc(t.counts.running), esc(t.oldest_queued_age_ms ?? "-"), esc(t.counts.succeeded), esc(t.counts.failed), esc(t.counts.cancelled)]), "queues");
  const cards = rows.map((t) => {
    const key = t.tool + "@" + (t.zone || "default");
    const h = (samples[key] = (samples[key] || []).concat([{ depth: t.queue_depth, running: t.counts.running }]).slice(-90));
    // The last hour from the API (fleet view); a tenant's view has none and shows what this
    // page sampled since it opened.
    const s = t.series || [];
    const hour = s.length
      ? `<div class="muted">finished per minute, last hour (${s.reduce((a, p) => a + p.finished, 0)})</div>${spark(s.map((p) => p.finished))}
      <div class="muted">queue depth, last hour</div>${spark(s.map((p) => p.depth ?? 0))}
      <div class="muted">wait p95 / run p95 (ms), last hour</div>${spark(s.map((p) => p.wait_p95_ms ?? 0))}${spark(s.map((p) => p.run_p95_ms ?? 0))}`
      : `<div class="muted">queue depth</div>${spark(h.map((x) => x.depth))}`;
    return `<div class="card" data-tool="${esc(t.tool)}" data-zone="${esc(t.zone || "default")}"><b>${esc(t.tool)}</b> <span class="muted">zone</span> ${zoneCell(t.zone)}
      <div>depth <b>${t.queue_depth}</b> · running <b>${t.counts.running}</b> · oldest ${t.oldest_queued_age_ms ?? "-"} ms</div>
      ${hour}
      <div class="muted">running</div>${spark(h.map((x) => x.running))}
      <div>finished ok ${t.counts.succeeded} · failed ${t.counts.failed} · cancelled ${t.counts.cancelled}</div>
      <div>wait p50/p95/p99 ${t.queue_wait.p50_ms ?? "-"}/${t.queue_wait.p95_ms ?? "-"}/${t.queue_wait.p99_ms ?? "-"} ms</div>
      <div>run p50/p95/p99 ${t.run_time.p50_ms ?? "-"}/${t.run_time.p95_ms ?? "-"}/${t.run_time.p99_ms ?? "-"} ms</div></div>`;
  });
  return `<h2>Overview <span class="muted">(${esc(stats.scope)})</span></h2><h2>Queues <span class="muted">(one per tool and zone)</span></h2>${queues}<div class="cards">${cards.join("")}</div>`;
}

function filters() {
  const p = new URLSearchParams(location.hash.split("?")[1] || "");
  return { state: p.get("state") || "", tool: p.get("tool") || "", tenant: p.get("tenant") || "", target: p.get("target") || "", since: p.get("since") || "" };
}
async function jobs(dead) {
  const f = filters();
  const q = new URLSearchParams({ limit: "50" });
  if (dead) q.set("state", "failed"); else if (f.state) q.set("state", f.state);
  if (f.tool) q.set("tool", f.tool);
  if (f.tenant && me.admin) q.set("tenant", f.tenant);
  let list = [], cursor = null, pages = 0;
  do { // newest first; a few pages so the client-side filters have something to work on
    if (cursor) q.set("cursor", cursor);
    const page = await api("/v1/jobs?" + q);
    list = list.concat(page.jobs); cursor = page.next_cursor; pages++;
  } while (cursor && pages < (Number(new URLSearchParams(location.hash.split("?")[1] || "").get("pages")) || 1));
  list = list.filter((j) => (!f.target || j.target.includes(f.target)) && (!f.since || j.created_at >= f.since));
  const rows = list.map((j) => [jobLink(j.correlation_id), esc(j.tool), zoneCell(j.zone) + ((j.zones || []).length ? ` <span class="muted zones">(${esc(j.zones.join(", "))})</span>` : ""), esc(j.target),
    `<span class="state">${esc(j.state)}</span>${j.waiting_for ? ` <span class="bad waiting" data-waiting="${esc(j.waiting_for)}" title="${esc(waitingText(j.waiting_for))}">${esc(waitingShort(j.waiting_for))}</span>` : ""}`, pct(j), esc(j.created_at)]);
  const bulk = me.admin && list.length ? `<div>${list.length} shown:
    <button id="bulk-cancel">Cancel all shown</button><button id="bulk-retry">Retry all shown</button></div>` : "";
  const form = dead ? "<h2>Dead letters (failed jobs)</h2>" : `<h2>Jobs</h2><form class="filters" id="filter">
    <select name="state"><option value="">any state</option>${["awaiting_approval", "queued", "scheduled", "running", "succeeded", "failed", "cancelled"].map((s) => `<option ${s === f.state ? "selected" : ""}>${s}</option>`).join("")}</select>
    <input name="tool" placeholder="tool" value="${esc(f.tool)}"> ${me.admin ? `<input name="tenant" placeholder="tenant" value="${esc(f.tenant)}">` : ""}
    <input name="target" placeholder="target contains" value="${esc(f.target)}"> <input name="since" placeholder="since (RFC 3339)" value="${esc(f.since)}">
    <button>Filter</button></form>`;
  setTimeout(() => {
    const form = $("filter");
    if (form) form.onsubmit = (e) => { e.preventDefault(); location.hash = "#/jobs?" + new URLSearchParams(new FormData(form)); };
    const each = (method, path) => async () => {
      for (const j of list) { try { await api(path(j), method); } catch (e) { status(j.correlation_id + ": " + e.message, true); } }
      route();
    };
    if ($("bulk-cancel")) $("bulk-cancel").onclick = each("DELETE", (j) => "/v1/jobs/" + encodeURIComponent(j.correlation_id));
    if ($("bulk-retry")) $("bulk-retry").onclick = each("POST", (j) => "/v1/jobs/" + encodeURIComponent(j.correlation_id) + "/retry");
  });
  const more = cursor ? `<a href="#/jobs?${new URLSearchParams(Object.assign({}, f, { pages: pages + 1 }))}">more…</a>` : "";
  return form + bulk + table(["id", "tool", "zone", "target", "state", "progress", "created"], rows) + more;
}

// Pending approvals (DESIGN §14): the tenant's jobs awaiting a person, with Approve / Reject
// for tokens that hold `approve` (never the submitter's own: the server refuses that, 403).
async function approvals() {
  const page = await api("/v1/jobs?state=awaiting_approval&limit=100");
  const rows = (page.jobs || []).map((j) => [jobLink(j.correlation_id), esc(j.tool), esc(j.target), esc(j.submitted_by), esc(j.created_at),
    `<span class="decide" data-id="${esc(j.correlation_id)}">${decisionButtons(j.correlation_id)}</span>`]);
  const note = can("approve") ? "" : `<p class="muted">Your token has no <code>approve</code> scope: you can see the queue but not decide.</p>`;
  return `<h2>Pending approvals</h2>${note}` + (rows.length ? table(["id", "tool", "target", "submitted by", "created", ""], rows, "approvals")
    : `<p class="muted" id="no-approvals">Nothing awaits approval.</p>`);
}

function resultTable(parsed) {
  if (!parsed || !parsed.hosts) return "<p class='muted'>no parsed result</p>";
  const rows = [];
  for (const h of parsed.hosts) {
    const addr = esc((h.addresses || [])[0]?.addr);
    if (!(h.ports || []).length) rows.push([addr, "", "", esc(h.status?.state), "", ""]);
    for (const p of h.ports || []) rows.push([addr, esc(p.protocol), esc(p.port), esc(p.state), esc(p.service?.name), esc([p.service?.product, p.service?.version].filter(Boolean).join(" "))]);
  }
  return table(["host", "proto", "port", "state", "service", "version"], rows);
}
async function follow(id) { // SSE over fetch, so the bearer token travels in a header
  const ctl = new AbortController(); stream = ctl;
  const r = await fetch(`/v1/jobs/${encodeURIComponent(id)}/events?include=output`, { headers: headers({ Accept: "text/event-stream" }), signal: ctl.signal });
  const reader = r.body.getReader(); const dec = new TextDecoder(); let buf = "";
  for (;;) {
    const { value, done } = await reader.read(); if (done) return;
    buf += dec.decode(value, { stream: true });
    let i;
    while ((i = buf.indexOf("\n\n")) >= 0) {
      const block = buf.slice(0, i); buf = buf.slice(i + 2);
      const kind = (block.match(/^event: ?(.*)$/m) || [])[1]; const data = block.split("\n").filter((l) => l.startsWith("data:")).map((l) => l.slice(5).trim()).join("\n");
      if (!kind) continue;
      if (kind === "output") { // raw output, live
        try { const o = JSON.parse(data); const pre = $(o.stream === "stderr" ? "stderr" : "stdout"); if (pre) pre.textContent += o.text; } catch (e) { /* not JSON */ }
        continue;
      }
      const t = $("timeline"); if (t) t.insertAdjacentHTML("beforeend", `<li>${esc(new Date().toLocaleTimeString())} <b>${esc(kind)}</b> ${esc(data.slice(0, 200))}</li>`);
      if (kind === "progress") { try { const p = JSON.parse(data); chunkProgress(p); $("bar").value = p.percent; $("phase").textContent = `${p.phase || ""} ${p.percent.toFixed(0)}%${p.eta_sec != null ? ", ETA " + p.eta_sec + " s" : ""}`; } catch (e) { /* not JSON */ } }
      if (kind === "state") { try { $("state").textContent = JSON.parse(data).state || data; } catch (e) { $("state").textContent = data; } }
      if (kind === "done") { ctl.abort(); setTimeout(route, 100); return; }
    }
  }
}
// A big scan (DESIGN §12): the parent's hosts bar, its chunks by state as a stacked SVG bar
// (attributes, not inline styles, so the CSP holds) with counts, and a paged chunk table.
const CHUNK_STATES = ["succeeded", "running", "queued", "scheduled", "failed", "cancelled"];
const CHUNK_PAGE = 10;
function chunkBar(t) {
  let x = 0;
  const rects = CHUNK_STATES.filter((s) => t[s] > 0).map((s) => {
    const w = (t[s] * 100) / Math.max(1, t.total);
    const r = `<rect class="c-${s}" x="${x}" y="0" width="${w}" height="10"><title>${esc(s)}: ${esc(t[s])}</title></rect>`;
    x += w; return r;
  });
  const counts = CHUNK_STATES.map((s) => `<span class="c-${s}" data-state="${s}">${esc(s)} <b>${esc(t[s] ?? 0)}</b></span>`).join(" · ");
  return `<svg class="chunks" viewBox="0 0 100 10" preserveAspectRatio="none">${rects.join("")}</svg><div id="chunk-counts">${esc(t.total)} chunks: ${counts}</div>`;
}
function hostsText(p) { return `${esc(p?.hosts_done ?? 0)} of ${esc(p?.hosts_total ?? "?")} hosts done`; }
async function chunkSection(j, cursor) {
  const page = await api(`/v1/jobs/${encodeURIComponent(j.correlation_id)}/chunks?limit=${CHUNK_PAGE}&cursor=${cursor}`);
  const rows = page.chunks.map((c) => [jobLink(c.correlation_id), `<span class="state">${esc(c.state)}</span>`, zoneCell(c.zone), esc(c.target), esc(c.worker), `${esc(c.attempt)}/${esc(c.max_attempts)}`, esc(c.error?.message)]);
  const here = (n) => esc(`#/jobs/${encodeURIComponent(j.correlation_id)}?chunks=${Number(n)}`);
  const last = Math.min(cursor + page.chunks.length, page.total);
  const nav = [cursor > 0 ? `<a id="chunks-prev" href="${here(Math.max(0, cursor - CHUNK_PAGE))}">← previous</a>` : "",
    page.next_cursor != null ? `<a id="chunks-next" href="${here(page.next_cursor)}">next →</a>` : ""].filter(Boolean).join(" ");
  return `<h2>Big scan</h2><p><progress id="hostbar" max="${esc(j.progress?.hosts_total ?? 0)}" value="${esc(j.progress?.hosts_done ?? 0)}"></progress> <span id="hosts">${hostsText(j.progress)}</span></p>
    <div id="chunkbar">${chunkBar(j.chunks)}</div>${j.result?.partial ? '<p class="bad" id="partial">partial result: the hosts of chunks that did not succeed are missing</p>' : ""}
    <h2>Chunks <span class="muted">${esc(cursor + (rows.length ? 1 : 0))}–${esc(last)} of ${esc(page.total)}</span></h2>
    <div id="chunk-table">${table(["chunk", "state", "zone", "target", "worker", "attempt", "error"], rows)}</div><p class="pager">${nav}</p>`;
}
function chunkProgress(p) { // a parent's progress event: hosts and the chunk tally, live
  if (!p.chunks || !$("chunkbar")) return;
  $("chunkbar").innerHTML = chunkBar(p.chunks);
  $("hostbar").max = p.hosts_total; $("hostbar").value = p.hosts_done; $("hosts").textContent = `${p.hosts_done} of ${p.hosts_total} hosts done`;
}
async function detail(id) {
  const j = await api("/v1/jobs/" + encodeURIComponent(id));
  const actions = [];
  if (can("cancel") && !["succeeded", "failed", "cancelled"].includes(j.state)) actions.push(act("Cancel", "/v1/jobs/" + encodeURIComponent(id), "DELETE", "cancel"));
  if (can("submit") && ["failed", "cancelled"].includes(j.state)) actions.push(act("Retry", "/v1/jobs/" + encodeURIComponent(id) + "/retry", "POST", "retry"));
  if (j.state === "awaiting_approval") actions.push(decisionButtons(id));
  const doc = ["tool", "zone", "target", "args", "attempt", "max_attempts", "priority", "created_at", "started_at", "finished_at", "queue_wait_ms", "duration_ms", "worker"]
    .map((k) => [esc(k), k === "zone" ? zoneCell(j.zone) : esc(Array.isArray(j[k]) ? j[k].join(" ") : j[k])]);
  if ((j.zones || []).length) doc.splice(2, 0, ["zones", `<span id="zones">${j.zones.map(zoneCell).join(", ")}</span> (a big scan spanning zones: its chunks run in these)`]);
  if (j.parent) doc.unshift(["parent", `<a id="parent" href="#/jobs/${encodeURIComponent(j.parent)}">${esc(j.parent)}</a> (this job is a chunk of a big scan)`]);
  if (j.needs) doc.push(["needs", esc(j.needs.join(" "))]);
  if (j.submitted_by) doc.push(["submitted by", esc(j.submitted_by)]);
  if (j.approval) doc.push(["approval", `<span id="approval" data-decision="${esc(j.approval.decision)}">${esc(j.approval.decision)}${j.approval.by ? " by " + esc(j.approval.by) : ""}${j.approval.at ? " at " + esc(j.approval.at) : ""}${j.approval.reason ? ": " + esc(j.approval.reason) : ""}</span>`]);
  if (j.waiting_for) doc.push(["waiting for", `<span class="bad" id="waiting" data-waiting="${esc(j.waiting_for)}">${esc(waitingText(j.waiting_for))}</span> <span class="muted">(${esc(j.waiting_for)})</span>`]);
  if (j.error) doc.push(["error", `<span class="bad">${esc(j.error.type)}: ${esc(j.error.message)}</span><br>${esc(j.error.recovery_suggestion)}`]);
  const p = j.progress || { percent: j.state === "succeeded" ? 100 : 0 };
  const live = !["succeeded", "failed", "cancelled"].includes(j.state);
  const cursor = Number(new URLSearchParams(location.hash.split("?")[1] || "").get("chunks")) || 0;
  const big = j.chunks ? await chunkSection(j, cursor) : "";
  if (live) setTimeout(() => follow(id).catch(() => {}));
  return `<h2>Job ${esc(id)} — <span id="state">${esc(j.state)}</span></h2><div>${actions.join("")}</div>
    <p><progress id="bar" max="100" value="${p.percent}"></progress> <span id="phase">${esc(p.phase || "")} ${p.percent.toFixed(0)}%</span></p>
    ${big}${table(["field", "value"], doc)}<h2>Result</h2>${resultTable(j.result?.parsed)}
    <h2>stdout</h2><pre id="stdout">${esc(j.result?.stdout)}</pre><h2>stderr</h2><pre id="stderr">${esc(j.result?.stderr)}</pre>
    <h2>Events</h2><ol id="timeline"></ol>`;
}
async function breakers() {
  const b = (await api("/v1/breakers")).breakers || {};
  // One breaker per tool and zone: keyed `nmap` (zone default) or `nmap@dmz`; each says both.
  return "<h2>Breakers</h2>" + Object.entries(b).map(([key, s]) => {
    const tool = s.tool || key, zone = s.zone || "default";
    const path = (a) => `/v1/breakers/${encodeURIComponent(tool)}/${a}?zone=${encodeURIComponent(zone)}`;
    return `<h3>${esc(tool)} <span class="zone">zone ${esc(zone)}</span>: <span class="${s.state === "closed" ? "ok" : "bad"}">${esc(s.state)}</span></h3>
    ${me.admin ? ["open", "close", "reset"].map((a) => act(a, path(a))).join("") : ""}
    ${table(["at", "from", "to", "reason"], (s.history || []).slice(0, 20).map((t) => [esc(t.at_ms ? new Date(t.at_ms).toISOString() : ""), esc(t.from), esc(t.to), esc(t.reason)]))}`;
  }).join("");
}
// A worker's capabilities that are on (raw_sockets, run_cgroups, unconfined), or "none".
function capabilities(c) {
  const on = Object.keys(c || {}).filter((k) => c[k] === true);
  return on.length ? on.map((k) => esc(k)).join(", ") : "none";
}
async function workers() {
  const w = await api("/v1/workers");
  return "<h2>Workers</h2>" + table(["id", "zone", "version", "pid", "running", "concurrency", "confinement", "capabilities", "heartbeat expires", "jobs"],
    (w.workers || []).map((x) => [esc(x.id), zoneCell(x.zone), esc(x.version), esc(x.pid), esc(x.running), esc(x.concurrency), esc(x.confinement), `<span class="caps">${capabilities(x.capabilities)}</span>`, esc(new Date(x.heartbeat_expires_ms).toISOString()), (x.running_jobs || []).map((t) => esc(t)).join("<br>")]));
}
async function tools() {
  const t = await api("/v1/tools");
  return `<h2>Tools</h2><p class="muted">targets ${esc(t.targets)}</p>` + table(["tool", "enabled", "templates", "description", ""],
    t.tools.map((x) => [esc(x.name), esc(x.enabled), esc(Object.keys(x.templates || {}).join(", ")), esc(x.description), me.admin ? act("enable", `/v1/tools/${x.name}/enable`) + act("disable", `/v1/tools/${x.name}/disable`) : ""]));
}

async function route() {
  clearTimeout(timer);
  if (stream) { stream.abort(); stream = null; }
  const hash = location.hash.slice(1) || "/";
  const path = hash.split("?")[0];
  try {
    let html;
    if (path === "/") html = await overview();
    else if (path === "/jobs") html = await jobs(false);
    else if (path === "/dead") html = await jobs(true);
    else if (path.startsWith("/jobs/")) html = await detail(decodeURIComponent(path.slice(6)));
    else if (path === "/breakers") html = await breakers();
    else if (path === "/workers") html = await workers();
    else if (path === "/tools") html = await tools();
    else if (path === "/approvals") html = await approvals();
    else html = "<p>no such page</p>";
    $("view").innerHTML = html;
    status("updated " + new Date().toLocaleTimeString());
  } catch (e) { status(e.message, true); }
  // Lists refresh every 2 s; a job detail follows its own event stream instead.
  if (!path.startsWith("/jobs/")) timer = setTimeout(route, 2000);
}
async function whoami() {
  try { me = await api("/v1/whoami"); $("who").textContent = `${me.name} · tenant ${me.tenant}${me.admin ? " · admin" : ""}`; }
  catch (e) { me = { admin: false, scopes: [] }; $("who").textContent = e.message; }
}
window.addEventListener("hashchange", route);
whoami().then(route);
