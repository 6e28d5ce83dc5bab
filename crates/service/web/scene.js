// A camera's scene on the live page: fetches it from GET /api/cameras/{id}/scene (SPEC 9) and
// draws it over the frame: lanes (outline, an arrow along their direction, name), zones (filled
// outline coloured by kind), count lines (the segment, a small arrow towards the side a
// crossing ends on to count "in", and the current bin's in/out counts from the latest
// detection_result). Scene coordinates are pixels of the camera's native frame; the caller
// draws on a canvas of that size (the frame's own), so no coordinate is rescaled here, only
// line widths and fonts.

export const ZONE_COLOURS = {
  crosswalk: "#f5f5f5",
  no_stopping: "#f44336",
  exclude: "#9e9e9e",
  approach: "#42a5f5",
  roi: "#ffeb3b",
};
export const ZONE_KINDS = Object.keys(ZONE_COLOURS);
export const LANE_COLOUR = "#00e5ff";
export const LINE_COLOUR = "#e040fb";

// The scene view of camera `id` ({cameraId, source, scene, reprojectionErrorPx,
// worstErrorPx}), or null when it has none (404). Throws with the service's message otherwise.
export async function fetchScene(id, headers) {
  const res = await fetch(`/api/cameras/${id}/scene`, { headers });
  if (res.status === 404) return null;
  const body = await res.json().catch(() => ({}));
  if (!res.ok) throw new Error(body.msg || `scene: HTTP ${res.status}`);
  return body.data;
}

// Draws `scene` (the scene-file shape) on `g`; `counts` are trafficStats.lines
// ([{name, in, out}]). Returns what was drawn, for the canvas's data attributes.
export function drawScene(g, scene, counts, scale) {
  const drawn = { lanes: 0, zones: 0, lines: 0, lineCounts: [] };
  if (!scene) return drawn;
  g.save();
  g.lineWidth = 2 * scale;
  g.font = `${Math.round(13 * scale)}px sans-serif`;
  for (const zone of scene.zones || []) {
    drawZone(g, zone, scale);
    drawn.zones += 1;
  }
  for (const lane of scene.lanes || []) {
    drawLane(g, lane, scale);
    drawn.lanes += 1;
  }
  const byName = new Map((counts || []).map((c) => [c.name, c]));
  for (const line of scene.lines || []) {
    const c = byName.get(line.name) || { in: 0, out: 0 };
    drawCountLine(g, line, c, scale);
    drawn.lines += 1;
    drawn.lineCounts.push({ name: line.name, in: c.in, out: c.out });
  }
  g.restore();
  return drawn;
}

function drawZone(g, zone, scale) {
  const colour = ZONE_COLOURS[zone.kind] || "#fff";
  polygonPath(g, zone.polygon);
  g.fillStyle = withAlpha(colour, 0.14);
  g.fill();
  g.setLineDash(zone.kind === "roi" ? [10 * scale, 6 * scale] : []);
  g.strokeStyle = colour;
  g.stroke();
  g.setLineDash([]);
  const [x, y] = zone.polygon[0];
  label(g, `${zone.name} (${zone.kind.replace("_", " ")})`, x, y, colour);
}

function drawLane(g, lane, scale) {
  polygonPath(g, lane.polygon);
  g.strokeStyle = LANE_COLOUR;
  g.stroke();
  let at = centroid(lane.polygon);
  if (lane.direction) {
    const [a, b] = lane.direction;
    arrow(g, a, b, LANE_COLOUR, 14 * scale);
    at = [(a[0] + b[0]) / 2, (a[1] + b[1]) / 2];
  }
  const limit = lane.speed_limit_kmh ? ` ${lane.speed_limit_kmh} km/h` : "";
  label(g, `${lane.name}${limit}`, at[0] + 6 * scale, at[1], LANE_COLOUR);
}

function drawCountLine(g, line, counts, scale) {
  const [a, b] = line.points;
  g.strokeStyle = LINE_COLOUR;
  g.lineWidth = 3 * scale;
  g.beginPath();
  g.moveTo(a[0], a[1]);
  g.lineTo(b[0], b[1]);
  g.stroke();
  g.lineWidth = 2 * scale;
  // "in" is crossing from the left of a -> b to its right, as seen on screen (y down): the
  // right-hand normal of (dx, dy) is (-dy, dx).
  const mid = [(a[0] + b[0]) / 2, (a[1] + b[1]) / 2];
  const len = Math.hypot(b[0] - a[0], b[1] - a[1]) || 1;
  const n = [-(b[1] - a[1]) / len, (b[0] - a[0]) / len];
  const reach = 28 * scale;
  const tip = [mid[0] + n[0] * reach, mid[1] + n[1] * reach];
  const tail = [mid[0] - n[0] * reach * 0.4, mid[1] - n[1] * reach * 0.4];
  arrow(g, tail, tip, LINE_COLOUR, 10 * scale);
  label(g, `${line.name} · in ${counts.in} · out ${counts.out}`, a[0], a[1] - 4 * scale, LINE_COLOUR);
}

// An open path through `points`, closed back to the first one.
export function polygonPath(g, points) {
  g.beginPath();
  points.forEach(([x, y], i) => (i === 0 ? g.moveTo(x, y) : g.lineTo(x, y)));
  g.closePath();
}

// A segment from `a` to `b` with a head of `head` pixels at `b`.
export function arrow(g, a, b, colour, head) {
  const angle = Math.atan2(b[1] - a[1], b[0] - a[0]);
  g.strokeStyle = colour;
  g.fillStyle = colour;
  g.beginPath();
  g.moveTo(a[0], a[1]);
  g.lineTo(b[0], b[1]);
  g.stroke();
  g.beginPath();
  g.moveTo(b[0], b[1]);
  g.lineTo(b[0] - head * Math.cos(angle - 0.45), b[1] - head * Math.sin(angle - 0.45));
  g.lineTo(b[0] - head * Math.cos(angle + 0.45), b[1] - head * Math.sin(angle + 0.45));
  g.closePath();
  g.fill();
}

// Text on a dark plate, its bottom-left at (x, y), kept inside the canvas.
export function label(g, text, x, y, colour) {
  const h = parseInt(g.font, 10) + 4;
  const w = g.measureText(text).width + 6;
  const left = Math.min(Math.max(0, x), g.canvas.width - w);
  const top = Math.min(Math.max(0, y - h), g.canvas.height - h);
  g.fillStyle = "rgba(0, 0, 0, 0.65)";
  g.fillRect(left, top, w, h);
  g.fillStyle = colour;
  g.fillText(text, left + 3, top + h - 4);
}

function centroid(points) {
  const sum = points.reduce((s, [x, y]) => [s[0] + x, s[1] + y], [0, 0]);
  return [sum[0] / points.length, sum[1] / points.length];
}

function withAlpha(hex, alpha) {
  const v = parseInt(hex.slice(1), 16);
  return `rgba(${(v >> 16) & 255}, ${(v >> 8) & 255}, ${v & 255}, ${alpha})`;
}

// One line about a scene view: where it came from and how well it is calibrated.
export function sceneSummary(view) {
  if (!view) return "No scene";
  const err = view.reprojectionErrorPx;
  const cal = err === null || err === undefined ? "not calibrated" : `calibrated, reprojection error ${err.toFixed(2)} px`;
  return `Scene (${view.source.replace("_", " ")}): ${cal}`;
}
