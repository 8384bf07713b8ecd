// Jobs (home): stats cards, filter tabs and search in the URL, the live table, row and bulk actions.
import {
  $, $$, ACTION_LABEL, api, badge, boot, compact, confirmDialog, copyButton, html, jobActions, jobDuration, jobEta,
  liveJobs, num, percentText, progressBar, query, raw, runJobAction, setupPage, shortId, showLiveState, timeAgo,
  toast,
} from "./core.js";

setupPage();

const PAGE_SIZE = boot.page_size || 50;
const STATS_EVERY_MS = 2000;
const state = {
  filters: { ...boot.filters },
  cursor: boot.cursor || null,
  page: boot.jobs,
  selected: new Set(),
  allMatching: null, // {count, ids} once "all N matching" was chosen
  error: null,
};
const rows = $("#job-rows");
const wrap = $("#jobs-wrap");

// -- rendering ---------------------------------------------------------------------------------------------------

// Why a paused job is paused, under its badge (the full message is the note's title and on the job's page).
const REASON = { quota_exhausted: "waiting for quota", paused_by_handler: "by the handler", paused_by_user: "by a person" };

function row(job) {
  const checked = state.selected.has(job.id) ? " checked" : "";
  // Two buttons at most in a row, the likeliest first (every action is on the job's page).
  const order = ["resume", "pause", "cancel", "retry", "delete"];
  const actions = jobActions(job).sort((a, b) => order.indexOf(a) - order.indexOf(b));
  const processed = job.counts.done;
  return html`<tr data-id="${job.id}" class="status-${job.status}">
    ${boot.can_write ? html`<td class="col-select"><input type="checkbox" class="select-job" value="${job.id}" aria-label="Select job ${job.id}"${raw(checked)}></td>` : ""}
    <td class="col-job" data-label="Job">
      <div class="job-id"><a class="mono" href="/jobs/${job.id}" title="${job.id}">${shortId(job.id)}</a>${copyButton(job.id, `Copy job id ${job.id}`)}</div>
      ${job.description ? html`<div class="job-desc" title="${job.description}">${job.description}</div>` : ""}
      ${job.tags.length ? html`<div class="tags">${job.tags.slice(0, 4).map((t) => html`<span class="tag">${t}</span>`)}</div>` : ""}
    </td>
    <td data-label="Handler"><span class="handler">${job.handler}</span>${job.handler === boot.openai_handler ? html`<div class="small subtle">OpenAI batch</div>` : ""}</td>
    <td data-label="Status">${badge(job.status)}${job.status === "paused" && REASON[job.status_reason] ? html`<div class="small subtle reason-note" title="${job.status_message || ""}">${REASON[job.status_reason]}</div>` : ""}</td>
    <td class="col-progress" data-label="Progress">
      <div class="progress-cell">${progressBar(job.counts, { percent: job.percent })}<span class="pct">${percentText(job)}</span></div>
      <div class="subtle small">${compact(processed)} / ${compact(job.counts.total)} done</div>
    </td>
    <td class="num counts" data-label="Succeeded · failed"><div><span class="visually-hidden">Succeeded </span>${num(job.counts.succeeded)}</div><div class="${job.counts.failed ? "bad-text" : "subtle"}">${num(job.counts.failed)}<span class="visually-hidden"> failed</span></div></td>
    <td class="num" data-label="Duration">${jobDuration(job)}</td>
    <td class="num" data-label="ETA">${jobEta(job)}</td>
    <td class="num col-created" data-label="Created">${timeAgo(job.created_at)}</td>
    ${boot.is_admin ? html`<td data-label="Owner"><a href="${linkFor({ ...state.filters, owner: job.owner })}">${job.owner}</a></td>` : ""}
    ${boot.can_write ? html`<td class="col-actions">${actions.slice(0, 2).map((a) => html`<button type="button" class="btn btn-small${a === "cancel" || a === "delete" ? " btn-danger-outline" : ""}" data-action="${a}" data-job="${job.id}">${ACTION_LABEL[a]}</button>`)}</td>` : ""}
  </tr>`;
}

function isFiltered() {
  const f = state.filters;
  return f.tab !== "all" || f.q || f.owner || f.handler;
}

function render() {
  wrap.setAttribute("aria-busy", "false");
  wrap.classList.remove("loading");
  const empty = $("#jobs-empty");
  if (state.error) {
    rows.innerHTML = "";
    empty.hidden = false;
    empty.innerHTML = html`<h2>Could not load jobs</h2><p>${state.error}</p><p><button type="button" class="btn" id="retry-load">Try again</button></p>`.text;
    $("#retry-load").addEventListener("click", () => load());
    $("#pager").innerHTML = "";
    return;
  }
  const jobs = state.page.data;
  rows.innerHTML = jobs.map((job) => row(job).text).join("");
  empty.hidden = jobs.length > 0;
  if (!jobs.length) {
    empty.innerHTML = isFiltered()
      ? html`<h2>No jobs match</h2><p>Nothing ${state.filters.tab !== "all" ? `in ${state.filters.tab}` : ""} ${state.filters.q ? `matches “${state.filters.q}”` : "here"}.</p><p><a class="btn" href="/" data-nav="clear">Clear filters</a></p>`.text
      : html`<h2>No jobs yet</h2><p>Submit a JSONL or CSV file and watch it run here, live.</p><p><a class="btn btn-primary" href="/new">New batch</a></p><p class="subtle">Or from a terminal: <code>batchyard submit items.jsonl --handler echo</code></p>`.text;
  }
  renderPager();
  renderBulk();
  const f = state.filters;
  $("#export-csv").href = `/api/v1/jobs.csv${query({ status: boot.tabs[f.tab], q: f.q, handler: f.handler, owner: boot.is_admin ? f.owner : null, sort: f.sort })}`;
}

function renderPager() {
  const pager = $("#pager");
  const parts = [];
  if (state.cursor) parts.push(html`<a class="btn" href="${linkFor(state.filters)}" data-nav="first">← First page</a>`);
  if (state.page.has_more) parts.push(html`<a class="btn" href="${linkFor(state.filters, state.page.next_cursor)}" data-nav="next">Next page →</a>`);
  const count = state.page.data.length;
  const info = count ? html`<span class="subtle">Showing ${num(count)} job${count === 1 ? "" : "s"}${state.page.has_more ? ", more on the next page" : ""}</span>` : "";
  pager.innerHTML = html`${info}<span class="spacer"></span>${parts}`.text;
}

function linkFor(filters, cursor = null) {
  const params = { tab: filters.tab !== "all" ? filters.tab : null, q: filters.q, owner: filters.owner, handler: filters.handler };
  if (filters.sort && filters.sort !== "-created_at") params.sort = filters.sort;
  if (cursor) params.cursor = cursor;
  return `/${query(params)}`;
}

// -- stats cards -------------------------------------------------------------------------------------------------

let statsTimer = null;
let statsDue = 0;
async function loadStats() {
  statsDue = Date.now() + STATS_EVERY_MS;
  try {
    const stats = await api(`/api/v1/stats${query({ owner: boot.is_admin ? state.filters.owner : null })}`);
    const jobs = stats.totals.jobs;
    const values = { ...jobs, failed: jobs.failed + jobs.expired, cancelled: jobs.cancelled + jobs.cancelling };
    for (const node of $$("[data-count]")) node.textContent = num(values[node.dataset.count] ?? 0);
  } catch (error) {
    for (const node of $$("[data-count]")) node.textContent = "—";
    if (error.status !== 401) toast(`Could not load the counts: ${error.message}`, "bad");
  }
}
/** Refresh the cards after changes, at most once every two seconds, however many jobs change. */
function scheduleStats() {
  if (statsTimer) return;
  statsTimer = setTimeout(() => { statsTimer = null; loadStats(); }, Math.max(0, statsDue - Date.now()));
}

// -- loading pages -----------------------------------------------------------------------------------------------

let loading = null;
async function load() {
  loading?.abort();
  loading = new AbortController();
  wrap.setAttribute("aria-busy", "true");
  wrap.classList.add("loading");
  const f = state.filters;
  const params = { status: boot.tabs[f.tab] || [], q: f.q, owner: boot.is_admin ? f.owner : null, handler: f.handler, sort: f.sort, limit: PAGE_SIZE, cursor: state.cursor };
  try {
    state.page = await api(`/api/v1/jobs${query(params)}`, { signal: loading.signal });
    state.error = null;
  } catch (error) {
    if (error.name === "AbortError") return;
    state.error = error.message;
  }
  render();
}

function navigate(filters, cursor = null) {
  state.filters = { ...filters };
  state.cursor = cursor;
  state.selected.clear();
  state.allMatching = null;
  history.pushState({ filters: state.filters, cursor }, "", linkFor(state.filters, cursor));
  syncControls();
  load();
  loadStats();
}

function syncControls() {
  for (const tab of $$("[data-tab]")) {
    if (tab.dataset.tab === state.filters.tab) tab.setAttribute("aria-current", "page");
    else tab.removeAttribute("aria-current");
  }
  $("#filters [name=tab]").value = state.filters.tab;
  $("#q").value = state.filters.q || "";
  if ($("#owner")) $("#owner").value = state.filters.owner || "";
}

window.addEventListener("popstate", (event) => {
  const s = event.state || { filters: { ...boot.filters }, cursor: boot.cursor };
  state.filters = s.filters;
  state.cursor = s.cursor;
  syncControls();
  load();
  loadStats();
});

for (const tab of $$("[data-tab]")) {
  tab.addEventListener("click", (event) => {
    event.preventDefault();
    navigate({ ...state.filters, tab: tab.dataset.tab });
  });
}
$("#filters").addEventListener("submit", (event) => {
  event.preventDefault();
  const q = $("#q").value.trim();
  const owner = $("#owner")?.value.trim() || null;
  navigate({ ...state.filters, q: q || null, owner });
});
$("#q").addEventListener("search", () => { if (!$("#q").value && state.filters.q) navigate({ ...state.filters, q: null }); });
document.addEventListener("click", (event) => {
  const link = event.target.closest("a[data-nav]");
  if (!link) return;
  event.preventDefault();
  if (link.dataset.nav === "clear") navigate({ tab: "all", q: null, owner: null, handler: null, sort: "-created_at" });
  else if (link.dataset.nav === "first") navigate(state.filters);
  else navigate(state.filters, state.page.next_cursor);
  if (link.dataset.nav !== "clear") $("#main").focus();
});

// -- live ------------------------------------------------------------------------------------------------------

function matches(job) {
  const f = state.filters;
  const statuses = boot.tabs[f.tab] || [];
  if (statuses.length && !statuses.includes(job.status)) return false;
  if (f.handler && job.handler !== f.handler) return false;
  if (f.owner && job.owner !== f.owner) return false;
  return !f.q && !state.cursor && (f.sort || "-created_at") === "-created_at";
}

function onJob(job) {
  scheduleStats();
  const index = state.page.data.findIndex((j) => j.id === job.id);
  if (index >= 0) {
    state.page.data[index] = job;
    const old = rows.querySelector(`tr[data-id="${CSS.escape(job.id)}"]`);
    if (old) {
      const focused = document.activeElement && old.contains(document.activeElement) ? document.activeElement.dataset.action || "link" : null;
      old.outerHTML = row(job).text;
      if (focused) {
        const fresh = rows.querySelector(`tr[data-id="${CSS.escape(job.id)}"]`);
        (fresh.querySelector(`[data-action="${focused}"]`) || fresh.querySelector("a"))?.focus();
      }
    }
  } else if (matches(job) && !(state.page.data.length && job.created_at < state.page.data[0].created_at)) {
    state.page.data.unshift(job);
    if (state.page.data.length > PAGE_SIZE) {
      state.page.data.pop();
      state.page.has_more = true;
    }
    render();
  }
}

liveJobs({ onJob, onState: showLiveState, onResync: () => { load(); loadStats(); } });

// -- actions ---------------------------------------------------------------------------------------------------

rows.addEventListener("click", async (event) => {
  const button = event.target.closest("[data-action]");
  if (!button) return;
  const job = state.page.data.find((j) => j.id === button.dataset.job);
  if (!job) return;
  button.disabled = true;
  const result = await runJobAction(job, button.dataset.action);
  button.disabled = false;
  if (result === null) {
    state.page.data = state.page.data.filter((j) => j.id !== job.id);
    state.selected.delete(job.id);
    render();
  } else if (result) onJob(result);
  scheduleStats();
});

rows.addEventListener("change", (event) => {
  const box = event.target.closest(".select-job");
  if (!box) return;
  if (box.checked) state.selected.add(box.value);
  else state.selected.delete(box.value);
  state.allMatching = null;
  renderBulk();
});
$("#select-page")?.addEventListener("change", (event) => {
  for (const job of state.page.data) {
    if (event.target.checked) state.selected.add(job.id);
    else state.selected.delete(job.id);
  }
  state.allMatching = null;
  for (const box of $$(".select-job")) box.checked = event.target.checked;
  renderBulk();
});
$("#bulk-clear")?.addEventListener("click", () => {
  state.selected.clear();
  state.allMatching = null;
  for (const box of $$(".select-job")) box.checked = false;
  if ($("#select-page")) $("#select-page").checked = false;
  renderBulk();
});

function renderBulk() {
  const bar = $("#bulkbar");
  if (!boot.can_write || !bar) return;
  const n = state.allMatching ? state.allMatching.count : state.selected.size;
  bar.hidden = n === 0;
  $("#bulk-count").textContent = state.allMatching
    ? `All ${num(n)} jobs matching this filter selected`
    : `${num(n)} job${n === 1 ? "" : "s"} selected`;
  const all = $("#bulk-all");
  const pageAll = state.page.data.length > 0 && state.page.data.every((j) => state.selected.has(j.id));
  all.hidden = !(pageAll && (state.page.has_more || state.cursor) && !state.allMatching);
  all.textContent = "Select all jobs matching this filter";
  const pageBox = $("#select-page");
  if (pageBox) {
    pageBox.checked = pageAll;
    pageBox.indeterminate = !pageAll && state.page.data.some((j) => state.selected.has(j.id));
  }
}

const BULK_CHUNK = 100;

/** The current view's filters as the bulk endpoint takes them. */
function currentFilter() {
  const f = state.filters;
  const filter = { status: boot.tabs[f.tab]?.length ? boot.tabs[f.tab] : null, q: f.q, handler: f.handler, owner: boot.is_admin ? f.owner : null };
  return Object.fromEntries(Object.entries(filter).filter(([, v]) => v));
}

$("#bulk-all")?.addEventListener("click", async () => {
  const all = $("#bulk-all");
  all.disabled = true;
  all.textContent = "Counting…";
  try {
    const count = await api("/api/v1/jobs/bulk", { method: "POST", body: { action: "cancel", filter: currentFilter(), dry_run: true } });
    state.allMatching = { count: count.matched, filter: currentFilter() };
  } catch (error) {
    toast(`Could not count the matching jobs: ${error.message}`, "bad");
  }
  all.disabled = false;
  renderBulk();
});

const BULK_WORDS = {
  cancel: { title: "Cancel", confirm: "Cancel jobs", keep: "Keep running", done: "cancelled", none: "none of them can be cancelled (they are finished)" },
  retry: { title: "Retry failed items of", confirm: "Retry failed", keep: "Not now", done: "queued again", none: "none of them has failed items" },
};

/** Apply the action to the selection (ids) or to every job matching the filter, after a dry-run count. */
async function bulk(action) {
  const words = BULK_WORDS[action];
  const target = state.allMatching ? { filter: state.allMatching.filter } : { ids: [...state.selected] };
  let counted;
  try {
    counted = await api("/api/v1/jobs/bulk", { method: "POST", body: { action, ...target, dry_run: true } });
  } catch (error) {
    toast(`Could not count the jobs: ${error.message}`, "bad");
    return;
  }
  if (!counted.affected) {
    toast(`${num(counted.matched)} job${counted.matched === 1 ? "" : "s"} selected, but ${words.none}.`, "info");
    return;
  }
  const others = counted.matched - counted.affected;
  const ok = await confirmDialog({
    title: `${words.title} ${num(counted.affected)} job${counted.affected === 1 ? "" : "s"}?`,
    body: (action === "cancel"
      ? "Queued items will not run and running ones are told to stop; finished results are kept."
      : "The failed items of each job are queued again with fresh attempts.") + (others ? ` ${num(others)} other selected job${others === 1 ? "" : "s"} ${others === 1 ? "is" : "are"} left as they are.` : ""),
    confirm: words.confirm,
    keep: words.keep,
    danger: action === "cancel",
  });
  if (!ok) return;
  let done = 0, refused = 0;
  try {
    if (target.filter) {
      let out;
      do {
        out = await api("/api/v1/jobs/bulk", { method: "POST", body: { action, filter: target.filter } });
        done += out.affected;
      } while (out.remaining > 0 && out.affected > 0);
    } else {
      for (let i = 0; i < target.ids.length; i += BULK_CHUNK) {
        const out = await api("/api/v1/jobs/bulk", { method: "POST", body: { action, ids: target.ids.slice(i, i + BULK_CHUNK) } });
        for (const r of out.results) r.ok ? done++ : refused++;
      }
    }
    toast(`${num(done)} job${done === 1 ? "" : "s"} ${words.done}${refused ? `; ${num(refused)} could not be` : ""}.`, "ok");
  } catch (error) {
    toast(`Stopped after ${num(done)} jobs: ${error.message}`, "bad");
  }
  state.selected.clear();
  state.allMatching = null;
  load();
  loadStats();
}
for (const button of $$("[data-bulk]")) button.addEventListener("click", () => bulk(button.dataset.bulk));

// -- start -------------------------------------------------------------------------------------------------------

history.replaceState({ filters: state.filters, cursor: state.cursor }, "", location.href);
render();
performance.mark("batchyard:rendered"); // the table is on screen (bench/dashboard.py reads this)
loadStats();
