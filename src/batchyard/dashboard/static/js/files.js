// Files: uploads (download, delete) and the result files of finished jobs, both paged by the server.
import { $, ACTION_LABEL, api, badge, boot, bytes, confirmDialog, copyButton, html, icon, num, query, setupPage, shortId, timeAgo, toast } from "./core.js";

setupPage();

const PAGE = 25;
const uploads = { cursor: null, stack: [] };
const results = { cursor: null, stack: [] };

function uploadRow(f) {
  return html`<tr data-file="${f.id}">
    <td class="col-job" data-label="File"><a href="/api/v1/files/${f.id}/content" download>${icon("download")} ${f.filename}</a></td>
    <td class="wide" data-label="Id"><span class="mono small">${f.id}</span>${copyButton(f.id, `Copy file id ${f.id}`)}</td>
    <td data-label="Purpose">${f.purpose}</td>
    <td class="num" data-label="Size">${bytes(f.bytes)}</td>
    <td class="num" data-label="Uploaded">${timeAgo(f.created_at)}</td>
    ${boot.is_admin ? html`<td data-label="Owner">${f.owner}</td>` : ""}
    <td class="col-actions">${boot.can_write ? html`<button type="button" class="btn btn-small btn-danger-outline" data-delete="${f.id}" data-name="${f.filename}">${ACTION_LABEL.delete}</button>` : ""}</td>
  </tr>`;
}

function pager(node, state, page, reload) {
  const parts = [];
  if (state.cursor) parts.push(html`<button type="button" class="btn" data-go="first">← First page</button>`);
  if (page.has_more) parts.push(html`<button type="button" class="btn" data-go="next">Next page →</button>`);
  node.innerHTML = html`<span class="spacer"></span>${parts}`.text;
  node.onclick = (event) => {
    const go = event.target.closest("[data-go]")?.dataset.go;
    if (!go) return;
    state.cursor = go === "next" ? page.next_cursor : null;
    reload();
  };
}

async function loadUploads() {
  const wrap = $("#uploads-wrap");
  try {
    const page = await api(`/api/v1/files${query({ limit: PAGE, cursor: uploads.cursor })}`);
    $("#upload-rows").innerHTML = page.data.map((f) => uploadRow(f).text).join("");
    const empty = $("#uploads-empty");
    empty.hidden = page.data.length > 0;
    empty.innerHTML = html`<h2>No uploads yet</h2><p>Files you upload for a batch show here.</p><p><a class="btn" href="/new">New batch</a></p>`.text;
    pager($("#uploads-pager"), uploads, page, loadUploads);
  } catch (error) {
    $("#uploads-empty").hidden = false;
    $("#uploads-empty").innerHTML = html`<h2>Could not load uploads</h2><p>${error.message}</p>`.text;
  }
  wrap.setAttribute("aria-busy", "false");
}

function resultRow(job) {
  const files = Object.entries(job.result_files || {});
  const links = files.map(([name, info]) => html`<a class="btn btn-small" href="/api/v1/jobs/${job.id}/${name}" download>${icon("download")}${name} <span class="subtle small">${bytes(info.bytes)}</span></a>`);
  return html`<tr>
    <td class="col-job" data-label="Job"><a class="mono" href="/jobs/${job.id}" title="${job.id}">${shortId(job.id)}</a>${job.description ? html`<div class="job-desc">${job.description}</div>` : ""}</td>
    <td data-label="Status">${badge(job.status)}</td>
    <td class="wide" data-label="Files"><div class="downloads">${links.length ? links : html`<span class="subtle">no result files</span>`}</div></td>
    <td class="num" data-label="Finished">${timeAgo(job.finished_at)}</td>
  </tr>`;
}

async function loadResults() {
  const wrap = $("#results-wrap");
  try {
    const page = await api(`/api/v1/jobs${query({ status: boot.terminal, limit: PAGE, cursor: results.cursor })}`);
    $("#result-rows").innerHTML = page.data.map((j) => resultRow(j).text).join("");
    const empty = $("#results-empty");
    empty.hidden = page.data.length > 0;
    empty.innerHTML = html`<h2>No finished jobs yet</h2><p>When a job finishes, its results.jsonl, results.csv and errors.jsonl are here.</p>`.text;
    pager($("#results-pager"), results, page, loadResults);
  } catch (error) {
    $("#results-empty").hidden = false;
    $("#results-empty").innerHTML = html`<h2>Could not load results</h2><p>${error.message}</p>`.text;
  }
  wrap.setAttribute("aria-busy", "false");
}

$("#upload-rows").addEventListener("click", async (event) => {
  const button = event.target.closest("[data-delete]");
  if (!button) return;
  const ok = await confirmDialog({
    title: "Delete this file?",
    body: `${button.dataset.name} (${button.dataset.delete}) is removed. Jobs already created from it keep their items.`,
    confirm: "Delete file",
    keep: "Keep file",
    danger: true,
  });
  if (!ok) return;
  try {
    await api(`/api/v1/files/${button.dataset.delete}`, { method: "DELETE" });
    toast(`Deleted ${button.dataset.name}`, "ok");
    loadUploads();
  } catch (error) {
    toast(`Could not delete: ${error.message}`, "bad");
  }
});

loadUploads();
loadResults();
