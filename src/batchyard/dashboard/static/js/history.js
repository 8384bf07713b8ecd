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
  $("#export-csv").href = `/api/v1/jobs.csv${query({ status: state.status, handler: state.handler, project: state.project })}`;
  try {
    const [jobs, stats] = await Promise.all([api(`/api/v1/jobs${query(listParams)}`), api(`/api/v1/stats${query(statsParams)}`)]);
    page = jobs;
    renderTotals(stats);
    renderTable();
    renderCharts(stats);
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

function renderCharts(stats) {
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

  const done = page.data.filter((j) => j.avg_item_seconds != null).slice(0, 30).reverse();
  const timeChart = barChart({
    title: "Average time per item, recent batches (oldest left)",
    bars: done.map((j) => ({ label: shortId(j.id).slice(-4), value: j.avg_item_seconds, cls: "bar-info", title: `${j.description || j.id}: ${duration(j.avg_item_seconds)} per item` })),
    formatY: duration,
  });
  $("#chart-time").innerHTML = html`<p class="small">Overall <strong>${duration(t.avg_item_seconds)}</strong> per item · last hour <strong>${duration(t.recent_avg_item_seconds)}</strong></p>${timeChart || html`<p class="subtle">No finished items yet.</p>`}`.text;

  // Throughput: items processed per bucket, by when each batch finished or last moved, over the jobs shown.
  const moved = page.data.filter((j) => j.counts.succeeded + j.counts.failed > 0 && (j.finished_at || j.last_activity_at));
  let tput = null;
  if (moved.length) {
    const times = moved.map((j) => j.finished_at || j.last_activity_at);
    const lo = Math.min(...times), hi = Math.max(...times);
    const span = Math.max(hi - lo, 3600);
    const bucket = span > 14 * 86400 ? 86400 : span > 2 * 86400 ? 21600 : span > 6 * 3600 ? 3600 : 600;
    const counts = new Map();
    for (const j of moved) {
      const at = Math.floor((j.finished_at || j.last_activity_at) / bucket) * bucket;
      counts.set(at, (counts.get(at) || 0) + j.counts.succeeded + j.counts.failed);
    }
    const start = Math.floor(lo / bucket) * bucket, end = Math.floor(hi / bucket) * bucket;
    const points = [];
    for (let at = start; at <= end; at += bucket) points.push([at, counts.get(at) || 0]);
    if (points.length === 1) points.unshift([start - bucket, 0]);
    const label = bucket >= 86400 ? "day" : bucket >= 3600 ? `${bucket / 3600} h` : `${bucket / 60} min`;
    const fmt = (ts) => new Date(ts * 1000).toLocaleString([], bucket >= 86400 ? { month: "short", day: "numeric" } : { hour: "2-digit", minute: "2-digit" });
    tput = lineChart({
      title: `Items processed per ${label}`,
      series: [{ name: `Items per ${label}`, cls: "line-ok", area: "area-ok", swatch: "sw-ok", points }],
      formatX: fmt,
      formatY: (v) => compact(Math.round(v)),
      tableRows: { head: ["From", "Items"], rows: points.map((p) => [fmt(p[0]), num(p[1])]) },
    });
  }
  $("#chart-tput").innerHTML = html`<p class="small">Now <strong>${t.items_per_second ? `${t.items_per_second.toFixed(1)}/s` : "idle"}</strong> (last ${duration(stats.throughput_window_seconds)})</p>${tput || html`<p class="subtle">No processed items yet.</p>`}`.text;

  const costly = page.data.filter((j) => j.cost > 0).slice(0, 30).reverse();
  const costChart = barChart({
    title: "Cost per batch (oldest left)",
    bars: costly.map((j) => ({ label: shortId(j.id).slice(-4), value: j.cost, cls: "bar-warn", title: `${j.description || j.id}: ${money(j.cost)}` })),
    formatY: money,
  });
  $("#chart-cost").innerHTML = html`<p class="small">Total <strong>${money(t.cost)}</strong>${Object.keys(t.usage).length ? html` · ${Object.entries(t.usage).map(([k, v], i) => html`${i ? ", " : ""}${compact(Math.round(v))} ${k}`)}` : ""}</p>${costChart || html`<p class="subtle">No batch reported a cost (handlers add it with ctx.add_usage(cost=...)).</p>`}`.text;

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
