// New batch: pick or drop a file, preview and check it here, upload it with progress, create the job (the server
// checks every line; its problems are shown by line number and nothing runs), then go to the job's page.
import { $, ApiError, api, boot, bytes, html, num, setupPage, toast } from "./core.js";

setupPage();

const PREVIEW_LINES = 8;
const CHECK_BYTES = 8 * 1024 * 1024; // files up to this size are checked line by line in the browser first
const csrf = document.querySelector('meta[name="csrf-token"]')?.content || "";
const form = $("#new-batch");
const input = $("#file");
const zone = $("#dropzone");
let chosen = null;
let localProblems = [];

$("#max-size").textContent = bytes(boot.max_upload_bytes);

function describeHandler() {
  const h = boot.handlers.find((x) => x.name === $("#handler").value);
  const help = $("#handler-help");
  if (!h) { help.textContent = "No handler is registered: start the server with --app, or run a worker."; return; }
  const bits = [h.description || "", h.live_workers ? `${num(h.live_workers)} live worker${h.live_workers === 1 ? "" : "s"}` : "no live worker yet: items wait until one starts"];
  help.textContent = bits.filter(Boolean).join(" · ");
}
const isOpenAI = () => $("#handler").value === boot.openai_handler;
function showEndpoint() {
  $("#endpoint-field").hidden = !isOpenAI();
  for (const id of ["priority", "max-attempts", "tags"]) $(`#${id}`).disabled = isOpenAI();
}
$("#handler").addEventListener("change", () => { describeHandler(); showEndpoint(); });
showEndpoint();
describeHandler();

// -- choosing and checking -----------------------------------------------------------------------------------------

function formatOf(file) {
  return /\.csv$/i.test(file.name) || file.type === "text/csv" ? "csv" : "jsonl";
}

/** Split one CSV line into fields (quotes, doubled quotes); enough for a preview. */
function csvFields(line) {
  const out = [];
  let field = "", quoted = false;
  for (let i = 0; i < line.length; i++) {
    const c = line[i];
    if (quoted) {
      if (c === '"' && line[i + 1] === '"') { field += '"'; i++; }
      else if (c === '"') quoted = false;
      else field += c;
    } else if (c === '"') quoted = true;
    else if (c === ",") { out.push(field); field = ""; }
    else field += c;
  }
  out.push(field);
  return out;
}

function checkJsonl(lines, complete) {
  const problems = [];
  const keys = new Map();
  lines.forEach((line, i) => {
    if (!line.trim() || (!complete && i === lines.length - 1)) return;
    try {
      const value = JSON.parse(line);
      const key = value && typeof value === "object" && !Array.isArray(value) ? value.custom_id ?? value.key : undefined;
      if (key !== undefined && key !== null) {
        if (keys.has(String(key))) problems.push({ line: i + 1, message: `custom_id "${key}" repeats line ${keys.get(String(key))}; each item needs its own` });
        else keys.set(String(key), i + 1);
      }
    } catch (error) {
      problems.push({ line: i + 1, message: `invalid JSON: ${error.message}` });
    }
  });
  return problems;
}

async function choose(file) {
  chosen = file;
  localProblems = [];
  showProblems([]);
  const format = formatOf(file);
  const info = $("#file-info");
  info.hidden = false;
  info.innerHTML = html`<span><strong>${file.name}</strong> · ${bytes(file.size)} · ${format.toUpperCase()}</span>`.text;
  if (file.size > boot.max_upload_bytes) {
    showProblems([{ line: 0, message: `the file is ${bytes(file.size)}, over the server's limit of ${bytes(boot.max_upload_bytes)}; split it into smaller batches` }]);
    updateSubmit();
    return;
  }
  const complete = file.size <= CHECK_BYTES;
  const text = await file.slice(0, complete ? file.size : 256 * 1024).text();
  const lines = text.split(/\r?\n/);
  if (complete && lines.at(-1) === "") lines.pop();
  renderPreview(format, lines);
  if (!text.trim()) localProblems = [{ line: 1, message: "the file is empty; add at least one item" }];
  else if (format === "jsonl") localProblems = checkJsonl(lines, complete);
  showProblems(localProblems, complete ? null : "Checked the beginning of this large file; the server checks every line before anything runs.");
  $("#submit-note").textContent = complete ? `${num(lines.filter((l) => l.trim()).length - (format === "csv" ? 1 : 0))} items` : "";
  updateSubmit();
}

function renderPreview(format, lines) {
  const box = $("#preview-box");
  const table = $("#preview");
  box.hidden = false;
  if (format === "csv") {
    const [head, ...rows] = lines.slice(0, PREVIEW_LINES + 1);
    const header = csvFields(head || "");
    table.innerHTML = html`<thead><tr><th scope="col">Line</th>${header.map((h) => html`<th scope="col">${h}</th>`)}</tr></thead>
      <tbody>${rows.map((r, i) => html`<tr><td class="ln">${i + 2}</td>${csvFields(r).map((c) => html`<td title="${c}">${c}</td>`)}</tr>`)}</tbody>`.text;
  } else {
    table.innerHTML = html`<thead><tr><th scope="col">Line</th><th scope="col">Item</th></tr></thead>
      <tbody>${lines.slice(0, PREVIEW_LINES).map((l, i) => html`<tr><td class="ln">${i + 1}</td><td title="${l.slice(0, 500)}">${l.length > 160 ? `${l.slice(0, 160)}…` : l}</td></tr>`)}</tbody>`.text;
  }
  const more = lines.length - PREVIEW_LINES - (format === "csv" ? 1 : 0);
  $("#preview-title").textContent = more > 0 ? `Preview (first ${PREVIEW_LINES} items)` : "Preview";
}

function showProblems(problems, note = null, total = null) {
  const box = $("#problems-box");
  box.hidden = !problems.length && !note;
  $("#problems-title").hidden = !problems.length;
  const count = total ?? problems.length;
  $("#problems-title").textContent = `${num(count)} problem${count === 1 ? "" : "s"} to fix before this batch can run`;
  $("#problems").innerHTML = [
    ...problems.slice(0, 50).map((p) => html`<li>${p.line ? html`<span class="line">Line ${p.line}</span>` : ""}${p.message}${p.code ? html` <span class="subtle">[${p.code}]</span>` : ""}</li>`.text),
    ...(problems.length > 50 ? [html`<li>…and ${num(problems.length - 50)} more</li>`.text] : []),
    ...(note ? [html`<li class="alert-info">${note}</li>`.text] : []),
  ].join("");
}

function updateSubmit() {
  const ok = boot.can_write && chosen && !localProblems.length && chosen.size <= boot.max_upload_bytes && boot.handlers.length;
  $("#submit").disabled = !ok;
  if (!chosen) $("#submit-note").textContent = "Choose a file first.";
  else if (localProblems.length) $("#submit-note").textContent = "Fix the problems above and choose the file again.";
}

input.addEventListener("change", () => { if (input.files[0]) choose(input.files[0]); });
for (const type of ["dragenter", "dragover"]) {
  zone.addEventListener(type, (event) => { event.preventDefault(); zone.classList.add("over"); });
}
for (const type of ["dragleave", "drop"]) {
  zone.addEventListener(type, (event) => { event.preventDefault(); zone.classList.remove("over"); });
}
zone.addEventListener("drop", (event) => {
  const file = event.dataTransfer?.files?.[0];
  if (!file || !boot.can_write) return;
  const transfer = new DataTransfer();
  transfer.items.add(file);
  input.files = transfer.files;
  choose(file);
});

// -- uploading and creating ----------------------------------------------------------------------------------------

/** Upload with progress (fetch cannot report upload progress; XMLHttpRequest can). */
function upload(file) {
  return new Promise((resolve, reject) => {
    const xhr = new XMLHttpRequest();
    xhr.open("POST", "/api/v1/files");
    xhr.setRequestHeader("X-CSRF-Token", csrf);
    xhr.setRequestHeader("Accept", "application/json");
    const info = $("#file-info");
    info.innerHTML = html`<label for="upload-bar">Uploading ${file.name}</label><progress id="upload-bar" max="100" value="0"></progress><span id="upload-pct">0%</span>`.text;
    xhr.upload.addEventListener("progress", (event) => {
      if (!event.lengthComputable) return;
      const pct = Math.round((100 * event.loaded) / event.total);
      $("#upload-bar").value = pct;
      $("#upload-pct").textContent = `${pct}% of ${bytes(event.total)}`;
    });
    xhr.addEventListener("load", () => {
      let data = null;
      try { data = JSON.parse(xhr.responseText); } catch { data = null; }
      if (xhr.status >= 200 && xhr.status < 300) resolve(data);
      else reject(new ApiError(data?.error?.message || `upload failed (${xhr.status})`, xhr.status, data?.error));
    });
    xhr.addEventListener("error", () => reject(new ApiError("the upload was interrupted; check the connection and try again", 0)));
    const body = new FormData();
    body.append("purpose", "batch");
    body.append("file", file, file.name);
    xhr.send(body);
  });
}

form.addEventListener("submit", async (event) => {
  event.preventDefault();
  if (!chosen) return;
  const button = $("#submit");
  button.disabled = true;
  button.textContent = "Uploading…";
  try {
    const file = await upload(chosen);
    button.textContent = "Checking every line…";
    $("#file-info").innerHTML = html`<span>Uploaded <strong>${chosen.name}</strong>; checking every line…</span>`.text;
    if (isOpenAI()) {
      // An OpenAI-compatible batch: its lines are validated after create, then run by the openai handler.
      const description = $("#description").value.trim();
      const batch = await api("/v1/batches", {
        method: "POST",
        body: { input_file_id: file.id, endpoint: $("#endpoint").value, completion_window: "24h", metadata: description ? { description } : null },
      });
      toast("Batch created: its lines are being checked", "ok");
      location.assign(`/jobs/job_${batch.id.replace(/^batch_/, "")}`);
      return;
    }
    const maxAttempts = $("#max-attempts").value;
    const job = await api("/api/v1/jobs", {
      method: "POST",
      body: {
        handler: $("#handler").value,
        input_file_id: file.id,
        format: formatOf(chosen),
        description: $("#description").value.trim() || null,
        tags: $("#tags").value.split(",").map((t) => t.trim()).filter(Boolean),
        priority: Number($("#priority").value || 0),
        max_attempts: maxAttempts ? Number(maxAttempts) : null,
      },
    });
    toast(`Batch started: ${num(job.counts.total)} items`, "ok");
    location.assign(`/jobs/${job.id}`);
  } catch (error) {
    const problems = error.detail?.problems;
    if (problems?.length) showProblems(problems, null, error.detail.total);
    else showProblems([{ line: 0, message: error.message }]);
    $("#file-info").innerHTML = html`<span class="bad-text">Nothing was started.</span>`.text;
    $("#problems-box").scrollIntoView({ block: "nearest" });
    button.disabled = false;
    button.textContent = "Start batch";
  }
});
updateSubmit();
