// Shared by every page: the boot data, the API with its CSRF token, human formatting, status badges, toasts,
// the confirm dialog, the live job stream, and the clock that ticks durations. No dependencies.

export const boot = JSON.parse(document.getElementById("boot")?.textContent || "{}");
const csrf = document.querySelector('meta[name="csrf-token"]')?.content || "";

// -- HTML -----------------------------------------------------------------------------------------------------

const ESCAPES = { "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" };
export const esc = (value) => String(value ?? "").replace(/[&<>"']/g, (c) => ESCAPES[c]);

class Safe {
  constructor(text) { this.text = text; }
  toString() { return this.text; }
}
/** Mark already-built markup as safe to interpolate into html``. */
export const raw = (text) => new Safe(text);
/** A tagged template that escapes every interpolated value unless it is raw() or an array of those. */
export function html(strings, ...values) {
  let out = strings[0];
  values.forEach((value, i) => {
    if (Array.isArray(value)) out += value.map((v) => (v instanceof Safe ? v.text : esc(v))).join("");
    else out += value instanceof Safe ? value.text : esc(value);
    out += strings[i + 1];
  });
  return new Safe(out);
}
export const $ = (selector, root = document) => root.querySelector(selector);
export const $$ = (selector, root = document) => Array.from(root.querySelectorAll(selector));

// -- formatting ----------------------------------------------------------------------------------------------

const NUMBER = new Intl.NumberFormat("en-US");
const COMPACT = new Intl.NumberFormat("en-US", { notation: "compact", maximumFractionDigits: 1 });
export const num = (n) => (n == null ? "—" : NUMBER.format(n));
export const compact = (n) => (n == null ? "—" : n < 10000 ? NUMBER.format(n) : COMPACT.format(n));
export const pct = (x, digits = 0) => (x == null ? "—" : `${(x * 100).toFixed(digits)}%`);

/** 30s, 2m 15s, 1h 30m, 3d 4h; under 10 s with one decimal. */
export function duration(seconds) {
  if (seconds == null || !isFinite(seconds)) return "—";
  const s = Math.max(0, seconds);
  if (s < 1) return s === 0 ? "0s" : `${Math.round(s * 1000)}ms`;
  if (s < 10) return `${s.toFixed(1).replace(/\.0$/, "")}s`;
  const whole = Math.round(s);
  if (whole < 60) return `${whole}s`;
  const m = Math.floor(whole / 60), sec = whole % 60;
  if (m < 60) return sec ? `${m}m ${sec}s` : `${m}m`;
  const h = Math.floor(m / 60), min = m % 60;
  if (h < 24) return min ? `${h}h ${min}m` : `${h}h`;
  const d = Math.floor(h / 24), hr = h % 24;
  return hr ? `${d}d ${hr}h` : `${d}d`;
}

const EXACT = new Intl.DateTimeFormat(undefined, { dateStyle: "medium", timeStyle: "medium" });
const DAY = new Intl.DateTimeFormat(undefined, { month: "short", day: "numeric" });
const DAY_YEAR = new Intl.DateTimeFormat(undefined, { month: "short", day: "numeric", year: "numeric" });
export const exact = (ts) => (ts == null ? "" : EXACT.format(new Date(ts * 1000)));
/** "just now", "5 min ago", "3 h ago", "yesterday", "Mar 4". */
export function relative(ts) {
  if (ts == null) return "—";
  const diff = Date.now() / 1000 - ts;
  if (diff < -60) return `in ${duration(-diff)}`;
  if (diff < 45) return "just now";
  if (diff < 3600) return `${Math.round(diff / 60)} min ago`;
  if (diff < 86400) return `${Math.round(diff / 3600)} h ago`;
  if (diff < 172800) return "yesterday";
  const date = new Date(ts * 1000);
  return (date.getFullYear() === new Date().getFullYear() ? DAY : DAY_YEAR).format(date);
}
/** A <time> that says how long ago, exact on hover; the clock keeps it current. */
export const timeAgo = (ts) =>
  ts == null ? raw("—") : html`<time datetime="${new Date(ts * 1000).toISOString()}" title="${exact(ts)}" data-rel="${ts}">${relative(ts)}</time>`;

export function bytes(n) {
  if (n == null) return "—";
  const units = ["B", "KB", "MB", "GB", "TB"];
  let i = 0, v = n;
  while (v >= 1024 && i < units.length - 1) { v /= 1024; i++; }
  return `${i ? v.toFixed(v < 10 ? 1 : 0) : v} ${units[i]}`;
}
export function rate(perSecond) {
  if (perSecond == null) return "—";
  if (perSecond === 0) return "0/s";
  if (perSecond < 1 / 60) return `${(perSecond * 3600).toFixed(1)}/h`;
  if (perSecond < 1) return `${(perSecond * 60).toFixed(1)}/min`;
  return `${perSecond < 10 ? perSecond.toFixed(1) : NUMBER.format(Math.round(perSecond))}/s`;
}
export function money(x) {
  if (x == null) return "—";
  if (x === 0) return "$0";
  if (Math.abs(x) < 0.01) return `$${x.toPrecision(2)}`;
  return `$${x.toLocaleString("en-US", { minimumFractionDigits: 2, maximumFractionDigits: 2 })}`;
}
export const shortId = (id) => (id && id.length > 14 ? `${id.slice(0, 4)}…${id.slice(-8)}` : id);

// -- status ----------------------------------------------------------------------------------------------------

const ICONS = {
  check: '<path d="M3.5 8.5l3 3 6-7" fill="none" stroke="currentColor" stroke-width="2" stroke-linecap="round" stroke-linejoin="round"/>',
  x: '<path d="M4.5 4.5l7 7m0-7l-7 7" stroke="currentColor" stroke-width="2" stroke-linecap="round"/>',
  clock: '<circle cx="8" cy="8" r="6" fill="none" stroke="currentColor" stroke-width="1.8"/><path d="M8 4.8V8l2.2 1.6" fill="none" stroke="currentColor" stroke-width="1.8" stroke-linecap="round"/>',
  run: '<circle cx="8" cy="8" r="6" fill="none" stroke="currentColor" stroke-opacity=".3" stroke-width="2"/><path class="spin" d="M8 2a6 6 0 0 1 6 6" fill="none" stroke="currentColor" stroke-width="2" stroke-linecap="round"/>',
  pause: '<path d="M5.5 3.5v9m5-9v9" stroke="currentColor" stroke-width="2.4" stroke-linecap="round"/>',
  slash: '<circle cx="8" cy="8" r="6" fill="none" stroke="currentColor" stroke-width="1.8"/><path d="M4 12l8-8" stroke="currentColor" stroke-width="1.8"/>',
  hourglass: '<path d="M4.5 2.5h7M4.5 13.5h7M5 2.5c0 3 6 3.5 6 5.5s-6 2.5-6 5.5M11 2.5c0 3-6 3.5-6 5.5s6 2.5 6 5.5" fill="none" stroke="currentColor" stroke-width="1.5" stroke-linecap="round"/>',
  skip: '<path d="M3.5 3.5l6 4.5-6 4.5zM12 3.5v9" fill="none" stroke="currentColor" stroke-width="1.8" stroke-linejoin="round" stroke-linecap="round"/>',
  copy: '<rect x="5.5" y="5.5" width="8" height="8" rx="1.5" fill="none" stroke="currentColor" stroke-width="1.5"/><path d="M3.5 10.5h-1v-8h8v1" fill="none" stroke="currentColor" stroke-width="1.5"/>',
  download: '<path d="M8 2.5v8m-3.5-3.5L8 10.5 11.5 7M3 13.5h10" fill="none" stroke="currentColor" stroke-width="1.8" stroke-linecap="round" stroke-linejoin="round"/>',
  dot: '<circle cx="8" cy="8" r="3.5" fill="currentColor"/>',
};
export const icon = (name, cls = "icon") =>
  raw(`<svg class="${cls}" aria-hidden="true" focusable="false" width="16" height="16" viewBox="0 0 16 16">${ICONS[name] || ICONS.dot}</svg>`);

const STATUS = {
  queued: ["Queued", "clock", "neutral"],
  running: ["Running", "run", "info"],
  paused: ["Paused", "pause", "warn"],
  finalizing: ["Finalizing", "hourglass", "info"],
  completed: ["Completed", "check", "ok"],
  failed: ["Failed", "x", "bad"],
  cancelling: ["Cancelling", "slash", "neutral"],
  cancelled: ["Cancelled", "slash", "neutral"],
  expired: ["Expired", "hourglass", "bad"],
  skipped: ["Skipped", "skip", "neutral"],
  succeeded: ["Succeeded", "check", "ok"],
};
export const statusLabel = (status) => (STATUS[status] || [status])[0];
export const statusTone = (status) => (STATUS[status] || [0, 0, "neutral"])[2];
/** A status as text and icon (never colour alone). */
export function badge(status) {
  const [label, iconName, tone] = STATUS[status] || [status, "dot", "neutral"];
  return html`<span class="badge tone-${tone}" data-status="${status}">${icon(iconName)}<span>${label}</span></span>`;
}

/** A bar with succeeded and failed segments and the percent done as text. */
export function progressBar(counts, { big = false, percent = null } = {}) {
  const total = counts.total || 0;
  const part = (n) => (total ? (100 * n) / total : 0);
  const ok = part(counts.succeeded), bad = part(counts.failed), gone = part(counts.cancelled + (counts.skipped || 0));
  const done = total ? (100 * counts.done) / total : 100;
  const skipped = counts.skipped ? `, ${num(counts.skipped)} skipped` : "";
  const label = `${done.toFixed(done > 0 && done < 1 ? 1 : 0)}% done: ${num(counts.succeeded)} succeeded, ${num(counts.failed)} failed${skipped} of ${num(total)}`;
  return html`<div class="bar${big ? " bar-big" : ""}" role="img" aria-label="${label}">
    <span class="seg seg-ok" style="width:${ok.toFixed(2)}%"></span><span class="seg seg-bad" style="width:${bad.toFixed(2)}%"></span><span class="seg seg-gone" style="width:${gone.toFixed(2)}%"></span><span class="seg seg-partial" style="width:${Math.max(0, (percent ?? done) - done).toFixed(2)}%"></span>
  </div>`;
}
export const percentText = (job) => `${job.percent >= 1 || job.percent === 0 ? Math.floor(job.percent) : job.percent.toFixed(1)}%`;

/** The actions a user may take on a job now: allowed from its status, with the role to make them. */
export function jobActions(job) {
  if (!boot.can_write) return [];
  const allowed = new Set((boot.actions || {})[job.status] || []);
  const out = [];
  if (allowed.has("pause")) out.push("pause");
  if (allowed.has("resume")) out.push("resume");
  if (allowed.has("retry") && job.counts.failed > 0) out.push("retry");
  if (allowed.has("cancel")) out.push("cancel");
  if (allowed.has("delete")) out.push("delete");
  return out;
}
export const ACTION_LABEL = { pause: "Pause", resume: "Resume", cancel: "Cancel", retry: "Retry failed", delete: "Delete" };
const CONFIRMS = {
  cancel: (job) => ({
    title: "Cancel this job?",
    body: `Queued items of ${job.id} will not run and running ones are told to stop. Finished results are kept.`,
    confirm: "Cancel job",
    keep: "Keep running",
  }),
  delete: (job) => ({
    title: "Delete this job?",
    body: `${job.id}, its items and its result files are removed for good. This cannot be undone.`,
    confirm: "Delete job",
    keep: "Keep job",
  }),
};
const DONE = {
  pause: "Paused: running items finish, no new ones start",
  resume: "Resumed",
  cancel: "Cancelled: queued items will not run",
  retry: "Failed items queued again",
  delete: "Deleted",
};

/** Run one action on a job, asking first when it destroys something; ends with a toast. Returns the new job
 * (null once deleted), or undefined when the user kept it or it failed. */
export async function runJobAction(job, action) {
  const ask = CONFIRMS[action];
  if (ask && !(await confirmDialog({ ...ask(job), danger: true }))) return undefined;
  const path = `/api/v1/jobs/${encodeURIComponent(job.id)}`;
  try {
    const result = action === "delete" ? await api(path, { method: "DELETE" }) : await api(`${path}/${action}`, { method: "POST" });
    const extra = action === "retry" && result?.retried != null ? ` (${num(result.retried)} items)` : "";
    toast(`${shortId(job.id)}: ${DONE[action]}${extra}.`, "ok");
    return action === "delete" ? null : result;
  } catch (error) {
    toast(`Could not ${ACTION_LABEL[action].toLowerCase()} ${shortId(job.id)}: ${error.message}`, "bad");
    return undefined;
  }
}

// -- the API ---------------------------------------------------------------------------------------------------

export class ApiError extends Error {
  constructor(message, status, detail) {
    super(message);
    this.status = status;
    this.detail = detail || {};
  }
}

export function toLogin() {
  const here = location.pathname + location.search;
  location.assign(here === "/" ? "/login" : `/login?next=${encodeURIComponent(here)}`);
}

/** fetch() for the JSON API: the CSRF token on writes, errors as ApiError with the server's message. */
export async function api(path, { method = "GET", body, signal, form } = {}) {
  const headers = { Accept: "application/json" };
  if (method !== "GET") headers["X-CSRF-Token"] = csrf;
  let payload;
  if (form) payload = form;
  else if (body !== undefined) {
    headers["Content-Type"] = "application/json";
    payload = JSON.stringify(body);
  }
  let response;
  try {
    response = await fetch(path, { method, headers, body: payload, signal, credentials: "same-origin" });
  } catch (error) {
    if (error.name === "AbortError") throw error;
    throw new ApiError("the server cannot be reached; check that batchyard serve is running", 0);
  }
  if (response.status === 401 && !path.startsWith("/api/v1/session")) {
    toLogin();
    throw new ApiError("signed out", 401);
  }
  if (response.status === 204) return null;
  const text = await response.text();
  let data = null;
  try { data = text ? JSON.parse(text) : null; } catch { data = null; }
  if (!response.ok) {
    const detail = data?.error || {};
    throw new ApiError(detail.message || `${response.status} ${response.statusText}`, response.status, detail);
  }
  return data;
}

/** A query string from an object: arrays repeat, empty values are left out. */
export function query(params) {
  const search = new URLSearchParams();
  for (const [key, value] of Object.entries(params)) {
    if (Array.isArray(value)) value.forEach((v) => search.append(key, v));
    else if (value !== null && value !== undefined && value !== "") search.set(key, value);
  }
  const text = search.toString();
  return text ? `?${text}` : "";
}

// -- toasts and dialogs ----------------------------------------------------------------------------------------

export function toast(message, tone = "info") {
  const box = document.getElementById("toasts");
  if (!box) return;
  const node = document.createElement("div");
  node.className = `toast tone-${tone}`;
  node.innerHTML = html`${icon(tone === "bad" ? "x" : tone === "ok" ? "check" : "dot")}<span></span><button type="button" class="toast-close" aria-label="Dismiss">×</button>`.text;
  node.querySelector("span").textContent = message;
  node.querySelector("button").addEventListener("click", () => node.remove());
  box.append(node);
  setTimeout(() => node.remove(), tone === "bad" ? 9000 : 5000);
}

/** The page's <dialog>: resolves true when the user confirms. The confirm button repeats the action. */
export function confirmDialog({ title, body, confirm, keep = "Keep", danger = false }) {
  const dialog = document.getElementById("confirm");
  $("#confirm-title", dialog).textContent = title;
  $("#confirm-body", dialog).textContent = body;
  const yes = $("#confirm-yes", dialog), no = $("#confirm-no", dialog);
  yes.textContent = confirm;
  no.textContent = keep;
  yes.className = `btn ${danger ? "btn-danger" : "btn-primary"}`;
  return new Promise((resolve) => {
    dialog.addEventListener("close", () => resolve(dialog.returnValue === "ok"), { once: true });
    dialog.returnValue = "";
    dialog.showModal();
    no.focus();
  });
}

export async function copyText(text, what = "Copied") {
  try {
    await navigator.clipboard.writeText(text);
    toast(`${what} to the clipboard`, "ok");
  } catch {
    toast("The browser did not allow copying; select the text and copy it by hand", "bad");
  }
}
/** A small button that copies `text`. */
export const copyButton = (text, label = "Copy") =>
  html`<button type="button" class="btn-icon copy" data-copy="${text}" aria-label="${label}" title="${label}">${icon("copy")}</button>`;

// -- live updates ---------------------------------------------------------------------------------------------

/** Follow job changes over the API's Server-Sent Events: one stream per tab, closed while the tab is hidden (the
 * page resyncs once when it comes back). `onJob(job)` gets each change; `onState("live"|"reconnecting"|"paused")`. */
export function liveJobs({ jobId = null, onJob, onState = () => {}, onResync = () => {} }) {
  let source = null;
  let hiddenTimer = null;
  const open = () => {
    if (source) return;
    source = new EventSource(`/api/v1/stream${jobId ? `?job_id=${encodeURIComponent(jobId)}` : ""}`);
    source.addEventListener("open", () => onState("live"));
    source.addEventListener("job", (event) => {
      try { onJob(JSON.parse(event.data)); } catch (error) { console.warn("bad job event", error); }
    });
    source.addEventListener("resync", () => onResync());
    source.addEventListener("end", () => { close(); toLogin(); });
    source.addEventListener("error", () => onState(source && source.readyState === EventSource.CLOSED ? "closed" : "reconnecting"));
  };
  const close = () => { if (source) { source.close(); source = null; } };
  document.addEventListener("visibilitychange", () => {
    if (document.hidden) {
      hiddenTimer = setTimeout(() => { close(); onState("paused"); }, 10000);
    } else {
      clearTimeout(hiddenTimer);
      if (!source) { open(); onResync(); }
    }
  });
  window.addEventListener("pagehide", close);
  open();
  return { close };
}

/** Show the stream's state in the page's live indicator. */
export function showLiveState(state) {
  const node = document.getElementById("live-state");
  if (!node) return;
  const text = { live: "Live", reconnecting: "Reconnecting…", paused: "Paused while hidden", closed: "Offline" }[state] || state;
  node.dataset.state = state;
  node.querySelector(".live-text").textContent = text;
}

// -- the clock -------------------------------------------------------------------------------------------------

/** Once a second: running durations ([data-since]) tick, relative times ([data-rel]) stay current. */
export function startClock() {
  const tick = () => {
    const now = Date.now() / 1000;
    for (const node of $$("[data-since]")) node.textContent = duration(now - Number(node.dataset.since));
    for (const node of $$("[data-rel]")) {
      const text = relative(Number(node.dataset.rel));
      if (node.textContent !== text) node.textContent = text;
    }
  };
  setInterval(tick, 1000);
}

// -- every page ------------------------------------------------------------------------------------------------

export function setupPage() {
  $("#sign-out")?.addEventListener("click", async () => {
    try { await api("/api/v1/session", { method: "DELETE" }); } catch { /* signed out anyway */ }
    location.assign("/login");
  });
  document.addEventListener("click", (event) => {
    const button = event.target.closest("[data-copy]");
    if (button) copyText(button.dataset.copy, button.dataset.copyWhat || "Copied");
  });
  startClock();
}

/** A job's duration: ticking while it runs. */
export function jobDuration(job) {
  if (job.started_at == null) return raw('<span class="muted">—</span>');
  if (job.finished_at == null && !boot.terminal.includes(job.status)) {
    return html`<span data-since="${job.started_at}">${duration(Date.now() / 1000 - job.started_at)}</span>`;
  }
  return html`<span>${duration(job.duration_seconds)}</span>`;
}

export function jobEta(job) {
  if (boot.terminal.includes(job.status) || job.status === "finalizing") return raw('<span class="muted">—</span>');
  if (job.status === "paused") return raw('<span class="muted">paused</span>');
  if (job.workers_alive === 0 && job.counts.queued + job.counts.running > 0) return raw('<span class="warn-text">no worker</span>');
  if (job.eta_seconds == null) return raw('<span class="muted">—</span>');
  return html`<span>${duration(job.eta_seconds)}</span>`;
}
