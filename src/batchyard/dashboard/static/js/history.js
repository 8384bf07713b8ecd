// History and analytics: filters in the URL, totals from /api/v1/stats, charts and a sortable table over the
// matching jobs (a page of them at a time, keyset-paged by the server).
import { $, $$, api, badge, boot, compact, duration, html, money, num, pct, query, raw, setupPage, shortId, timeAgo } from "./core.js";
import { barChart, shareBar, lineChart } from "./charts.js";

setupPage();

const PAGE = 200;
const form = $("#history-filters");
const state = readUrl();
let page = null;

function readUrl() {
  const p = new URLSearchParams(location.search);
  return {
    status: p.getAll("status"),
    handler: p.get("handler") || "",
    project: p.get("project") || "",
    from: p.get("from") || "",
    to: p.get("to") || "",
    q: p.get("q") || "",
    sort: p.get("sort") || "-created_at",
    cursor: p.get("cursor") || null,
  };
}

function toForm() {
  for (const box of $$("input[name=status]", form)) box.checked = state.status.includes(box.value);
  form.elements.handler.value = state.handler;
  form.elements.project.value = state.project;
  form.elements.from.value = state.from;
  form.elements.to.value = state.to;
  form.elements.q.value = state.q;
  for (const th of $$("th[data-sort]")) {
    const key = th.dataset.sort;
    th.setAttribute("aria-sort", state.sort === key ? "ascending" : state.sort === `-${key}` ? "descending" : "none");
    th.querySelector("button").textContent = th.querySelector("button").textContent.replace(/ [↑↓]$/, "") + (state.sort === key ? " ↑" : state.sort === `-${key}` ? " ↓" : "");
  }
}

const epoch = (date, endOfDay = false) => (date ? new Date(`${date}T${endOfDay ? "23:59:59" : "00:00:00"}`).getTime() / 1000 : null);

function urlParams() {
  return { status: state.status, handler: state.handler, project: state.project, from: state.from, to: state.to, q: state.q, sort: state.sort === "-created_at" ? null : state.sort, cursor: state.cursor };
}

async function load() {
  $("#history-wrap").setAttribute("aria-busy", "true");
  $("#history-wrap").classList.add("loading");
  $("#history-note").textContent = "Loading…";
  const listParams = {
    status: state.status, handler: state.handler, project: state.project, q: state.q, sort: state.sort, limit: PAGE,
    created_after: epoch(state.from), created_before: epoch(state.to, true), cursor: state.cursor,
  };
  const statsParams = { handler: state.handler, project: state.project, since: epoch(state.from) };
  const historyParams = {
    status: state.status, handler: state.handler, project: state.project, q: state.q,
    since: epoch(state.from) ?? Date.now() / 1000 - 2 * 86400, until: epoch(state.to, true), recent: 30,
  };
  $("#export-csv").href = `/api/v1/jobs.csv${query({ status: state.status, handler: state.handler, project: state.project, q: state.q, created_after: epoch(state.from), created_before: epoch(state.to, true), sort: state.sort })}`;
  try {
    const [jobs, stats, past] = await Promise.all([
      api(`/api/v1/jobs${query(listParams)}`),
      api(`/api/v1/stats${query(statsParams)}`),
      api(`/api/v1/stats/history${query(historyParams)}`),
    ]);
    page = jobs;
    renderTotals(stats);
    renderTable();
    renderCharts(stats, past);
    $("#history-note").textContent = "";
  } catch (error) {
    $("#history-note").textContent = "";
    $("#history-rows").innerHTML = "";
    const empty = $("#history-empty");
    empty.hidden = false;
    empty.innerHTML = html`<h2>Could not load the history</h2><p>${error.message}</p><p><a class="btn" href="/history">Reset the filters</a></p>`.text;
  }
  $("#history-wrap").setAttribute("aria-busy", "false");
  $("#history-wrap").classList.remove("loading");
}

function renderTotals(stats) {
  const t = stats.totals;
  $("#t-jobs").textContent = num(t.jobs.total);
  $("#t-success").textContent = pct(t.success_rate, 1);
  $("#t-items").textContent = compact(t.items.succeeded + t.items.failed);
  $("#t-avg").textContent = duration(t.avg_item_seconds);
  $("#t-cost").textContent = money(t.cost);
}

function successBar(job) {
  const processed = job.counts.succeeded + job.counts.failed;
  if (!processed) return raw('<span class="muted">—</span>');
  const rate = job.counts.succeeded / processed;
  return html`<span class="rate-bar" role="img" aria-label="${pct(rate, 1)} succeeded"><span style="width:${(rate * 100).toFixed(1)}%"></span></span>${pct(rate, rate < 1 && rate > 0.99 ? 1 : 0)}`;
}

function renderTable() {
  const jobs = page.data;
  $("#history-rows").innerHTML = jobs.map((j) => html`<tr>
    <td class="col-job" data-label="Job"><a class="mono" href="/jobs/${j.id}" title="${j.id}">${shortId(j.id)}</a>${j.description ? html`<div class="job-desc">${j.description}</div>` : ""}</td>
    <td data-label="Handler"><span class="handler">${j.handler}</span></td>
    <td data-label="Status">${badge(j.status)}</td>
    <td class="num" data-label="Items">${num(j.counts.total)}</td>
    <td data-label="Success rate">${successBar(j)}</td>
    <td class="num" data-label="Avg / item">${duration(j.avg_item_seconds)}</td>
    <td class="num" data-label="Duration">${duration(j.duration_seconds)}</td>
    <td class="num" data-label="Cost">${money(j.cost)}</td>
    <td class="num" data-label="Priority">${j.priority}</td>
    <td class="num" data-label="Updated">${timeAgo(j.last_activity_at ?? j.created_at)}</td>
    <td class="num" data-label="Created">${timeAgo(j.created_at)}</td></tr>`.text).join("");
  const empty = $("#history-empty");
  empty.hidden = jobs.length > 0;
  empty.innerHTML = html`<h2>No jobs match these filters</h2><p>Widen the dates or clear a filter.</p><p><a class="btn" href="/history">Reset the filters</a></p>`.text;
  $("#h-count").textContent = `${num(jobs.length)} job${jobs.length === 1 ? "" : "s"}${page.has_more ? " on this page; charts below the totals cover these" : ""}`;
  const parts = [];
  if (state.cursor) parts.push(html`<a class="btn" href="/history${query({ ...urlParams(), cursor: null })}">← First page</a>`);
  if (page.has_more) parts.push(html`<a class="btn" href="/history${query({ ...urlParams(), cursor: page.next_cursor })}">Next page →</a>`);
  $("#history-pager").innerHTML = html`<span class="spacer"></span>${parts}`.text;
}

function put(id, chart, empty = "No data for these filters yet.") {
  $(id).innerHTML = chart ? chart.text : html`<p class="subtle">${empty}</p>`.text;
}

function renderCharts(stats, past) {
  const t = stats.totals;
  put("#chart-share", shareBar({
    title: "Items succeeded and failed",
    parts: [
      { name: "Succeeded", value: t.items.succeeded, cls: "bar-ok", swatch: "sw-ok" },
      { name: "Failed", value: t.items.failed, cls: "bar-bad", swatch: "sw-bad" },
      { name: "Cancelled", value: t.items.cancelled, cls: "bar-neutral", swatch: "sw-neutral" },
    ],
    format: compact,
  }), "No item has finished yet.");
  const mix = [["queued", "bar-neutral"], ["running", "bar-info"], ["paused", "bar-warn"], ["completed", "bar-ok"], ["failed", "bar-bad"], ["cancelled", "bar-neutral"], ["expired", "bar-bad"]];
  put("#chart-mix", barChart({
    title: "Jobs by status",
    bars: mix.map(([s, cls]) => ({ label: s, value: t.jobs[s] || 0, cls, title: `${s}: ${num(t.jobs[s] || 0)} jobs` })).filter((b) => b.value || ["completed", "failed"].includes(b.label)),
    formatY: (v) => compact(Math.round(v)),
  }), "No jobs yet.");

  // From GET /api/v1/stats/history: jobs that finished in the range, per hour or day, and the latest ones.
  const recent = [...past.recent].reverse(); // oldest left
  const label = (j) => (j.description || j.id).slice(0, 10);
  const t2 = past.totals;
  const timeChart = barChart({
    title: "Processing time of the latest batches (oldest left)",
    bars: recent.filter((j) => j.duration_seconds != null).map((j) => ({ label: label(j), value: j.duration_seconds, cls: "bar-info", title: `${j.description || j.id}: ${duration(j.duration_seconds)} for ${num(j.total)} items` })),
    formatY: duration,
  });
  $("#chart-time").innerHTML = html`<p class="small">Per item <strong>${duration(t.avg_item_seconds)}</strong> (last hour ${duration(t.recent_avg_item_seconds)}) · per batch average <strong>${duration(t2.avg_duration_seconds)}</strong>, median ${duration(t2.p50_duration_seconds)}, p95 ${duration(t2.p95_duration_seconds)}</p>${timeChart || html`<p class="subtle">No batch finished in this range.</p>`}`.text;

  const unit = past.bucket === "day" ? "day" : "hour";
  const fmt = (ts) => new Date(ts * 1000).toLocaleString([], unit === "day" ? { month: "short", day: "numeric" } : { weekday: "short", hour: "2-digit", minute: "2-digit" });
  const points = past.buckets.map((b) => [b.start, b.items_succeeded + b.items_failed]);
  const failedPoints = past.buckets.map((b) => [b.start, b.items_failed]);
  const tput = lineChart({
    title: `Items processed per ${unit} by the batches that finished`,
    series: [
      { name: `Items per ${unit}`, cls: "line-ok", area: "area-ok", swatch: "sw-ok", points },
      { name: "of them failed", cls: "line-bad", swatch: "sw-bad", points: failedPoints },
    ],
    formatX: fmt,
    formatY: (v) => compact(Math.round(v)),
    tableRows: { head: ["From", "Items", "Failed", "Jobs"], rows: past.buckets.filter((b) => b.jobs.total).map((b) => [fmt(b.start), num(b.items_succeeded + b.items_failed), num(b.items_failed), num(b.jobs.total)]) },
  });
  $("#chart-tput").innerHTML = html`<p class="small">Now <strong>${t.items_per_second ? `${t.items_per_second.toFixed(1)}/s` : "idle"}</strong> (last ${duration(stats.throughput_window_seconds)}) · ${num(t2.jobs.total)} batches finished since ${fmt(past.since)}</p>${points.some((p) => p[1]) ? tput : html`<p class="subtle">No batch finished in this range.</p>`}`.text;

  const costChart = barChart({
    title: "Cost of the latest batches (oldest left)",
    bars: recent.filter((j) => j.cost > 0).map((j) => ({ label: label(j), value: j.cost, cls: "bar-warn", title: `${j.description || j.id}: ${money(j.cost)}` })),
    formatY: money,
  });
  $("#chart-cost").innerHTML = html`<p class="small">Total <strong>${money(t.cost)}</strong>, in this range ${money(t2.cost)}${Object.keys(t.usage).length ? html` · ${Object.entries(t.usage).map(([k, v], i) => html`${i ? ", " : ""}${compact(Math.round(v))} ${k}`)}` : ""}</p>${costChart || html`<p class="subtle">No batch reported a cost (handlers add it with ctx.add_usage(cost=...)).</p>`}`.text;

  const handlers = stats.by_handler;
  $("#chart-handlers").innerHTML = handlers.length
    ? html`<div class="table-wrap"><table><caption class="visually-hidden">Per handler</caption><thead><tr><th scope="col">Handler</th><th scope="col" class="num">Jobs</th><th scope="col">Success</th><th scope="col" class="num">Avg / item</th></tr></thead><tbody>${handlers.map((h) => html`<tr><td><span class="handler">${h.handler}</span></td><td class="num">${num(h.jobs.total)}</td><td>${h.success_rate == null ? "—" : html`<span class="rate-bar" role="img" aria-label="${pct(h.success_rate, 1)} succeeded"><span style="width:${(h.success_rate * 100).toFixed(1)}%"></span></span>${pct(h.success_rate, 1)}`}</td><td class="num">${duration(h.avg_item_seconds)}</td></tr>`)}</tbody></table></div>`.text
    : html`<p class="subtle">No jobs yet.</p>`.text;
}

form.addEventListener("submit", (event) => {
  event.preventDefault();
  state.status = $$("input[name=status]:checked", form).map((b) => b.value);
  state.handler = form.elements.handler.value;
  state.project = form.elements.project.value.trim();
  state.from = form.elements.from.value;
  state.to = form.elements.to.value;
  state.q = form.elements.q.value.trim();
  state.cursor = null;
  history.pushState(null, "", `/history${query(urlParams())}`);
  load();
});
for (const th of $$("th[data-sort]")) {
  th.querySelector("button").addEventListener("click", () => {
    const key = th.dataset.sort;
    state.sort = state.sort === `-${key}` ? key : `-${key}`;
    state.cursor = null;
    history.pushState(null, "", `/history${query(urlParams())}`);
    toForm();
    load();
  });
}
window.addEventListener("popstate", () => { Object.assign(state, readUrl()); toForm(); load(); });

toForm();
const filtered = state.status.length || state.handler || state.project || state.from || state.to || state.q;
if (!filtered && matchMedia("(max-width: 520px)").matches) $("#filters-box").open = false; // the charts first on a phone
load();
