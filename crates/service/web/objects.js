// The detections of a detection_result drawn over its frame: each object's box in its class's
// colour with class, track id and confidence, and each traffic group's dashed outline in its
// risk level's colour with its id, level and the types of its alerts. Boxes are in pixels of
// the native frame, the canvas's own size.

const LEVEL_COLOURS = { none: "#4caf50", low: "#c0ca33", medium: "#ff9800", high: "#f44336" };
const CLASS_COLOURS = ["#42a5f5", "#ab47bc", "#26c6da", "#ffca28", "#ec407a", "#8d6e63", "#66bb6a"];

function classColour(name) {
  let h = 0;
  for (const ch of name) h = (h * 31 + ch.charCodeAt(0)) >>> 0;
  return CLASS_COLOURS[h % CLASS_COLOURS.length];
}

export function drawBoxes(g, r, scale) {
  g.lineWidth = 2 * scale;
  g.font = `${Math.round(13 * scale)}px sans-serif`;
  for (const o of r.detectedObjects || []) {
    const [x1, y1, x2, y2] = o.bbox;
    const colour = classColour(o.class);
    g.strokeStyle = colour;
    g.strokeRect(x1, y1, x2 - x1, y2 - y1);
    const label = `${o.class}${o.trackId !== undefined && o.trackId !== null ? " #" + o.trackId : ""} ${(o.confidence * 100).toFixed(0)}%`;
    tag(g, label, x1, y1, colour);
  }
}

export function drawGroups(g, r, scale) {
  g.setLineDash([8 * scale, 5 * scale]);
  for (const grp of r.trafficGroups || []) {
    const [x1, y1, x2, y2] = grp.bbox;
    g.strokeStyle = LEVEL_COLOURS[grp.riskLevel] || "#fff";
    g.strokeRect(x1, y1, x2 - x1, y2 - y1);
  }
  g.setLineDash([]);
  for (const grp of r.trafficGroups || []) {
    const risks = (r.dangerousDrivingResults || []).filter((d) => d.groupId === grp.groupId);
    const names = risks.map((d) => d.type).join(", ");
    const text = `G${grp.groupId} ${grp.riskLevel}${names ? " · " + names : ""}`;
    tag(g, text, grp.bbox[0], grp.bbox[3] + 16 * scale, LEVEL_COLOURS[grp.riskLevel] || "#fff");
  }
}

function tag(g, text, x, y, colour) {
  const w = g.measureText(text).width + 6;
  const h = parseInt(g.font, 10) + 4;
  const top = Math.max(0, y - h);
  g.fillStyle = colour;
  g.fillRect(x, top, w, h);
  g.fillStyle = "#000";
  g.fillText(text, x + 3, top + h - 4);
}
