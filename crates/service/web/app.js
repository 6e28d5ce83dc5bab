// The live page's client. It speaks only the public /ws protocol (SPEC 4) plus GET /api/cameras,
// the health check and the scene and counts API (SPEC 9), so it doubles as a reference client:
// start/stop/subscribe cameras, show each camera's state and counts, draw the selected camera's
// latest frame on a canvas with its scene (lanes, zones, count lines with their counts:
// scene.js) and its boxes, track ids, group outlines and risk badges (objects.js), edit and
// save that scene (editor.js), chart its line counts of the last hours (chart.js), and list
// the alerts as they come. When the service wants a token (ALGO_AUTH_TOKEN), the page asks for
// it (or takes `#token=...` from its URL), keeps it for the browser tab and sends it as a
// bearer header and as `token` on the WebSocket URL. What the canvases show is also in their
// data attributes (boxes, lanes, lines, line counts, bars...), for tests and the curious.
import { fetchScene, drawScene, sceneSummary } from "./scene.js";
import { drawBoxes, drawGroups } from "./objects.js";
import { SceneEditor } from "./editor.js";
import { fetchCounts, binCounts, drawChart, HOURS } from "./chart.js";

const MAX_ALERTS = 100;
const TOKEN_KEY = "traffic-algo-token";
const CHART_REFRESH_MS = 30000;

const $ = (id) => document.getElementById(id);
const state = {
  ws: null,
  backoff: 500,
  cameras: new Map(), // id -> {state, message, counts, watching, result}
  selected: null,
  alerts: [],
  seenAlerts: new Set(),
  framesDrawn: 0,
  needToken: false,
  scene: null, // the selected camera's scene view, null without one
  frame: null, // the selected camera's latest frame: {r, img}
};

function camera(id) {
  if (!state.cameras.has(id)) {
    state.cameras.set(id, { state: "unknown", message: "", counts: null, watching: false, result: null });
  }
  return state.cameras.get(id);
}

function send(type, data) {
  if (state.ws && state.ws.readyState === WebSocket.OPEN) {
    state.ws.send(JSON.stringify({ type, data }));
    return true;
  }
  showError("not connected to the service");
  return false;
}

function showError(text) {
  const box = document.createElement("div");
  box.textContent = text;
  $("errors").prepend(box);
  while ($("errors").children.length > 3) $("errors").lastChild.remove();
  setTimeout(() => box.remove(), 8000);
}

function token() {
  const fromHash = new URLSearchParams(location.hash.slice(1)).get("token");
  if (fromHash) {
    sessionStorage.setItem(TOKEN_KEY, fromHash);
    history.replaceState(null, "", location.pathname);
  }
  return sessionStorage.getItem(TOKEN_KEY) || "";
}

function authHeaders() {
  const t = token();
  return t ? { Authorization: `Bearer ${t}` } : {};
}

function askForToken() {
  state.needToken = true;
  $("token-form").hidden = false;
  setConn("offline", "token needed");
}

$("token-form").addEventListener("submit", (ev) => {
  ev.preventDefault();
  sessionStorage.setItem(TOKEN_KEY, $("token").value.trim());
  $("token-form").hidden = true;
  state.needToken = false;
  if (state.ws && state.ws.readyState <= WebSocket.OPEN) state.ws.close();
  else connect();
  poll();
});

function connect() {
  const scheme = location.protocol === "https:" ? "wss" : "ws";
  const t = token();
  const query = t ? `?token=${encodeURIComponent(t)}` : "";
  const ws = new WebSocket(`${scheme}://${location.host}/ws${query}`);
  state.ws = ws;
  ws.onopen = () => {
    state.backoff = 500;
    setConn("online", "connected");
    // A reconnect resumes watching what was watched before.
    for (const [id, cam] of state.cameras) {
      if (cam.watching) send("subscribe", { cameraId: id });
    }
  };
  ws.onmessage = (ev) => {
    let msg;
    try { msg = JSON.parse(ev.data); } catch { return; }
    handle(msg.type, msg.data || {});
  };
  ws.onclose = () => {
    if (state.ws !== ws) return;
    if (state.needToken) return; // wait for the token form
    setConn("offline", "disconnected");
    setTimeout(connect, state.backoff);
    state.backoff = Math.min(state.backoff * 2, 10000);
  };
}

function setConn(cls, text) {
  const el = $("conn");
  el.className = `badge ${cls}`;
  el.textContent = text;
}

function handle(type, data) {
  switch (type) {
    case "connection_ack":
    case "pong":
      break;
    case "camera_status": {
      const cam = camera(data.cameraId);
      cam.state = data.state;
      cam.message = data.message || "";
      renderCameras();
      break;
    }
    case "detection_result":
      onResult(data);
      break;
    case "stream_stopped": {
      const cam = camera(data.cameraId);
      cam.watching = false;
      cam.state = "offline";
      cam.message = data.reason || "stopped";
      renderCameras();
      break;
    }
    case "error":
      if (data.code === "unauthorized") askForToken();
      showError(`${data.code}: ${data.message}${data.cameraId !== undefined ? ` (camera ${data.cameraId})` : ""}`);
      break;
  }
}

function onResult(r) {
  const cam = camera(r.cameraId);
  cam.result = r;
  cam.watching = true;
  if (cam.state !== "online") cam.state = "online";
  if (r.trafficStats) cam.counts = r.trafficStats;
  for (const d of r.dangerousDrivingResults || []) {
    if (d.isStale || (d.riskLevel !== "medium" && d.riskLevel !== "high")) continue;
    const key = `${r.cameraId}/${d.groupId}/${d.type}/${d.startedAt}/${d.source}`;
    if (state.seenAlerts.has(key)) continue;
    state.seenAlerts.add(key);
    state.alerts.unshift({ cameraId: r.cameraId, at: r.timestamp, ...d });
  }
  state.alerts.length = Math.min(state.alerts.length, MAX_ALERTS);
  if (state.selected === null) select(r.cameraId);
  if (state.selected === r.cameraId) draw(r);
  renderCameras();
  renderAlerts();
}

function select(id) {
  const changed = state.selected !== id;
  state.selected = id;
  const cam = camera(id);
  $("view-title").textContent = `Camera ${id}`;
  $("edit-scene").disabled = false;
  if (changed) {
    state.frame = null;
    state.scene = null;
    if (editor.active) closeEditor();
  }
  if (cam.result) draw(cam.result);
  renderCameras();
  loadScene(id);
  refreshChart();
}

// Decodes the result's frame, then paints it with everything over it.
function draw(r) {
  const done = (img) => {
    if (state.selected !== r.cameraId) return;
    state.frame = { r, img };
    state.framesDrawn += 1;
    paint();
    renderFacts(r);
  };
  if (r.frame) {
    const img = new Image();
    img.onload = () => done(img);
    img.onerror = () => done(null);
    img.src = r.frame;
  } else {
    done(null);
  }
}

// Paints the latest frame, the scene (the editor's draft while editing), the boxes and groups.
function paint() {
  if (!state.frame) return;
  const { r, img } = state.frame;
  const canvas = $("canvas");
  canvas.width = r.imageWidth || (img ? img.naturalWidth : 640);
  canvas.height = r.imageHeight || (img ? img.naturalHeight : 360);
  const g = canvas.getContext("2d");
  if (img) g.drawImage(img, 0, 0, canvas.width, canvas.height);
  else { g.fillStyle = "#222"; g.fillRect(0, 0, canvas.width, canvas.height); }
  const scale = Math.max(1, canvas.width / 960);
  const scene = editor.active ? editor.draft : state.scene && state.scene.scene;
  const lineCounts = (r.trafficStats && r.trafficStats.lines) || [];
  const drawn = drawScene(g, scene, lineCounts, scale);
  drawBoxes(g, r, scale);
  drawGroups(g, r, scale);
  editor.drawPending(g, scale);
  Object.assign(canvas.dataset, {
    boxes: String((r.detectedObjects || []).length),
    groups: String((r.trafficGroups || []).length),
    frames: String(state.framesDrawn),
    camera: String(r.cameraId),
    scene: state.scene ? state.scene.source : "none",
    lanes: String(drawn.lanes),
    zones: String(drawn.zones),
    lines: String(drawn.lines),
    lineCounts: JSON.stringify(drawn.lineCounts),
  });
}

// The selected camera's scene, fetched again (on selection and after a save).
async function loadScene(id) {
  let view = null;
  try {
    view = await fetchScene(id, authHeaders());
  } catch (e) {
    showError(`scene of camera ${id}: ${e.message}`);
  }
  if (state.selected !== id) return;
  state.scene = view;
  $("scene-info").textContent = sceneSummary(view);
  paint();
}

// Sends the editor's draft; {ok: true, view} or {ok: false, msg}.
async function saveScene(draft) {
  const id = state.selected;
  try {
    const res = await fetch(`/api/cameras/${id}/scene`, {
      method: "PUT",
      headers: { ...authHeaders(), "Content-Type": "application/json" },
      body: JSON.stringify(draft),
    });
    const body = await res.json().catch(() => ({}));
    if (!res.ok) return { ok: false, msg: body.msg || `HTTP ${res.status}` };
    await loadScene(id);
    return { ok: true, view: body.data };
  } catch (e) {
    return { ok: false, msg: "cannot reach the service" };
  }
}

const editor = new SceneEditor($("canvas"), { repaint: paint, save: saveScene });

function closeEditor() {
  editor.close();
  $("edit-scene").textContent = "Edit scene";
}

$("edit-scene").addEventListener("click", () => {
  if (editor.active) {
    closeEditor();
    return;
  }
  editor.open(state.scene && state.scene.scene);
  $("edit-scene").textContent = "Close editor";
});

// The selected camera's counts of the last hours, as bars.
async function refreshChart() {
  const id = state.selected;
  if (id === null) return;
  const canvas = $("chart");
  let answer;
  try {
    answer = await fetchCounts(id, authHeaders(), Date.now());
  } catch (e) {
    answer = { note: "Counts unavailable: the service cannot be reached." };
  }
  if (state.selected !== id) return;
  const note = answer.note || (answer.rows.length === 0 ? `No line counts in the last ${HOURS} h.` : "");
  $("chart-note").textContent = note;
  const binned = binCounts(answer.rows || [], Date.now(), answer.bin || 900);
  const { bars, total } = drawChart(canvas, binned);
  Object.assign(canvas.dataset, {
    camera: String(id),
    rows: String((answer.rows || []).length),
    bars: String(bars),
    total: String(total),
    slot: String(answer.bin || ""),
    lines: binned.names.join(","),
    state: answer.note ? "unavailable" : answer.rows.length === 0 ? "empty" : "ok",
  });
}

function renderFacts(r) {
  const facts = {
    Time: r.timestamp,
    Objects: (r.detectedObjects || []).length,
    Groups: (r.trafficGroups || []).length,
    "Max risk": r.maxRiskLevel,
    "Process time": `${((r.processTime || 0) * 1000).toFixed(0)} ms`,
    "Vehicles/min": r.trafficStats ? r.trafficStats.vehiclesPerMinute : "-",
    "Persons/min": r.trafficStats ? r.trafficStats.personsPerMinute : "-",
    Congestion: r.trafficStats ? r.trafficStats.congestionLevel : "-",
    LLM: r.llmModel ? `${r.llmModel} (${(r.llmLatency || 0).toFixed(1)} s)` : "rules only",
  };
  const dl = $("facts");
  dl.replaceChildren();
  for (const [k, v] of Object.entries(facts)) {
    const dt = document.createElement("dt");
    dt.textContent = k;
    const dd = document.createElement("dd");
    dd.textContent = String(v);
    if (k === "Max risk") dd.className = `level-${v}`;
    dl.append(dt, dd);
  }
}

function renderCameras() {
  const list = $("cameras");
  list.replaceChildren();
  const ids = [...state.cameras.keys()].sort((a, b) => a - b);
  if (ids.length === 0) {
    const li = document.createElement("li");
    li.className = "muted";
    li.textContent = "none yet";
    list.append(li);
    return;
  }
  for (const id of ids) {
    const cam = state.cameras.get(id);
    const li = document.createElement("li");
    li.dataset.camera = String(id);
    if (id === state.selected) li.classList.add("selected");
    const row = document.createElement("div");
    row.className = "row";
    const name = document.createElement("strong");
    name.textContent = `Camera ${id}`;
    const badge = document.createElement("span");
    badge.className = `badge ${cam.state}`;
    badge.textContent = cam.state;
    badge.title = cam.message;
    const button = document.createElement("button");
    if (cam.watching) {
      button.textContent = "Stop";
      button.className = "secondary stop";
      button.onclick = (ev) => { ev.stopPropagation(); send("stop_stream", { cameraId: id }); };
    } else {
      button.textContent = "Watch";
      button.className = "watch";
      button.onclick = (ev) => {
        ev.stopPropagation();
        if (send("subscribe", { cameraId: id })) { cam.watching = true; select(id); }
      };
    }
    row.append(name, badge, button);
    const counts = document.createElement("div");
    counts.className = "counts";
    const c = cam.counts;
    counts.textContent = c
      ? `${c.vehiclesPerMinute} vehicles/min · ${c.personsPerMinute} persons/min · congestion ${c.congestionLevel}`
      : cam.message;
    li.append(row, counts);
    li.onclick = () => select(id);
    list.append(li);
  }
}

function renderAlerts() {
  const list = $("alerts");
  list.replaceChildren();
  if (state.alerts.length === 0) {
    const li = document.createElement("li");
    li.className = "muted";
    li.textContent = "none yet";
    list.append(li);
    return;
  }
  for (const a of state.alerts) {
    const li = document.createElement("li");
    li.className = a.riskLevel;
    const when = (a.at || "").slice(11, 19);
    li.textContent = `${when} camera ${a.cameraId} · group ${a.groupId} · ${a.riskLevel} · ${a.type} (${a.source}): ${a.description}`;
    list.append(li);
  }
}

async function poll() {
  try {
    const res = await fetch("/api/cameras", { headers: authHeaders() });
    if (res.status === 401) {
      askForToken();
      return;
    }
    const body = await res.json();
    for (const c of body.data || []) {
      const cam = camera(c.cameraId);
      cam.state = c.state;
      cam.message = c.message;
      if (c.trafficStats) cam.counts = c.trafficStats;
    }
    // Nothing on screen yet: watch the first running camera (a declared one, say).
    const first = (body.data || [])[0];
    const open = state.ws && state.ws.readyState === WebSocket.OPEN;
    if (open && state.selected === null && first && !camera(first.cameraId).watching) {
      if (send("subscribe", { cameraId: first.cameraId })) {
        camera(first.cameraId).watching = true;
        select(first.cameraId);
      }
    }
    const health = await (await fetch("/api/health/health_check")).json();
    const h = health.data || {};
    $("health").textContent = `${h.status} · v${h.version} · ${h.mode} · ${h.activeStreams} camera(s) · LLM ${h.llmEnabled ? "on" : "off"}`;
    renderCameras();
  } catch (e) {
    $("health").textContent = "service unreachable";
  }
}

$("start-form").addEventListener("submit", (ev) => {
  ev.preventDefault();
  const id = Number($("camera-id").value);
  const url = $("camera-url").value.trim();
  if (!Number.isInteger(id) || id < 0 || url === "") {
    showError("give a whole camera id and a URL");
    return;
  }
  if (send("start_stream", { cameraId: id, rtspUrl: url })) {
    const cam = camera(id);
    cam.watching = true;
    cam.state = "connecting";
    select(id);
  }
});

connect();
poll();
setInterval(poll, 3000);
setInterval(refreshChart, CHART_REFRESH_MS);
