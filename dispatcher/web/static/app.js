// GPU Render Farm dashboard: polls /api/state once a second and redraws what changed.
"use strict";

const POLL_MS = 1000;
const PAGE = 20;
const view = { offset: 0, open: new Set(), html: new Map(), busy: new Map() };

const esc = (value) => String(value ?? "").replace(/[&<>"']/g, (c) => (
  { "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" }[c]));
const enc = (path) => path.split("/").map(encodeURIComponent).join("/");

function duration(seconds) {
  if (seconds === null || seconds === undefined) return "–";
  seconds = Math.max(0, Math.round(seconds));
  const h = Math.floor(seconds / 3600), m = Math.floor((seconds % 3600) / 60), s = seconds % 60;
  if (h) return `${h}h ${String(m).padStart(2, "0")}m`;
  if (m) return `${m}m ${String(s).padStart(2, "0")}s`;
  return `${s}s`;
}

function bar(fraction, cls) {
  const pct = Math.max(0, Math.min(100, 100 * (fraction || 0)));
  return `<div class="bar ${cls || ""}"><div data-pct="${pct.toFixed(1)}"></div></div>`;
}

// A small line chart of one series: [[t, value], ...] over the window, drawn as inline SVG.
function chart(points, label, unit, max, current, cls) {
  const w = 200, h = 40, t1 = Date.now() / 1000, t0 = t1 - view.window;
  const xy = points.filter((p) => p[1] !== null && p[1] !== undefined)
    .map((p) => [((p[0] - t0) / (t1 - t0)) * w, h - (Math.min(p[1], max) / max) * (h - 2) - 1]);
  const line = xy.map((p) => `${p[0].toFixed(1)},${p[1].toFixed(1)}`).join(" ");
  const area = xy.length ? `${xy[0][0].toFixed(1)},${h} ${line} ${xy[xy.length - 1][0].toFixed(1)},${h}` : "";
  const value = current === null || current === undefined ? "–" : `${Math.round(current)}${unit}`;
  return `<figure class="chart ${cls}"><figcaption><span>${esc(label)}</span><b>${esc(value)}</b></figcaption>
    <svg viewBox="0 0 ${w} ${h}" preserveAspectRatio="none" role="img" aria-label="${esc(label)}">
    <line x1="0" y1="${h / 2}" x2="${w}" y2="${h / 2}" class="grid"/>
    <polygon points="${area}" class="area"/><polyline points="${line}" class="line"/></svg></figure>`;
}

function renderDevices(devices) {
  view.window = devices.window_seconds || 300;
  const parts = devices.cards.map((card) => {
    const s = card.samples, last = s[s.length - 1] || [];
    const gib = (mb) => (mb === null || mb === undefined ? null : mb / 1024);
    return `<div class="card"><div class="card-title" title="${esc(card.name)}">GPU ${card.index} · ${esc(card.name)}</div>
      ${chart(s.map((p) => [p[0], p[1]]), "Utilisation", "%", 100, last[1], "util")}
      ${chart(s.map((p) => [p[0], gib(p[2])]), `Memory of ${(card.memory_total_mb / 1024).toFixed(0)} GiB`, " GiB",
        card.memory_total_mb / 1024, gib(last[2]), "mem")}
      ${chart(s.map((p) => [p[0], p[3]]), "Temperature", "°C", 100, last[3], "temp")}</div>`;
  });
  if (!devices.cards.length) {
    parts.push(`<div class="card nogpu"><div class="card-title">No GPU</div>
      <p>${esc(devices.reason || "NVML reports no card")}. Jobs render on CPU lanes.</p></div>`);
  }
  const cpu = devices.cpu, lastCpu = cpu[cpu.length - 1] || [];
  parts.push(`<div class="card"><div class="card-title">CPU · RAM</div>
    ${chart(cpu.map((p) => [p[0], p[1]]), "CPU load", "%", 100, lastCpu[1], "util")}
    ${chart(cpu.map((p) => [p[0], p[2]]), "RAM in use", "%", 100, lastCpu[2], "mem")}</div>`);
  document.getElementById("devices").innerHTML = parts.join("");
}

function laneRow(job, lane) {
  const busy = lane.samples && lane.frame !== null && lane.frame !== undefined;
  const samples = busy ? `${lane.sample || 0}/${lane.samples}` : "";
  const fraction = busy ? (lane.sample || 0) / lane.samples : 0;
  const spf = lane.seconds_per_frame ? `${lane.seconds_per_frame.toFixed(2)} s` : "–";
  const state = lane.blocklisted ? "blocklisted" : lane.state;
  const thumb = lane.latest
    ? `<a href="/files/${enc(job.id)}/${enc(lane.latest.file)}" target="_blank" rel="noopener" class="thumb">
       <img src="/thumbs/${enc(job.id)}/${enc(lane.latest.file)}" alt="frame ${esc(lane.latest.frame)}" loading="lazy">
       <span>#${esc(lane.latest.frame)}</span></a>`
    : `<div class="thumb empty">no frame yet</div>`;
  const note = lane.last_error ? `<div class="err">${esc(lane.last_error)}</div>`
    : lane.phase ? `<div class="muted">${esc(lane.phase)}</div>` : "";
  return `<tr class="lane lane-${esc(state)}"><td>${thumb}</td>
    <td><b>${esc(lane.name)}</b><div class="muted small">${esc(lane.device)}</div>${note}</td>
    <td><span class="pill s-${esc(state)}">${esc(state)}</span></td>
    <td class="num">${lane.frame ?? "–"}</td>
    <td class="samples">${busy ? bar(fraction, "thin") : ""}<span class="small muted">${esc(samples)}</span></td>
    <td class="num frames-done">${lane.frames_done ?? 0}</td><td class="num">${spf}</td></tr>`;
}

function jobCard(job) {
  const f = job.frames || {}, total = f.total || 0, done = f.done || 0;
  const id = esc(job.id), open = (key) => (view.open.has(`${job.id}:${key}`) ? " open" : "");
  const buttons = view.busy.has(job.id) ? `<button disabled>${esc(view.busy.get(job.id))}</button>` : [
    job.can_cancel ? `<button class="danger" data-action="cancel" data-job="${id}">Cancel</button>` : "",
    job.can_resume ? `<button data-action="resume" data-job="${id}">Resume</button>` : "",
  ].join("");
  const failed = Object.entries(job.failed_frames || {})
    .map(([frame, error]) => `<li>frame ${esc(frame)}: ${esc(error)}</li>`).join("");
  const links = [
    job.video ? `<a href="/files/${enc(job.id)}/${enc(job.video)}" target="_blank" rel="noopener">▶ MP4</a>` : "",
    `<span class="muted small" title="output folder">${esc(job.output_dir)}</span>`,
  ].join("");
  const stamp = job.frames ? `${f.done}-${f.failed}` : "0";
  return `<article class="job state-${esc(job.state)}" data-job="${id}">
    <div class="job-head"><div><span class="pill s-${esc(job.state)}">${esc(job.state)}</span>
      <b class="job-name">${esc(job.blend)}</b> <span class="muted small">${id}</span></div>
      <div class="actions">${buttons}</div></div>
    <div class="job-progress">${bar(total ? done / total : 0, "big")}
      <div class="stats"><span class="frames-count"><b>${done}</b>/${total} frames</span>
      <span>${f.failed || 0} failed</span><span>${f.skipped || 0} skipped</span>
      <span>elapsed ${duration(job.elapsed)}</span><span>ETA ${duration(job.eta_seconds)}</span>
      <span class="muted">${esc(job.phase || "")}</span><span class="muted">${esc(job.device_type || "")}</span></div></div>
    ${job.message ? `<div class="err">${esc(job.message)}</div>` : ""}
    ${failed ? `<ul class="err failed">${failed}</ul>` : ""}
    <table class="lanes"><thead><tr><th>Latest</th><th>Lane</th><th>State</th><th>Frame</th><th>Samples</th>
      <th>Done</th><th>s/frame</th></tr></thead><tbody>${job.lanes.map((l) => laneRow(job, l)).join("")
      || `<tr><td colspan="7" class="muted">No lane has started yet</td></tr>`}</tbody></table>
    <div class="links">${links}</div>
    ${job.recent_frames.length ? `<details data-key="${id}:frames"${open("frames")}><summary>Latest frames</summary>
      <div class="frames">${job.recent_frames.map((r) => `<a href="/files/${enc(job.id)}/${enc(r.file)}" target="_blank"
        rel="noopener">${esc(r.frame)}</a>`).join("")}</div></details>` : ""}
    ${job.has_timeline ? `<details data-key="${id}:timeline"${open("timeline")}><summary>Per-lane timeline</summary>
      <img class="timeline" loading="lazy" src="/timeline/${enc(job.id)}.png?v=${esc(stamp)}" alt="per-lane timeline"></details>` : ""}
  </article>`;
}

// Patch a rendered node into the shape of a new one in place, so buttons and links stay the same elements.
function morph(from, to) {
  if (from.nodeType !== to.nodeType || from.nodeName !== to.nodeName) { from.replaceWith(to); return; }
  if (from.nodeType !== Node.ELEMENT_NODE) {
    if (from.nodeValue !== to.nodeValue) from.nodeValue = to.nodeValue;
    return;
  }
  for (const attr of [...from.attributes]) {
    if (attr.name !== "style" && !to.hasAttribute(attr.name)) from.removeAttribute(attr.name);
  }
  for (const attr of [...to.attributes]) {
    if (from.getAttribute(attr.name) !== attr.value) from.setAttribute(attr.name, attr.value);
  }
  if (from.nodeName === "BUTTON" && from.disabled !== to.disabled) from.disabled = to.disabled;
  const old = [...from.childNodes], fresh = [...to.childNodes];
  fresh.forEach((child, i) => { if (i < old.length) morph(old[i], child); else from.appendChild(child); });
  old.slice(fresh.length).forEach((child) => child.remove());
}

function renderJobs(state) {
  const list = document.getElementById("jobs");
  const seen = new Set();
  if (!state.jobs.length) list.innerHTML = `<p class="muted">No jobs in ${esc(state.jobs_root)}.</p>`;
  else if (list.querySelector("p.muted")) list.innerHTML = "";
  state.jobs.forEach((job, index) => {
    seen.add(job.id);
    const html = jobCard(job);
    let node = list.querySelector(`article[data-job="${CSS.escape(job.id)}"]`);
    if (!node || view.html.get(job.id) !== html) {
      const fresh = document.createElement("div");
      fresh.innerHTML = html;
      if (node) morph(node, fresh.firstElementChild); else node = list.appendChild(fresh.firstElementChild);
      // The page's CSP forbids inline style attributes: widths are set through the DOM instead.
      node.querySelectorAll("[data-pct]").forEach((el) => { el.style.width = `${el.dataset.pct}%`; });
      view.html.set(job.id, html);
    }
    if (list.children[index] !== node) list.insertBefore(node, list.children[index]);
  });
  list.querySelectorAll("article[data-job]").forEach((node) => {
    if (!seen.has(node.dataset.job)) { node.remove(); view.html.delete(node.dataset.job); }
  });
  document.getElementById("jobs-total").textContent = `${state.total} in total`;
  const pager = document.getElementById("pager");
  const pages = Math.ceil(state.total / PAGE);
  pager.innerHTML = pages > 1 ? `<button data-page="-1" ${view.offset ? "" : "disabled"}>‹ Newer</button>
    <span>page ${view.offset / PAGE + 1} of ${pages}</span>
    <button data-page="1" ${view.offset + PAGE < state.total ? "" : "disabled"}>Older ›</button>` : "";
}

function renderCounts(state) {
  const counts = {};
  state.jobs.forEach((job) => { counts[job.state] = (counts[job.state] || 0) + 1; });
  document.getElementById("counts").innerHTML = ["running", "queued", "stopped", "done", "failed", "cancelled"]
    .filter((key) => counts[key]).map((key) => `<span class="pill s-${key}">${counts[key]} ${key}</span>`).join("");
}

async function poll() {
  const live = document.getElementById("live");
  try {
    const response = await fetch(`/api/state?offset=${view.offset}&limit=${PAGE}`, { cache: "no-store" });
    if (response.status === 401) throw new Error("token needed: open the URL that serve printed");
    if (!response.ok) throw new Error(`HTTP ${response.status}`);
    const state = await response.json();
    renderDevices(state.devices);
    renderJobs(state);
    renderCounts(state);
    live.textContent = `live · ${new Date().toLocaleTimeString()}`;
    live.className = "live ok";
  } catch (error) {
    live.textContent = `offline · ${error.message}`;
    live.className = "live bad";
  }
  setTimeout(poll, POLL_MS);
}

function notice(text, bad) {
  const node = document.getElementById("notice");
  node.textContent = text;
  node.className = bad ? "notice bad" : "notice";
  node.hidden = false;
  clearTimeout(notice.timer);
  notice.timer = setTimeout(() => { node.hidden = true; }, 6000);
}

async function act(action, job, button) {
  if (action === "cancel" && !window.confirm(`Cancel job ${job}? Finished frames are kept.`)) return;
  view.busy.set(job, action === "cancel" ? "Cancelling…" : "Resuming…");
  button.disabled = true;
  button.textContent = view.busy.get(job);
  try {
    const response = await fetch(`/api/jobs/${encodeURIComponent(job)}/${action}`, { method: "POST" });
    const body = response.headers.get("content-type")?.includes("json") ? await response.json() : {};
    if (!response.ok) throw new Error(body.error || `HTTP ${response.status}`);
    notice(action === "cancel" ? (body.stopped ? `Job ${job} cancelled` : `Job ${job} is still stopping`)
      : `Job ${job} resumed`);
  } catch (error) {
    notice(`${action} failed: ${error.message}`, true);
  } finally {
    view.busy.delete(job);
  }
}

document.addEventListener("click", (event) => {
  const button = event.target.closest("button");
  if (!button) return;
  if (button.dataset.action) act(button.dataset.action, button.dataset.job, button);
  if (button.dataset.page) { view.offset = Math.max(0, view.offset + PAGE * Number(button.dataset.page)); }
});
document.addEventListener("toggle", (event) => {
  const key = event.target.dataset && event.target.dataset.key;
  if (!key) return;
  if (event.target.open) view.open.add(key); else view.open.delete(key);
}, true);

poll();
