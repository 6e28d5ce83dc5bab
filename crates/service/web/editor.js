// The live page's scene editor: with "Edit scene" on, the selected camera's scene is copied into
// a draft that the overlay shows instead of the saved one. The user picks what to add (a count
// line: two clicks; a zone of some kind: its corners, closed with Finish or a double click; a
// lane: its corners, then two clicks for its direction of travel; a calibration pair: a click
// on the road and the ground X, Y in metres typed in), names it, deletes what is wrong, and
// saves the draft with PUT /api/cameras/{id}/scene (SPEC 9, the scene-file shape). The answer
// is shown: the calibration's reprojection error when the service took it, its message (which
// names the bad field) when it refused it. Clicks are turned into pixels of the native frame,
// the canvas's own size, whatever size the canvas is shown at. Fields the editor does not show
// (detect_interval, speed limits) are kept as they were.

import { ZONE_KINDS, ZONE_COLOURS, LANE_COLOUR, LINE_COLOUR, label, polygonPath } from "./scene.js";

const HINTS = {
  line: "Click the line's first point, then its second. Crossing from the arrow's left to its right counts as in.",
  zone: "Click the zone's corners, then Finish (or double-click) to close it.",
  lane: "Click the lane's corners, then Finish (or double-click) to close it.",
  direction: "Now click the lane's direction of travel: two points along it (Finish skips it).",
  calibration: "Click a point on the road surface, type where it is on the ground (metres), then Add pair. Four pairs or more.",
};

const $ = (id) => document.getElementById(id);

export class SceneEditor {
  // `canvas`: where the frame is drawn; `repaint()`: redraws it; `save(draft)`: sends the
  // draft, resolving to {ok, view} or {ok: false, msg}.
  constructor(canvas, { repaint, save }) {
    this.canvas = canvas;
    this.repaint = repaint;
    this.save = save;
    this.active = false;
    this.draft = {};
    this.points = []; // clicks of the shape being drawn, native pixels
    this.polygon = null; // a lane's closed polygon while its direction is clicked
    this.imagePoint = null; // a calibration pair's image half, waiting for its ground half
    this.wire();
  }

  wire() {
    for (const kind of ZONE_KINDS) $("ed-kind").append(new Option(kind.replace("_", " "), kind));
    $("ed-tool").addEventListener("change", () => this.resetShape());
    $("ed-finish").addEventListener("click", () => this.finish());
    $("ed-undo").addEventListener("click", () => this.undo());
    $("ed-add-pair").addEventListener("click", () => this.addPair());
    $("ed-save").addEventListener("click", () => this.saveDraft());
    $("ed-items").addEventListener("click", (ev) => this.onDelete(ev));
    this.canvas.addEventListener("click", (ev) => this.onClick(ev));
    this.canvas.addEventListener("dblclick", (ev) => { if (this.active) { ev.preventDefault(); this.finish(); } });
    document.addEventListener("keydown", (ev) => { if (this.active && ev.key === "Escape") this.resetShape(); });
  }

  // Starts editing a copy of `scene` (null: an empty one).
  open(scene) {
    this.active = true;
    this.draft = structuredClone(scene || {});
    this.canvas.classList.add("editing");
    $("editor").hidden = false;
    this.setStatus("", "");
    this.resetShape();
  }

  close() {
    this.active = false;
    this.canvas.classList.remove("editing");
    $("editor").hidden = true;
    this.repaint();
  }

  tool() {
    return $("ed-tool").value;
  }

  resetShape() {
    this.points = [];
    this.polygon = null;
    this.imagePoint = null;
    $("ed-kind-label").hidden = this.tool() !== "zone";
    $("ed-ground").hidden = this.tool() !== "calibration";
    this.update();
  }

  // Where a mouse event is, in pixels of the canvas (the native frame).
  where(ev) {
    const rect = this.canvas.getBoundingClientRect();
    const x = ((ev.clientX - rect.left) * this.canvas.width) / rect.width;
    const y = ((ev.clientY - rect.top) * this.canvas.height) / rect.height;
    return [Math.round(x), Math.round(y)];
  }

  onClick(ev) {
    if (!this.active || ev.detail > 1) return; // the second click of a double click finishes
    const p = this.where(ev);
    const tool = this.tool();
    if (tool === "calibration") {
      this.imagePoint = p;
    } else {
      this.points.push(p);
      if (tool === "line" && this.points.length === 2) this.addLine();
      if (this.polygon && this.points.length === 2) this.addLane(this.points);
    }
    this.update();
  }

  // Closes the polygon being drawn (a zone, or a lane before its direction), or adds a lane
  // without a direction.
  finish() {
    const tool = this.tool();
    if (this.polygon) {
      this.addLane(null);
    } else if ((tool === "zone" || tool === "lane") && this.points.length >= 3) {
      if (tool === "zone") {
        this.add("zones", { name: this.name("zone"), kind: $("ed-kind").value, polygon: this.points });
      } else {
        this.polygon = this.points;
        this.points = [];
      }
    } else {
      this.setStatus("a polygon needs 3 points or more", "refused");
      return;
    }
    this.update();
  }

  undo() {
    if (this.points.length > 0) this.points.pop();
    else if (this.polygon) { this.points = this.polygon; this.polygon = null; }
    else this.imagePoint = null;
    this.update();
  }

  addLine() {
    this.add("lines", { name: this.name("line"), points: this.points });
  }

  addLane(direction) {
    const lane = { name: this.name("lane"), polygon: this.polygon };
    if (direction) lane.direction = direction;
    this.add("lanes", lane);
  }

  add(list, item) {
    (this.draft[list] ||= []).push(item);
    $("ed-name").value = "";
    this.points = [];
    this.polygon = null;
  }

  addPair() {
    const x = Number($("ed-gx").value);
    const y = Number($("ed-gy").value);
    if (!this.imagePoint || $("ed-gx").value === "" || $("ed-gy").value === "" || !Number.isFinite(x) || !Number.isFinite(y)) {
      this.setStatus("click the point on the picture and type its ground X and Y first", "refused");
      return;
    }
    const cal = (this.draft.calibration ||= { image: [], ground: [] });
    cal.image.push(this.imagePoint);
    cal.ground.push([x, y]);
    this.imagePoint = null;
    $("ed-gx").value = "";
    $("ed-gy").value = "";
    this.update();
  }

  // The typed name, or `kind-N` free in the draft.
  name(kind) {
    const typed = $("ed-name").value.trim();
    if (typed) return typed;
    const taken = new Set([...(this.draft.lanes || []), ...(this.draft.zones || []), ...(this.draft.lines || [])].map((i) => i.name));
    let n = 1;
    while (taken.has(`${kind}-${n}`)) n += 1;
    return `${kind}-${n}`;
  }

  onDelete(ev) {
    const button = ev.target.closest("button[data-list]");
    if (!button) return;
    const { list, index } = button.dataset;
    const i = Number(index);
    if (list === "calibration") {
      const cal = this.draft.calibration;
      cal.image.splice(i, 1);
      cal.ground.splice(i, 1);
      if (cal.image.length === 0) delete this.draft.calibration;
    } else {
      this.draft[list].splice(i, 1);
      if (this.draft[list].length === 0) delete this.draft[list];
    }
    this.update();
  }

  async saveDraft() {
    this.setStatus("saving…", "saving");
    const answer = await this.save(this.draft);
    if (!answer.ok) {
      this.setStatus(answer.msg, "refused");
      return;
    }
    const v = answer.view;
    const fit = v.reprojectionErrorPx === null || v.reprojectionErrorPx === undefined
      ? "no calibration"
      : `reprojection error ${v.reprojectionErrorPx.toFixed(2)} px (worst ${v.worstErrorPx.toFixed(2)} px)`;
    this.setStatus(`Saved: ${fit}`, "saved");
    this.draft = structuredClone(v.scene);
    this.update();
  }

  setStatus(text, state) {
    const el = $("ed-status");
    el.textContent = text;
    el.dataset.state = state;
  }

  update() {
    $("ed-hint").textContent = HINTS[this.polygon ? "direction" : this.tool()];
    renderItems(this.draft);
    this.repaint();
  }

  // Draws the shape being drawn and the draft's calibration pairs over the frame.
  drawPending(g, scale) {
    if (!this.active) return;
    g.save();
    g.lineWidth = 2 * scale;
    g.font = `${Math.round(12 * scale)}px sans-serif`;
    const colour = { line: LINE_COLOUR, lane: LANE_COLOUR, zone: ZONE_COLOURS[$("ed-kind").value] }[this.tool()] || "#fff";
    if (this.polygon) {
      g.setLineDash([6 * scale, 4 * scale]);
      g.strokeStyle = LANE_COLOUR;
      polygonPath(g, this.polygon);
      g.stroke();
      g.setLineDash([]);
    }
    drawClicks(g, this.points, colour, scale);
    const cal = this.draft.calibration;
    (cal ? cal.image : []).forEach((p, i) => {
      cross(g, p, "#76ff03", scale);
      label(g, `${i + 1}: ${cal.ground[i][0]}, ${cal.ground[i][1]} m`, p[0] + 6 * scale, p[1] - 4 * scale, "#76ff03");
    });
    if (this.imagePoint) cross(g, this.imagePoint, "#fff", scale);
    g.restore();
  }
}

function drawClicks(g, points, colour, scale) {
  if (points.length === 0) return;
  g.strokeStyle = colour;
  g.fillStyle = colour;
  g.beginPath();
  points.forEach(([x, y], i) => (i === 0 ? g.moveTo(x, y) : g.lineTo(x, y)));
  g.stroke();
  for (const [x, y] of points) {
    g.beginPath();
    g.arc(x, y, 4 * scale, 0, 2 * Math.PI);
    g.fill();
  }
}

function cross(g, [x, y], colour, scale) {
  const r = 7 * scale;
  g.strokeStyle = colour;
  g.beginPath();
  g.moveTo(x - r, y);
  g.lineTo(x + r, y);
  g.moveTo(x, y - r);
  g.lineTo(x, y + r);
  g.stroke();
}

// The draft's items, each with a delete button.
function renderItems(draft) {
  const list = $("ed-items");
  list.replaceChildren();
  const item = (text, listName, index) => {
    const li = document.createElement("li");
    const span = document.createElement("span");
    span.textContent = text;
    const button = document.createElement("button");
    button.type = "button";
    button.className = "secondary delete";
    button.textContent = "✕";
    button.title = "delete";
    button.dataset.list = listName;
    button.dataset.index = String(index);
    li.append(span, button);
    list.append(li);
  };
  (draft.lanes || []).forEach((l, i) => item(`lane ${l.name}${l.direction ? " →" : ""}`, "lanes", i));
  (draft.zones || []).forEach((z, i) => item(`zone ${z.name} (${z.kind.replace("_", " ")})`, "zones", i));
  (draft.lines || []).forEach((l, i) => item(`line ${l.name}`, "lines", i));
  const cal = draft.calibration;
  (cal ? cal.image : []).forEach((p, i) => {
    const [gx, gy] = cal.ground[i] || [];
    item(`calibration ${i + 1}: (${p[0]}, ${p[1]}) px → (${gx}, ${gy}) m`, "calibration", i);
  });
  if (list.children.length === 0) {
    const li = document.createElement("li");
    li.className = "muted";
    li.textContent = "empty scene";
    list.append(li);
  }
}
