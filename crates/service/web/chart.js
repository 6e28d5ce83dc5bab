// The live page's counts chart: the selected camera's line crossings over the last hours, from
// GET /api/cameras/{id}/counts (SPEC 9; rows {binStart, line, direction, class, count}), drawn
// as bars on a small canvas: one bar per line and time slot, "in" solid at the bottom and "out"
// lighter on top, classes summed. What was drawn is left in the canvas's data attributes
// (rows, bars, total, slot, lines) so a test can read it; a database that is down (503),
// measurement turned off (404) or no counts yet leave a muted note instead.

export const HOURS = 6;
// The chart's time slots, seconds, shortest first (with the default 15-minute bins, 24 bars in
// 6 hours); it takes the first that is a multiple of the service's bin length.
const SLOTS = [900, 1800, 3600, 7200, 10800, 21600, 43200, 86400];
const PALETTE = ["#e040fb", "#26c6da", "#ffca28", "#66bb6a", "#ff7043", "#42a5f5", "#ec407a"];

// Camera `id`'s counts since HOURS ago in the service's own bins, whose length the answer's
// X-Bin-Seconds header gives: {rows, bin} with `bin` the chart's slot (the first of SLOTS that
// is a multiple of the service's bin length), or {note} saying why there are none.
export async function fetchCounts(id, headers, now) {
  const since = new Date(now - HOURS * 3600 * 1000).toISOString();
  const res = await fetch(`/api/cameras/${id}/counts?since=${encodeURIComponent(since)}`, { headers });
  const body = await res.json().catch(() => ({}));
  if (res.ok) {
    const served = Number(res.headers.get("x-bin-seconds")) || SLOTS[0];
    return { rows: body.data || [], bin: SLOTS.find((s) => s % served === 0) || served };
  }
  if (res.status === 503) return { note: "Counts unavailable: the measurement database is down." };
  if (res.status === 404) return { note: "No counts: measurement is off." };
  return { note: `Counts unavailable: ${body.msg || `HTTP ${res.status}`}` };
}

// Sums `rows` per time slot, line and direction: {slots: [{t, lines: Map(name -> {in, out})}],
// names}.
export function binCounts(rows, now, binSeconds) {
  const slotMs = binSeconds * 1000;
  const first = Math.floor((now - HOURS * 3600 * 1000) / slotMs) * slotMs;
  const n = Math.max(1, Math.ceil((now - first) / slotMs));
  const slots = Array.from({ length: n }, (_, i) => ({ t: first + i * slotMs, lines: new Map() }));
  const names = new Set();
  for (const row of rows) {
    const at = Date.parse(row.binStart);
    if (Number.isNaN(at)) continue;
    const i = Math.min(n - 1, Math.max(0, Math.floor((at - first) / slotMs)));
    const per = slots[i].lines.get(row.line) || { in: 0, out: 0 };
    per[row.direction === "out" ? "out" : "in"] += row.count;
    slots[i].lines.set(row.line, per);
    names.add(row.line);
  }
  return { slots, names: [...names].sort() };
}

// Draws the binned counts on `canvas`; returns {bars, total}.
export function drawChart(canvas, binned) {
  const g = canvas.getContext("2d");
  const { width, height } = canvas;
  const box = { left: 44, right: width - 8, top: 24, bottom: height - 20 };
  g.clearRect(0, 0, width, height);
  g.font = "12px sans-serif";
  const { slots, names } = binned;
  const colour = (name) => PALETTE[names.indexOf(name) % PALETTE.length];
  let max = 1;
  for (const s of slots) for (const c of s.lines.values()) max = Math.max(max, c.in + c.out);
  drawAxes(g, box, slots, max);
  const slotW = (box.right - box.left) / slots.length;
  const barW = Math.max(2, (slotW * 0.8) / Math.max(1, names.length));
  const y = (v) => box.bottom - (v / max) * (box.bottom - box.top);
  let bars = 0;
  let total = 0;
  slots.forEach((s, i) => {
    names.forEach((name, k) => {
      const c = s.lines.get(name);
      if (!c || c.in + c.out === 0) return;
      const x = box.left + i * slotW + slotW * 0.1 + k * barW;
      g.fillStyle = colour(name);
      g.fillRect(x, y(c.in), barW - 1, box.bottom - y(c.in));
      g.globalAlpha = 0.45;
      g.fillRect(x, y(c.in + c.out), barW - 1, y(c.in) - y(c.in + c.out));
      g.globalAlpha = 1;
      bars += 1;
      total += c.in + c.out;
    });
  });
  drawLegend(g, box, names, colour);
  return { bars, total };
}

function drawAxes(g, box, slots, max) {
  g.strokeStyle = "#2c333d";
  g.fillStyle = "#8b94a3";
  g.beginPath();
  g.moveTo(box.left, box.top);
  g.lineTo(box.left, box.bottom);
  g.lineTo(box.right, box.bottom);
  g.moveTo(box.left, box.top);
  g.lineTo(box.right, box.top);
  g.stroke();
  g.textAlign = "right";
  g.fillText(String(max), box.left - 4, box.top + 4);
  g.fillText("0", box.left - 4, box.bottom);
  g.textAlign = "center";
  const slotW = (box.right - box.left) / slots.length;
  slots.forEach((s, i) => {
    const t = new Date(s.t);
    if (t.getMinutes() !== 0) return;
    const hh = String(t.getHours()).padStart(2, "0");
    g.fillText(`${hh}:00`, box.left + i * slotW, box.bottom + 14);
  });
  g.textAlign = "left";
}

function drawLegend(g, box, names, colour) {
  let x = box.left;
  for (const name of names) {
    g.fillStyle = colour(name);
    g.fillRect(x, 6, 10, 10);
    g.fillStyle = "#e6e9ee";
    g.fillText(name, x + 14, 15);
    x += g.measureText(name).width + 30;
  }
  g.fillStyle = "#8b94a3";
  g.fillText("in: solid · out: light", x, 15);
}
