// Small inline-SVG charts: lines over time, bars, a share bar. Each returns markup with a <title> and a
// data table behind it (details), so a chart is never the only way to read the numbers. Colours come from CSS.
import { html, raw, esc } from "./core.js";

const W = 640;
const PAD = { top: 12, right: 12, bottom: 26, left: 48 };

function niceMax(value) {
  if (!(value > 0)) return 1;
  const power = 10 ** Math.floor(Math.log10(value));
  for (const step of [1, 2, 2.5, 5, 10]) if (value <= step * power) return step * power;
  return 10 * power;
}

function table(caption, head, rows) {
  return html`<details class="chart-table"><summary>Show as a table</summary><div class="table-wrap"><table>
    <caption class="visually-hidden">${caption}</caption>
    <thead><tr>${head.map((h) => html`<th scope="col">${h}</th>`)}</tr></thead>
    <tbody>${rows.map((r) => html`<tr>${r.map((c) => html`<td>${c}</td>`)}</tr>`)}</tbody></table></div></details>`;
}

/** Lines over time. series: [{name, cls, points: [[x, y], ...]}]; x in epoch seconds. */
export function lineChart({ title, series, height = 200, formatX, formatY, tableRows }) {
  const all = series.flatMap((s) => s.points);
  if (all.length < 2) return null;
  const x0 = Math.min(...all.map((p) => p[0])), x1 = Math.max(...all.map((p) => p[0]));
  const yMax = niceMax(Math.max(...all.map((p) => p[1])));
  const iw = W - PAD.left - PAD.right, ih = height - PAD.top - PAD.bottom;
  const sx = (x) => PAD.left + ((x - x0) / (x1 - x0 || 1)) * iw;
  const sy = (y) => PAD.top + ih - (y / yMax) * ih;
  // Small counts get one line per whole number, so no label repeats (0, 1, 2 rather than 0, 1, 1, 2, 2).
  const ticks = yMax <= 4 && Number.isInteger(yMax) ? [...Array(yMax + 1).keys()] : [0, 0.25, 0.5, 0.75, 1].map((f) => f * yMax);
  const grid = ticks.map((t) => `<line class="grid" x1="${PAD.left}" x2="${W - PAD.right}" y1="${sy(t)}" y2="${sy(t)}"/><text x="${PAD.left - 6}" y="${sy(t) + 4}" text-anchor="end">${esc(formatY(t))}</text>`).join("");
  const xt = [x0, (x0 + x1) / 2, x1].map((x, i) => `<text x="${sx(x)}" y="${height - 6}" text-anchor="${["start", "middle", "end"][i]}">${esc(formatX(x))}</text>`).join("");
  const paths = series.map((s) => {
    const d = s.points.map((p, i) => `${i ? "L" : "M"}${sx(p[0]).toFixed(1)},${sy(p[1]).toFixed(1)}`).join("");
    const area = s.area ? `<path class="${s.area}" d="${d}L${sx(s.points.at(-1)[0]).toFixed(1)},${sy(0)}L${sx(s.points[0][0]).toFixed(1)},${sy(0)}Z"/>` : "";
    return `${area}<path class="${s.cls}" d="${d}"/>`;
  }).join("");
  const legend = html`<div class="legend">${series.map((s) => html`<span><span class="swatch ${s.swatch}"></span>${s.name}</span>`)}</div>`;
  return html`<svg class="chart" viewBox="0 0 ${W} ${height}" role="img" aria-label="${title}"><title>${title}</title>${raw(grid + xt + paths)}</svg>${legend}${tableRows ? table(title, tableRows.head, tableRows.rows) : ""}`;
}

/** Vertical bars. bars: [{label, value, cls, title}] */
export function barChart({ title, bars, height = 180, formatY }) {
  if (!bars.length) return null;
  const yMax = niceMax(Math.max(...bars.map((b) => b.value)));
  const iw = W - PAD.left - PAD.right, ih = height - PAD.top - PAD.bottom;
  const slot = iw / bars.length, bw = Math.max(2, Math.min(42, slot * 0.7));
  const sy = (y) => PAD.top + ih - (y / yMax) * ih;
  const ticks = (yMax % 2 && yMax < 10 ? [0, 1] : [0, 0.5, 1]).map((f) => f * yMax);
  const grid = ticks.map((t) => `<line class="grid" x1="${PAD.left}" x2="${W - PAD.right}" y1="${sy(t)}" y2="${sy(t)}"/><text x="${PAD.left - 6}" y="${sy(t) + 4}" text-anchor="end">${esc(formatY(t))}</text>`).join("");
  const every = Math.ceil(bars.length / 8);
  const rects = bars.map((b, i) => {
    const x = PAD.left + i * slot + (slot - bw) / 2;
    const label = i % every === 0 ? `<text x="${x + bw / 2}" y="${height - 6}" text-anchor="middle">${esc(b.label)}</text>` : "";
    return `<rect class="${b.cls || "bar-accent"}" x="${x.toFixed(1)}" y="${sy(b.value).toFixed(1)}" width="${bw.toFixed(1)}" height="${Math.max(0, ih + PAD.top - sy(b.value)).toFixed(1)}" rx="2"><title>${esc(b.title || `${b.label}: ${formatY(b.value)}`)}</title></rect>${label}`;
  }).join("");
  return html`<svg class="chart" viewBox="0 0 ${W} ${height}" role="img" aria-label="${title}"><title>${title}</title>${raw(grid + rects)}</svg>${table(title, ["", "Value"], bars.map((b) => [b.title || b.label, formatY(b.value)]))}`;
}

/** One horizontal bar split into shares. parts: [{name, value, cls, swatch}] */
export function shareBar({ title, parts, format = (v) => String(v) }) {
  const total = parts.reduce((s, p) => s + p.value, 0);
  if (!total) return null;
  let x = 0;
  const rects = parts.map((p) => {
    const w = (p.value / total) * W;
    const out = `<rect class="${p.cls}" x="${x.toFixed(1)}" y="0" width="${w.toFixed(1)}" height="28"><title>${esc(`${p.name}: ${format(p.value)} (${((100 * p.value) / total).toFixed(1)}%)`)}</title></rect>`;
    x += w;
    return out;
  }).join("");
  const legend = html`<div class="legend">${parts.map((p) => html`<span><span class="swatch ${p.swatch}"></span>${p.name} ${format(p.value)} (${((100 * p.value) / total).toFixed(1)}%)</span>`)}</div>`;
  return html`<svg class="chart" viewBox="0 0 ${W} 28" preserveAspectRatio="none" role="img" aria-label="${title}" style="height:28px;border-radius:6px"><title>${title}</title>${raw(rects)}</svg>${legend}`;
}
