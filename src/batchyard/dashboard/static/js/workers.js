// Workers: the live ones, what each runs and its last heartbeat, refreshed every few seconds while the tab shows;
// and the handlers they serve.
import { $, api, badge, boot, duration, html, num, relative, exact, setupPage, showLiveState, timeAgo } from "./core.js";

setupPage();

const REFRESH_MS = 5000;

function loadBar(w) {
  const pct = w.concurrency ? Math.min(100, (100 * w.in_flight) / w.concurrency) : 0;
  return html`<div class="progress-cell"><div class="bar" role="img" aria-label="${num(w.in_flight)} of ${num(w.concurrency)} slots busy"><span class="seg seg-ok" style="width:${pct.toFixed(1)}%"></span></div><span class="pct">${pct.toFixed(0)}%</span></div>`;
}

function row(w) {
  const now = Date.now() / 1000;
  const stale = now - w.last_seen_at > 30;
  const where = w.host ? html`<div class="subtle small">${w.host} · pid ${w.pid}</div>` : "";
  const runs = w.jobs === null ? "any job of its handlers" : w.jobs.length ? html`${w.jobs.map((id, i) => html`${i ? ", " : ""}<a class="mono" href="/jobs/${id}">${id}</a>`)}` : "one job only (a submit --wait)";
  return html`<tr>
    <td class="col-job" data-label="Worker"><span class="mono">${w.id}</span>${where}</td>
    <td data-label="Status">${badge(stale ? "paused" : w.status === "running" ? "running" : w.status)}${stale ? html` <span class="subtle small">quiet</span>` : ""}</td>
    <td data-label="Handlers">${w.handlers.map((h, i) => html`${i ? ", " : ""}<span class="handler">${h}</span>`)}</td>
    <td class="num" data-label="In flight">${num(w.in_flight)} / ${num(w.concurrency)}</td>
    <td class="col-progress" data-label="Load">${loadBar(w)}</td>
    <td data-label="Runs">${runs}</td>
    <td class="num" data-label="Up for"><span title="since ${exact(w.started_at)}">${duration(now - w.started_at)}</span></td>
    <td class="num" data-label="Last heartbeat">${timeAgo(w.last_seen_at)}</td>
  </tr>`;
}

async function load() {
  const wrap = $("#workers-wrap");
  try {
    const [workers, handlers] = await Promise.all([api("/api/v1/workers"), api("/api/v1/handlers")]);
    const list = workers.data;
    $("#worker-rows").innerHTML = list.map((w) => row(w).text).join("");
    const empty = $("#workers-empty");
    empty.hidden = list.length > 0;
    empty.innerHTML = html`<h2>No live worker</h2><p>Jobs wait in the queue until one starts. <code>batchyard serve</code> runs one built in; start more with <code>batchyard worker</code>.</p>`.text;
    $("#w-count").textContent = num(list.length);
    $("#w-flight").textContent = num(list.reduce((s, w) => s + w.in_flight, 0));
    $("#w-capacity").textContent = num(list.reduce((s, w) => s + w.concurrency, 0));
    $("#w-handlers").textContent = num(new Set(list.flatMap((w) => w.handlers)).size);
    $("#handler-rows").innerHTML = handlers.data.map((h) => html`<tr>
      <td data-label="Handler"><span class="handler">${h.name}</span></td>
      <td class="wide" data-label="What it does">${(h.description || "—").replaceAll("``", "")}</td>
      <td class="num" data-label="Live workers">${h.live_workers ? num(h.live_workers) : html`<span class="warn-text">none</span>`}</td>
      <td class="num" data-label="Concurrency">${num(h.concurrency)}</td>
      <td class="num" data-label="Max attempts">${h.max_attempts ?? "default"}</td>
      <td class="num" data-label="Timeout">${h.timeout_seconds ? duration(h.timeout_seconds) : "none"}</td></tr>`.text).join("");
    showLiveState("live");
  } catch (error) {
    $("#worker-rows").innerHTML = "";
    const empty = $("#workers-empty");
    empty.hidden = false;
    empty.innerHTML = html`<h2>Could not load workers</h2><p>${error.message}</p><p><button class="btn" type="button" id="retry">Try again</button></p>`.text;
    $("#retry").addEventListener("click", load);
    showLiveState("reconnecting");
  }
  wrap.setAttribute("aria-busy", "false");
}

let timer = null;
function schedule() {
  clearInterval(timer);
  timer = setInterval(() => { if (!document.hidden) load(); }, REFRESH_MS);
}
document.addEventListener("visibilitychange", () => {
  if (document.hidden) showLiveState("paused");
  else load();
});
load();
schedule();
