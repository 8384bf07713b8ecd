// Job detail: progress, throughput and ETA with its spread, cost, why it stopped, the chart, error groups, items,
// downloads, timeline and actions, kept live over the job's own event stream.
import {
  $, ACTION_LABEL, api, badge, boot, bytes, compact, copyButton, duration, exact, html, icon, jobActions,
  jobDuration, liveJobs, money, num, percentText, progressBar, query, raw, rate, relative, runJobAction, setupPage,
  showLiveState, timeAgo, toast,
} from "./core.js";
import { lineChart } from "./charts.js";

setupPage();

const PAGE_SIZE = boot.page_size || 50;
const REFRESH_MS = 10000; // the chart's samples and the items page follow a changing job at most this often
let job = boot.job;
const params = new URLSearchParams(location.search);
const items = { page: boot.items, status: params.get("items") || "", cursor: null, open: new Set(), found: null };
let events = [];
let samples = [];
let groups = null; // {data: the largest error groups, more: whether there are others}

const isTerminal = (j) => boot.terminal.includes(j.status);
const processed = (j) => j.counts.succeeded + j.counts.failed;

// -- header, overview ---------------------------------------------------------------------------------------------

function renderHeader() {
  $("#job-status").innerHTML = badge(job.status).text;
  const bits = [html`<span class="handler">${job.handler}</span>`, html`created ${timeAgo(job.created_at)}`];
  if (boot.is_admin) bits.push(html`owner ${job.owner}`);
  if (job.project) bits.push(html`project ${job.project}`);
  if (job.description) bits.unshift(html`<strong>${job.description}</strong>`);
  $("#job-sub").innerHTML = bits.map((b) => b.text).join(" · ");
  const actions = jobActions(job);
  $("#actions").innerHTML = actions
    .map((a) => html`<button type="button" class="btn${a === "cancel" || a === "delete" ? " btn-danger-outline" : a === "resume" ? " btn-primary" : ""}" data-action="${a}">${ACTION_LABEL[a]}</button>`.text)
    .join("");
  document.title = `${job.description || job.id} · ${job.percent.toFixed(0)}% · Batchyard`;
}

/** ETA from the spread of recent rates: remaining items over the fastest and slowest of the last samples. */
function etaRange() {
  if (job.eta_seconds == null) return null;
  const recent = samples.filter((s) => s.at >= Date.now() / 1000 - 300);
  const rates = [];
  for (let i = 1; i < recent.length; i++) {
    const dt = recent[i].at - recent[i - 1].at;
    if (dt > 0) rates.push((recent[i].done - recent[i - 1].done) / dt);
  }
  const positive = rates.filter((r) => r > 0).sort((a, b) => a - b);
  if (positive.length < 3) return { low: null, high: null };
  const remaining = job.counts.queued + job.counts.running;
  const q = (p) => positive[Math.min(positive.length - 1, Math.floor(p * positive.length))];
  return { low: remaining / q(0.9), high: remaining / q(0.1) };
}

function stat(label, value, small = "") {
  return html`<div class="stat"><dt>${label}</dt><dd>${value}${small ? html`<small>${small}</small>` : ""}</dd></div>`;
}

function renderOverview() {
  const c = job.counts;
  $("#big-bar").innerHTML = progressBar(c, { big: true, percent: job.percent }).text; // running items' partial progress too
  $("#big-pct").textContent = percentText(job);
  $("#big-sub").textContent = `${num(c.done)} of ${num(c.total)} items done · ${num(c.queued)} queued · ${num(c.running)} running${c.cancelled ? ` · ${num(c.cancelled)} cancelled` : ""}${c.skipped ? ` · ${num(c.skipped)} skipped` : ""}`;
  const overall = job.duration_seconds ? processed(job) / job.duration_seconds : null;
  let eta = "—", etaNote = "";
  if (job.status === "paused") { eta = "paused"; etaNote = "resume to continue"; }
  else if (!isTerminal(job) && job.workers_alive === 0 && c.queued + c.running > 0) { eta = "no worker"; etaNote = `start one for ${job.handler}`; }
  else if (job.eta_seconds != null) {
    eta = `≈ ${duration(job.eta_seconds)}`;
    const range = etaRange();
    etaNote = range && range.low != null ? `likely ${duration(range.low)} – ${duration(range.high)}` : "rough: little data yet";
  } else if (isTerminal(job)) etaNote = job.finished_at ? `finished ${relative(job.finished_at)}` : "";
  const projected = processed(job) && !isTerminal(job) ? (job.cost / processed(job)) * (c.total - c.cancelled) : null;
  const parts = [
    stat("Succeeded", num(c.succeeded)),
    stat("Failed", num(c.failed), c.failed && processed(job) ? `${((100 * c.failed) / processed(job)).toFixed(1)}% of processed` : ""),
    stat("Throughput", rate(job.items_per_second), isTerminal(job) ? "over the whole run" : `recent · overall ${rate(overall)}`),
    stat("ETA", eta, etaNote),
    stat("Duration", jobDuration(job), job.started_at ? `started ${exact(job.started_at)}` : "not started yet"),
    stat("Avg per item", duration(job.avg_item_seconds)),
  ];
  if (job.cost || Object.keys(job.usage).length) {
    parts.push(stat("Cost", money(job.cost), projected != null ? `projected ${money(projected)}` : "total"));
  }
  if (c.skipped) parts.splice(2, 0, stat("Skipped", num(c.skipped), "by the app (SkipItem)"));
  $("#stats").innerHTML = parts.map((p) => p.text).join("");
  renderReason();
  renderCurrent();
}

function renderReason() {
  const box = $("#reason");
  const last = (type) => [...events].reverse().find((e) => e.type === type);
  let text = null, tone = "info";
  const said = job.status_message;
  if (job.status === "paused" && job.status_reason === "quota_exhausted") {
    const e = last("paused");
    text = `Waiting for quota${e ? ` since ${relative(e.at)}` : ""}: ${said || e?.message || "a budget of its owner's quota is spent"}. Nothing failed and nothing is lost.`;
    tone = "warn";
  } else if (job.status === "paused") {
    const e = last("paused");
    const who = job.status_reason === "paused_by_handler" ? " by the handler" : e?.actor ? ` by ${e.actor}` : "";
    text = `Paused${who}${e ? ` ${relative(e.at)}` : ""}${said || e?.message ? `: ${said || e.message}` : ""}. Running items finish; no new ones start until it is resumed.`;
    tone = "warn";
  } else if (job.status === "failed" || job.status === "expired") {
    const e = last(job.status);
    text = `${job.status === "failed" ? "Failed" : "Expired"}: ${said || job.error?.message || e?.message || "see the timeline"}`;
    tone = "error";
  } else if (job.status === "cancelled" || job.status === "cancelling") {
    const e = last("cancelled") || last("cancelling") || last("cancel");
    text = `Cancelled${e?.actor ? ` by ${e.actor}` : ""}${said || e?.message ? `: ${said || e.message}` : ""}. Items that had finished keep their results.`;
    tone = "warn";
  } else if (!isTerminal(job) && job.workers_alive === 0 && job.counts.queued + job.counts.running > 0) {
    text = `No live worker takes “${job.handler}” items, so nothing is processing this job. Start one: batchyard worker (with the app that registers ${job.handler}).`;
    tone = "warn";
  }
  box.innerHTML = text ? html`<div class="alert alert-${tone} reason" role="note">${text}</div>`.text : "";
}

/** What the running items last reported (ctx.progress): their current step, newest first. */
function renderCurrent() {
  const box = $("#current");
  const current = (!boot.terminal.includes(job.status) && job.current) || [];
  box.hidden = !current.length;
  if (!current.length) return;
  box.innerHTML = html`<h3 class="small subtle" style="margin:.9rem 0 .35rem">Now running</h3><ul class="current">${current.map((c) => {
    const frac = c.total ? Math.min(1, c.done / c.total) : null;
    return html`<li><span class="mono small">${c.key}</span>
      ${frac != null ? html`<span class="bar" role="img" aria-label="${(frac * 100).toFixed(0)}% of this item"><span class="seg seg-ok" style="width:${(frac * 100).toFixed(1)}%"></span></span><span class="small">${num(c.done)} / ${num(c.total)}</span>` : html`<span class="small">${num(c.done)}</span>`}
      <span class="small subtle">${c.message || ""} · ${timeAgo(c.updated_at)}</span></li>`;
  })}</ul>`.text;
}

// -- chart, timeline ---------------------------------------------------------------------------------------------

function renderChart() {
  const node = $("#chart");
  const points = samples.map((s) => [s.at, s.done - s.failed]);
  const failed = samples.map((s) => [s.at, s.failed]);
  if (job.started_at && samples.length) {
    points.unshift([job.started_at, 0]);
    failed.unshift([job.started_at, 0]);
  }
  if (isTerminal(job) && job.finished_at && samples.length) {
    points.push([job.finished_at, job.counts.succeeded]);
    failed.push([job.finished_at, job.counts.failed]);
  }
  const time = (t) => new Date(t * 1000).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit", second: "2-digit" });
  const chart = lineChart({
    title: `Items processed over time: ${num(job.counts.succeeded)} succeeded, ${num(job.counts.failed)} failed`,
    series: [
      { name: "Succeeded", cls: "line-ok", area: "area-ok", swatch: "sw-ok", points },
      { name: "Failed", cls: "line-bad", swatch: "sw-bad", points: failed },
    ],
    formatX: time,
    formatY: (v) => compact(Math.round(v)),
    tableRows: { head: ["Time", "Succeeded", "Failed"], rows: points.map((p, i) => [time(p[0]), num(p[1]), num(failed[i][1])]) },
  });
  node.innerHTML = chart
    ? chart.text
    : html`<p class="subtle">${job.started_at ? "Samples are taken every few seconds while the job runs; the chart appears with the second one." : "The chart starts when the first items are claimed."}</p>`.text;
}

const EVENT_WORDS = {
  created: "Created", started: "Started", paused: "Paused", resumed: "Resumed", cancelling: "Cancelling",
  cancelled: "Cancelled", finalizing: "Finalizing", completed: "Completed", failed: "Failed", expired: "Expired",
  retried: "Retried failed items", deleted: "Deleted",
};
function renderTimeline() {
  const list = $("#timeline");
  if (!events.length) {
    list.innerHTML = html`<li class="subtle">Nothing yet.</li>`.text;
    return;
  }
  const rows = events.map((e) => html`<li><span class="dot" aria-hidden="true"></span>
    <div class="what">${EVENT_WORDS[e.type] || e.type}${e.actor ? html` <span class="subtle small">by ${e.actor}</span>` : ""}</div>
    ${e.message ? html`<div class="small">${e.message}</div>` : ""}
    <div class="when">${timeAgo(e.at)} · ${exact(e.at)}</div></li>`);
  if (job.started_at) {
    const end = job.finished_at;
    rows.push(html`<li><span class="dot" aria-hidden="true"></span><div class="what">Duration</div><div class="when">${end ? duration(end - job.started_at) : raw(`${jobDuration(job).text} so far`)}</div></li>`);
  }
  list.innerHTML = rows.map((r) => r.text).join("");
}

let lastEventId = 0;
async function loadEvents() {
  try {
    const out = await api(`/api/v1/jobs/${job.id}/events${query({ after: lastEventId || null })}`);
    if (out.data.length) {
      events = events.concat(out.data);
      lastEventId = out.data.at(-1).id;
    }
    renderTimeline();
    renderReason();
  } catch (error) {
    $("#timeline").innerHTML = html`<li class="bad-text">Could not load the timeline: ${error.message}</li>`.text;
  }
}
async function loadSamples() {
  try {
    samples = (await api(`/api/v1/jobs/${job.id}/progress`)).data;
    renderChart();
    renderOverview();
  } catch (error) {
    $("#chart").innerHTML = html`<p class="bad-text">Could not load progress samples: ${error.message}</p>`.text;
  }
}

// -- downloads, details ------------------------------------------------------------------------------------------

const FILES = [
  ["results.jsonl", "Results (JSONL)", "succeeded items with their results"],
  ["results.csv", "Results (CSV)", "every finished item as a row"],
  ["errors.jsonl", "Errors (JSONL)", "failed items with their last error"],
  ["artifacts.zip", "Artifacts (ZIP)", "files the handler saved"],
];
function renderDownloads() {
  const written = job.result_files || {};
  const partial = !job.finished;
  const links = FILES.filter(([name]) => name !== "artifacts.zip" || written[name]).map(([name, label, what]) => {
    const info = written[name];
    const meta = info ? `${info.rows != null ? `${num(info.rows)} rows · ` : ""}${bytes(info.bytes)}` : partial ? "so far" : "";
    return html`<a class="btn" href="/api/v1/jobs/${job.id}/${name}" download title="${what}">${icon("download")}${label}${meta ? html` <span class="subtle small">${meta}</span>` : ""}</a>`;
  });
  $("#downloads").innerHTML = html`<div class="downloads">${links}</div>${partial ? html`<p class="help" style="margin-top:.5rem">The job is not finished: downloads hold the items finished so far.</p>` : ""}`.text;
}

function jsonBlock(value, label) {
  const text = JSON.stringify(value, null, 2);
  return html`<div class="props-json"><pre class="block">${text}</pre>${copyButton(text, `Copy ${label}`)}</div>`;
}
function fileLink(id) {
  return id ? html`<a class="mono" href="/api/v1/files/${id}/content" download>${id}</a>` : "—";
}

function renderProps() {
  const s = job.settings;
  const openai = job.handler === boot.openai_handler;
  const rows = openai
    ? [
        ["OpenAI batch", html`<span class="mono">batch_${job.id.replace(/^job_/, "")}</span>`],
        ["Endpoint", html`<span class="mono">${job.params.endpoint || "—"}</span>`],
        ["Model", job.params.model || "—"],
        ["Input file", fileLink(job.params.input_file_id)],
        ["Output file", fileLink(job.params.output_file_id)],
        ["Error file", fileLink(job.params.error_file_id)],
      ]
    : [];
  rows.push(
    ["Handler", html`<span class="handler">${job.handler}</span>`],
    ["Source", job.source || "inline items"],
    ["Priority", String(job.priority)],
    ["Tags", job.tags.length ? html`<span class="tags">${job.tags.map((t) => html`<span class="tag">${t}</span>`)}</span>` : "—"],
    ["Max attempts", String(s.max_attempts)],
    ["Timeout", s.timeout_seconds ? duration(s.timeout_seconds) : "none"],
    ["Concurrency", s.concurrency ? num(s.concurrency) : "handler default"],
    ["Fail when", s.max_failures != null ? `more than ${num(s.max_failures)} failed` : s.max_failure_rate != null ? `over ${(s.max_failure_rate * 100).toFixed(1)}% failed` : "never (items fail alone)"],
    ["Created", exact(job.created_at)],
  );
  if (job.scheduled_at) rows.push(["Scheduled", exact(job.scheduled_at)]);
  if (job.expires_at) rows.push(["Expires", exact(job.expires_at)]);
  if (Object.keys(job.usage).length) rows.push(["Usage", html`${Object.entries(job.usage).map(([k, v]) => html`<div>${k}: ${num(Math.round(v * 100) / 100)}</div>`)}`]);
  if (Object.keys(job.params).length && !openai) rows.push(["Params", jsonBlock(job.params, "params")]);
  if (Object.keys(job.metadata).length) rows.push(["Metadata", jsonBlock(job.metadata, "metadata")]);
  $("#props").innerHTML = rows.map(([k, v]) => html`<dt>${k}</dt><dd>${v}</dd>`.text).join("");
}

// -- error groups ------------------------------------------------------------------------------------------------

async function loadGroups() {
  if (!job.counts.failed) {
    groups = { data: [] };
    renderGroups();
    return;
  }
  try {
    const page = await api(`/api/v1/jobs/${job.id}/error-groups?limit=20&samples=3`);
    groups = { data: page.data, more: page.has_more };
  } catch (error) {
    $("#groups").innerHTML = html`<p class="bad-text">Could not load error groups: ${error.message}</p>`.text;
    return;
  }
  renderGroups();
}

const groupTitle = (g) => `${g.type || "Error"}${g.code ? ` [${g.code}]` : ""}: ${g.message}`;

function renderGroups() {
  const node = $("#groups");
  $("#groups-note").textContent = groups.more ? `the ${num(groups.data.length)} largest groups` : "";
  if (!groups.data.length) {
    node.innerHTML = html`<p class="subtle">${job.counts.failed ? "No failed items right now." : "No failures: every error would be grouped here by its signature."}</p>`.text;
    return;
  }
  const canRetry = boot.can_write && (boot.actions[job.status] || []).includes("retry");
  node.innerHTML = html`<ul class="groups">${groups.data.map((g, i) => {
    const sample = g.samples.map((item) => item.key);
    const exportLink = html`<a class="btn btn-small" href="/api/v1/jobs/${job.id}/error-groups/${g.signature}/items.jsonl" download>${icon("download")}Export this group</a>`;
    return html`<li class="group">
      <div class="group-head"><span class="group-count">${num(g.count)}</span><span class="group-sig">${groupTitle(g)}</span></div>
      <div class="group-meta">first ${timeAgo(g.first_seen)} · last ${timeAgo(g.last_seen)}${sample.length ? html` · e.g. ${sample.map((k, j) => html`${j ? ", " : ""}<a href="#" data-item-key="${k}" class="mono">${k}</a>`)}` : ""}</div>
      <div class="group-actions">
        ${canRetry ? html`<button type="button" class="btn btn-small" data-group-retry="${i}">Retry this group</button>` : ""}
        ${exportLink}
      </div></li>`;
  })}</ul>`.text;
}

$("#groups").addEventListener("click", async (event) => {
  const keyLink = event.target.closest("[data-item-key]");
  if (keyLink) {
    event.preventDefault();
    findItem(keyLink.dataset.itemKey);
    return;
  }
  const retryButton = event.target.closest("[data-group-retry]");
  if (retryButton) {
    const g = groups.data[Number(retryButton.dataset.groupRetry)];
    retryButton.disabled = true;
    try {
      const out = await api(`/api/v1/jobs/${job.id}/retry`, { method: "POST", body: { error_group: g.signature } });
      toast(`${num(out.retried)} item${out.retried === 1 ? "" : "s"} of this group queued again.`, "ok");
      job = out;
      renderAll();
      refreshSoon();
      loadGroups();
    } catch (error) {
      toast(`Could not retry the group: ${error.message}`, "bad");
      retryButton.disabled = false;
    }
  }
});

// -- items -------------------------------------------------------------------------------------------------------

function resultText(item) {
  if (item.error) return html`<div class="error-line">${item.error.code ? html`<strong>${item.error.code}</strong> · ` : ""}${item.error.type ? `${item.error.type}: ` : ""}${item.error.message || ""}</div>`;
  if (item.result !== null && item.result !== undefined) {
    const text = JSON.stringify(item.result);
    return html`<span class="mono small" title="${text.slice(0, 500)}">${text.length > 80 ? `${text.slice(0, 80)}…` : text}</span>`;
  }
  return raw('<span class="muted">—</span>');
}

function itemRow(item) {
  const open = items.open.has(item.key);
  return html`<tr data-key="${item.key}">
    <td class="num" data-label="#">${num(item.seq + 1)}</td>
    <td data-label="Key"><span class="mono nowrap">${item.key}</span></td>
    <td data-label="Status">${badge(item.status)}</td>
    <td class="num" data-label="Attempts">${num(item.attempts)}${item.rescues ? html` <span class="subtle small" title="times a worker died while running it">+${item.rescues} rescued</span>` : ""}</td>
    <td class="num" data-label="Time">${duration(item.duration_seconds)}</td>
    <td class="wide" data-label="${item.error ? "Error" : "Result"}">${resultText(item)}</td>
    <td class="col-actions"><button type="button" class="btn btn-small" data-item="${item.key}" aria-expanded="${open}">${open ? "Hide" : "Details"}</button></td>
  </tr>${open ? html`<tr class="item-detail" data-detail="${item.key}"><td colspan="7" class="wide" id="detail-${item.key}"><p class="subtle">Loading…</p></td></tr>` : ""}`;
}

function renderItems() {
  const data = items.found ? [items.found] : items.page.data;
  $("#item-rows").innerHTML = data.map((i) => itemRow(i).text).join("");
  const empty = $("#items-empty");
  empty.hidden = data.length > 0;
  if (!data.length) {
    empty.innerHTML = html`<p>${items.status ? `No ${items.status} items${items.cursor ? " on this page" : ""}.` : "No items."}</p>${items.status ? html`<p><button type="button" class="btn" id="items-all">Show all items</button></p>` : ""}`.text;
    $("#items-all")?.addEventListener("click", () => { $("#item-status").value = ""; loadItems(""); });
  }
  const pager = [];
  if (items.found) pager.push(html`<button type="button" class="btn" data-page="clear">← All items</button>`);
  else {
    if (items.cursor) pager.push(html`<button type="button" class="btn" data-page="first">← First page</button>`);
    if (items.page.has_more) pager.push(html`<button type="button" class="btn" data-page="next">Next page →</button>`);
  }
  const shown = items.found ? "1 item found" : `${num(items.page.data.length)} item${items.page.data.length === 1 ? "" : "s"} shown`;
  $("#items-pager").innerHTML = html`<span class="subtle">${shown} of ${num(job.counts.total)}</span><span class="spacer"></span>${pager}`.text;
  for (const key of items.open) loadItemDetail(key);
}

async function loadItems(status = items.status, cursor = null) {
  items.status = status;
  items.cursor = cursor;
  items.found = null;
  const url = new URL(location.href);
  if (status) url.searchParams.set("items", status);
  else url.searchParams.delete("items");
  history.replaceState(null, "", url);
  $("#items-wrap").classList.add("loading");
  try {
    items.page = await api(`/api/v1/jobs/${job.id}/items${query({ status: status || null, limit: PAGE_SIZE, cursor })}`);
  } catch (error) {
    $("#item-rows").innerHTML = "";
    $("#items-empty").hidden = false;
    $("#items-empty").innerHTML = html`<p class="bad-text">Could not load items: ${error.message}</p>`.text;
    return;
  } finally {
    $("#items-wrap").classList.remove("loading");
  }
  renderItems();
}

async function findItem(key) {
  if (!key) return;
  try {
    items.found = await api(`/api/v1/jobs/${job.id}/items/${encodeURIComponent(key)}`);
    items.open.add(key);
  } catch (error) {
    toast(error.status === 404 ? `No item with key “${key}” in this job` : error.message, "bad");
    return;
  }
  renderItems();
  $("#item-rows").scrollIntoView({ block: "nearest" });
}

async function loadItemDetail(key) {
  const cell = document.getElementById(`detail-${key}`);
  if (!cell) return;
  try {
    const item = await api(`/api/v1/jobs/${job.id}/items/${encodeURIComponent(key)}`);
    const part = (label, value) => {
      const text = typeof value === "string" ? value : JSON.stringify(value, null, 2);
      return html`<div><div class="panel-head"><h3>${label}</h3>${copyButton(text, `Copy ${label.toLowerCase()}`)}</div><pre class="block">${text}</pre></div>`;
    };
    const parts = [part("Payload", item.payload)];
    if (item.result !== null && item.result !== undefined) parts.push(part("Result", item.result));
    if (item.error) {
      const e = item.error;
      parts.push(html`<div><h3>Error</h3><dl class="props"><dt>Type</dt><dd>${e.type || "—"}</dd><dt>Code</dt><dd>${e.code || "—"}</dd><dt>Message</dt><dd><pre class="block wrap">${e.message || ""}</pre></dd><dt>Attempt</dt><dd>${e.attempt ?? item.attempts} of ${job.settings.max_attempts}${e.retryable === false ? " (not retryable)" : ""}</dd></dl></div>`);
      if (e.traceback) parts.push(html`<details><summary>Traceback</summary>${part("Traceback", e.traceback)}</details>`);
    }
    cell.innerHTML = html`<div class="grid-halves">${parts}</div>`.text;
  } catch (error) {
    cell.innerHTML = html`<p class="bad-text">Could not load the item: ${error.message}</p>`.text;
  }
}

$("#item-rows").addEventListener("click", (event) => {
  const button = event.target.closest("[data-item]");
  if (!button) return;
  const key = button.dataset.item;
  if (items.open.has(key)) items.open.delete(key);
  else items.open.add(key);
  renderItems();
  $(`[data-item="${CSS.escape(key)}"]`)?.focus();
});
$("#items-pager").addEventListener("click", (event) => {
  const button = event.target.closest("[data-page]");
  if (!button) return;
  items.open.clear();
  if (button.dataset.page === "next") loadItems(items.status, items.page.next_cursor);
  else loadItems(items.status, null);
});
$("#item-status").addEventListener("change", (event) => { items.open.clear(); loadItems(event.target.value); });
$("#items-tools").addEventListener("submit", (event) => {
  event.preventDefault();
  const key = $("#item-key").value.trim();
  if (key) findItem(key);
  else loadItems(items.status);
});

// -- actions -----------------------------------------------------------------------------------------------------

$("#actions").addEventListener("click", async (event) => {
  const button = event.target.closest("[data-action]");
  if (!button) return;
  const action = button.dataset.action;
  button.disabled = true;
  const result = await runJobAction(job, action);
  button.disabled = false;
  if (result === null) {
    setTimeout(() => location.assign("/"), 800);
    return;
  }
  if (result) {
    job = result;
    renderAll();
    refreshSoon();
    if (action === "retry") loadGroups();
  }
});

// -- live --------------------------------------------------------------------------------------------------------

function renderAll() {
  renderHeader();
  renderOverview();
  renderDownloads();
  renderProps();
}

let refreshTimer = null;
let refreshDue = 0;
let seenStatus = job.status;
/** After the job changed: the timeline at once when its status moved (a new event), the chart, error groups
 * and the first items page at most every REFRESH_MS. The counters themselves come with the pushed job. */
function refreshSoon() {
  if (job.status !== seenStatus) {
    seenStatus = job.status;
    loadEvents();
    loadSamples();
  }
  if (refreshTimer) return;
  refreshTimer = setTimeout(async () => {
    refreshTimer = null;
    refreshDue = Date.now() + REFRESH_MS;
    const tasks = [loadSamples()];
    if (job.counts.failed !== hadFailures) {
      hadFailures = job.counts.failed;
      tasks.push(loadGroups());
    }
    if (!items.found && !items.open.size && !items.cursor) tasks.push(loadItems(items.status, null));
    await Promise.all(tasks);
  }, Math.max(0, refreshDue - Date.now()));
}

let hadFailures = job.counts.failed;
liveJobs({
  jobId: job.id,
  onJob: (fresh) => {
    job = fresh;
    renderAll();
    refreshSoon();
  },
  onState: showLiveState,
  onResync: async () => {
    try { job = await api(`/api/v1/jobs/${job.id}`); renderAll(); refreshSoon(); } catch { /* the stream retries */ }
  },
});

// -- start -------------------------------------------------------------------------------------------------------

$("#item-status").value = items.status;
renderAll();
if (items.status) loadItems(items.status);
else renderItems();
performance.mark("batchyard:rendered"); // progress, counters and the first items are on screen
loadEvents();
loadSamples();
loadGroups();
