// ExperimentHub dashboard: plain JavaScript, no build step, talks only to the serving host.
"use strict";
const PREFIX = document.body.dataset.prefix;
const CSRF = document.querySelector('meta[name="csrf-token"]').content;
const MAX_POINTS = 2000; // the live chart keeps a bounded window

async function api(path, options = {}) {
  const headers = Object.assign({ Accept: "application/json" }, options.headers || {});
  if (options.method && options.method !== "GET") headers["X-CSRF-Token"] = CSRF;
  const response = await fetch(path, Object.assign({}, options, { headers, credentials: "same-origin" }));
  if (response.status === 401) { window.location.assign(PREFIX + "/login"); throw new Error("login needed"); }
  const body = response.status === 204 ? null : await response.json();
  if (!response.ok) throw new Error((body && body.error && body.error.message) || response.statusText);
  return body;
}

function pad(n) { return String(n).padStart(2, "0"); }
function fmtTime(value) {
  if (value === null || value === undefined || value === "") return "–";
  const d = typeof value === "number" ? new Date(value) : new Date(value);
  if (isNaN(d)) return String(value);
  return `${d.getUTCFullYear()}-${pad(d.getUTCMonth() + 1)}-${pad(d.getUTCDate())} ` +
         `${pad(d.getUTCHours())}:${pad(d.getUTCMinutes())}:${pad(d.getUTCSeconds())} UTC`;
}
function fmtNum(value, digits = 3) {
  return value === null || value === undefined || Number.isNaN(value) ? "–" : Number(value).toPrecision(digits);
}
function el(tag, text, cls) {
  const node = document.createElement(tag);
  if (text !== undefined && text !== null) node.textContent = String(text);
  if (cls) node.className = cls;
  return node;
}
function row(cells) {
  const tr = document.createElement("tr");
  for (const cell of cells) tr.appendChild(cell instanceof Node ? cell : el("td", cell));
  return tr;
}
function fill(tbody, rows, empty, span) {
  tbody.replaceChildren(...(rows.length ? rows : [row([Object.assign(el("td", empty, "muted"), { colSpan: span })])]));
}
function state(text, kind) { return el("span", text, "state-" + kind); }
function every(ms, task) {
  const run = () => task().catch((err) => console.warn("dashboard:", err.message)).finally(() => setTimeout(run, ms));
  run();
}
function tick() { document.getElementById("clock").textContent = fmtTime(Date.now()); }

// ---- overview -------------------------------------------------------------------------------------------------
async function refreshOverview() {
  const data = await api(`${PREFIX}/api/overview`);
  const strip = document.getElementById("health");
  strip.replaceChildren(...Object.entries(data.health).map(([type, entry]) => {
    const pill = el("span", "", "pill");
    pill.appendChild(state(`${type}: ${entry.healthy ? "healthy" : "unhealthy"}`, entry.healthy ? "ok" : "bad"));
    if (!entry.healthy && entry.reason) pill.title = entry.reason;
    return pill;
  }));
  if (!Object.keys(data.health).length) strip.replaceChildren(el("span", "no plugins", "pill muted"));
  const rows = data.experiments.map((exp) => {
    const link = el("td"); const a = el("a", exp.name); a.href = `${PREFIX}/experiments/${encodeURIComponent(exp.name)}`;
    link.appendChild(a);
    const last = exp.last_training;
    const live = exp.live;
    const scorer = el("td");
    scorer.appendChild(!live ? el("span", "never ran", "muted") :
      live.running ? state("running", "ok") : state(`stopped (last seen ${fmtTime(live.updated)})`, "warn"));
    const alarm = el("td", live ? fmtNum(live.alarm_rate) : "–", "num");
    if (live && live.running && live.alarm_rate > 0) alarm.prepend(state("", "bad"));
    return row([
      link, exp.type, exp.champion ? `v${exp.champion}` : el("td", "none", "state-warn"),
      last ? `${last.status.toLowerCase()} · v${last.version || "?"} · ${fmtTime(last.started)}` : "–",
      scorer, el("td", live && live.running ? fmtNum(live.rate) : "–", "num"), alarm,
      el("td", live && live.running ? fmtNum(live.lag, 3) : "–", "num"), live ? `v${live.served_version}` : "–",
    ]);
  });
  fill(document.querySelector("#experiments tbody"), rows, "no experiments yet: create one with the CLI or the API", 9);
}

// ---- experiment -----------------------------------------------------------------------------------------------
const live = { after: 0, points: [], kind: null };

function liveTraces() {
  const t = live.points.map((p) => p.t);
  if (live.kind === "time_series") {
    const anomalies = live.points.filter((p) => p.anomaly);
    const traces = [
      { x: t, y: live.points.map((p) => p.upper), name: "interval (upper)", mode: "lines", line: { width: 0 }, showlegend: false },
      { x: t, y: live.points.map((p) => p.lower), name: "interval", mode: "lines", line: { width: 0 }, fill: "tonexty",
        fillcolor: "rgba(31,119,180,0.18)" },
      { x: t, y: live.points.map((p) => p.forecast), name: "forecast", mode: "lines", line: { color: "#1f77b4", dash: "dot" } },
      { x: t, y: live.points.map((p) => p.actual), name: "actual", mode: "lines", line: { color: "#222" } },
      { x: anomalies.map((p) => p.t), y: anomalies.map((p) => p.actual), name: "anomaly", mode: "markers+text",
        text: anomalies.map(() => "ANOMALY"), textposition: "top center",
        marker: { symbol: "x", size: 10, color: "#b3261e" } },
    ];
    if (live.horizon && live.horizon.length) {
      traces.push({ x: live.horizon.map((p) => p.t), y: live.horizon.map((p) => p.forecast), name: "next horizon",
        mode: "lines", line: { color: "#ff7f0e" } });
    }
    return traces;
  }
  const alarms = live.points.filter((p) => p.alarm);
  return [
    { x: t, y: live.points.map((p) => p.score), name: "score", mode: "lines", line: { color: "#1f77b4" } },
    { x: t, y: live.points.map((p) => p.threshold), name: "threshold", mode: "lines", line: { color: "#444", dash: "dash" } },
    { x: alarms.map((p) => p.t), y: alarms.map((p) => p.score), name: "alarm", mode: "markers",
      marker: { symbol: "triangle-up", size: 9, color: "#b3261e" } },
  ];
}

function drawLive() {
  const layout = {
    margin: { l: 60, r: 20, t: 10, b: 45 }, legend: { orientation: "h" },
    xaxis: { title: { text: "time (UTC)" } },
    yaxis: { title: { text: live.kind === "time_series" ? live.target || "value" : "anomaly score" },
             type: live.kind === "time_series" ? "linear" : "log" },
  };
  Plotly.react("live-chart", liveTraces(), layout, { displaylogo: false, responsive: true });
}

function renderEpisode(episode) {
  const box = document.getElementById("episode");
  if (!episode) { box.replaceChildren(el("p", "no open alarm episode", "muted")); return; }
  const table = el("table");
  table.appendChild(row([el("th", "sensor"), el("th", "share of the episode's score")]));
  for (const [feature, share] of episode.top) table.appendChild(row([feature, el("td", `${(100 * share).toFixed(1)} %`, "num")]));
  box.replaceChildren(state(`ALARM since ${fmtTime(episode.start)} (${episode.rows} rows)`, "bad"), table);
}

async function refreshLive(name) {
  const data = await api(`${PREFIX}/api/experiments/${encodeURIComponent(name)}/live?after=${live.after}`);
  live.kind = data.kind; live.target = data.target; live.horizon = data.horizon;
  if (data.reset) live.points = [];
  live.points.push(...data.points);
  if (live.points.length > MAX_POINTS) live.points.splice(0, live.points.length - MAX_POINTS);
  live.after = data.seq;
  document.getElementById("live-title").textContent =
    data.kind === "time_series" ? "Forecast against actual" : "Score against threshold";
  document.getElementById("live-status").textContent = live.points.length
    ? `${live.points.length} points shown (last ${fmtTime(live.points[live.points.length - 1].t)})`
    : "waiting for predictions…";
  renderEpisode(data.episode);
  const scorer = document.getElementById("scorer");
  const m = data.monitoring;
  scorer.replaceChildren(m
    ? el("p", `${m.running ? "running" : "stopped"} · v${m.served_version} · ${fmtNum(m.rate)} rows/s · ` +
              `alarm rate ${fmtNum(m.alarm_rate)} · lag ${fmtNum(m.lag)} · ${fmtTime(m.updated)}`)
    : el("p", "no monitoring data yet", "muted"));
  drawLive();
}

async function promote(name, version) {
  if (!window.confirm(`Make version ${version} the champion of ${name}? It will serve every prediction.`)) return;
  await api(`/experiments/${encodeURIComponent(name)}/versions/${version}/promote`, { method: "POST" });
  await refreshExperiment(name);
}

let shownFigures = "";
async function refreshExperiment(name) {
  const data = await api(`${PREFIX}/api/experiments/${encodeURIComponent(name)}`);
  document.getElementById("type").textContent = `· ${data.type}`;
  const rows = data.versions.map((v) => {
    const label = el("td", `v${v.version}`, v.champion ? "champion" : "");
    const verdict = el("td");
    verdict.appendChild(state(v.promoted ? "validated" : "not validated", v.promoted ? "ok" : "warn"));
    if (v.reason) verdict.appendChild(el("div", v.reason, "muted"));
    const metrics = Object.entries(v.metrics).map(([k, x]) => `${k} ${fmtNum(x)}`).join(" · ");
    const action = el("td");
    if (!v.champion) {
      const button = el("button", "Promote");
      button.addEventListener("click", () => promote(name, v.version).catch((err) => window.alert(err.message)));
      action.appendChild(button);
    } else action.appendChild(el("span", "in service", "muted"));
    return row([label, fmtTime(v.created), verdict, metrics || "–", el("td", v.run_id, "id"), action]);
  });
  fill(document.querySelector("#versions tbody"), rows, "no versions yet: train the experiment", 6);
  const events = data.events || [];
  document.getElementById("events-panel").hidden = events.length === 0;
  document.querySelector("#events tbody").replaceChildren(...events.map((e) =>
    row([fmtTime(e.time), e.kind, (e.features || []).join(", "), `${e.statistic || ""} ${fmtNum(e.value)} > ${fmtNum(e.threshold)}`, e.action || "–"])));
  const key = `${data.champion}:${data.figures.join(",")}`;
  if (key !== shownFigures) {
    shownFigures = key;
    const box = document.getElementById("figures");
    box.replaceChildren();
    if (!data.figures.length) box.appendChild(el("p", "no stored figures (no champion yet)", "muted"));
    for (const figure of data.figures) {
      const holder = el("div", null, "figure card"); box.appendChild(holder);
      api(`/experiments/${encodeURIComponent(name)}/figures/${encodeURIComponent(figure)}`)
        .then((fig) => Plotly.newPlot(holder, fig.data, fig.layout, { displaylogo: false, responsive: true }))
        .catch((err) => holder.replaceChildren(el("p", `${figure}: ${err.message}`, "error")));
    }
  }
}

// ---- jobs -----------------------------------------------------------------------------------------------------
async function refreshJobs() {
  const jobs = await api(`${PREFIX}/api/jobs`);
  const rows = jobs.map((j) => {
    const link = el("td"); const a = el("a", j.experiment); a.href = `${PREFIX}/experiments/${encodeURIComponent(j.experiment)}`;
    link.appendChild(a);
    const kind = j.status === "FINISHED" ? "ok" : j.status === "RUNNING" ? "warn" : "bad";
    const status = el("td"); status.appendChild(state(j.status.toLowerCase(), kind));
    return row([fmtTime(j.started), link, status,
      el("td", j.job_id || "direct", "id"), j.version ? `v${j.version}` : "–", j.promoted ? "yes" : "no", el("td", j.run_id, "id")]);
  });
  fill(document.querySelector("#jobs tbody"), rows, "no trainings yet", 7);
}

tick(); setInterval(tick, 1000);
const page = document.body.dataset.page;
if (page === "overview") every(3000, refreshOverview);
if (page === "jobs") every(5000, refreshJobs);
if (page === "experiment") {
  const name = document.getElementById("title").dataset.name;
  every(10000, () => refreshExperiment(name));
  every(1500, () => refreshLive(name));
}
