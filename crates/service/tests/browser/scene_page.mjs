// Drives the live page's scene features in headless Chromium for `tests/observability.rs`,
// against a service that runs camera 1 (a looping clip) with a scene that has lanes, a zone and
// a count line: waits for the scene drawn over the frame and the line's counts, samples the
// canvas along the line, adds a count line (two clicks) and a zone (corners closed by a double
// click) with the editor and saves them, deletes
// the calibration and adds four pairs whose ground points lie on one line and saves that (the
// service must refuse it), waits for the counts chart's bars, saves screenshots and prints one
// JSON line with what it saw. Usage: node scene_page.mjs BASE_URL SCREENSHOT_PATH
// (the editor's screenshot goes beside it, `-editor` before `.png`).
import { launch, watch } from "./chromium.mjs";

const [base, screenshot] = process.argv.slice(2);
if (!base || !screenshot) {
  console.error("usage: node scene_page.mjs BASE_URL SCREENSHOT_PATH");
  process.exit(64);
}

// Where the new line is clicked, as fractions of the canvas as shown.
const LINE_CLICKS = [[0.25, 0.55], [0.75, 0.55]];
// The corners of a new zone, the last one double-clicked.
const ZONE_CLICKS = [[0.05, 0.7], [0.2, 0.7], [0.2, 0.95], [0.05, 0.95]];
// Four image points (fractions) for calibration pairs whose ground points are collinear.
const CAL_CLICKS = [[0.3, 0.6], [0.7, 0.6], [0.6, 0.85], [0.4, 0.85]];
const LINE_COLOUR = [0xe0, 0x40, 0xfb];

const browser = await launch();
let seen = { problems: [], handled: [] };
const out = {};
try {
  const page = await browser.newPage({ viewport: { width: 1400, height: 1000 } });
  seen = watch(page);
  await page.goto(base);
  await page.waitForSelector("#conn.online", { timeout: 10000 });

  // The declared camera's scene over its frame, then its line counting.
  await page.waitForFunction(() => {
    const c = document.getElementById("canvas").dataset;
    return c.scene === "file" && Number(c.frames || 0) > 0;
  }, null, { timeout: 40000 });
  const view = await (await fetch(`${base}api/cameras/1/scene`)).json();
  out.drawn = await page.evaluate(readCanvas, { line: view.data.scene.lines[0].points, colour: LINE_COLOUR });
  await page.waitForFunction(() => {
    const counts = JSON.parse(document.getElementById("canvas").dataset.lineCounts || "[]");
    return counts.some((l) => l.in + l.out > 0);
  }, null, { timeout: 60000 });
  out.counted = JSON.parse(await page.getAttribute("#canvas", "data-line-counts"));

  // A count line by two clicks, saved.
  await page.click("#edit-scene");
  await page.selectOption("#ed-tool", "line");
  await page.fill("#ed-name", "web-line");
  await clickCanvas(page, LINE_CLICKS);
  await page.waitForFunction(() => document.getElementById("ed-items").innerText.includes("line web-line"));
  // A no-stopping zone: three clicks, and a double click that adds the fourth corner and closes it.
  await page.selectOption("#ed-tool", "zone");
  await page.selectOption("#ed-kind", "no_stopping");
  await page.fill("#ed-name", "web-zone");
  await clickCanvas(page, ZONE_CLICKS.slice(0, 3));
  const box = await page.locator("#canvas").boundingBox();
  const [fx, fy] = ZONE_CLICKS[3];
  await page.mouse.dblclick(box.x + fx * box.width, box.y + fy * box.height);
  await page.waitForFunction(() => document.getElementById("ed-items").innerText.includes("zone web-zone"));
  await page.click("#ed-save");
  await page.waitForSelector("#ed-status[data-state=saved]", { timeout: 10000 });
  out.saved = await page.innerText("#ed-status");
  await page.waitForFunction(() => {
    const c = document.getElementById("canvas").dataset;
    return c.scene === "api" && c.lines === "2";
  }, null, { timeout: 10000 });
  out.afterSave = await page.evaluate(() => ({ ...document.getElementById("canvas").dataset }));
  out.sceneInfo = await page.innerText("#scene-info");
  out.lineClicks = LINE_CLICKS;
  out.zoneClicks = ZONE_CLICKS;

  // A calibration whose ground points lie on one line: refused, the message shown.
  while (await page.$("#ed-items button[data-list=calibration]")) {
    await page.click("#ed-items button[data-list=calibration]");
  }
  await page.selectOption("#ed-tool", "calibration");
  for (const [i, at] of CAL_CLICKS.entries()) {
    await clickCanvas(page, [at]);
    await page.fill("#ed-gx", String(i * 5));
    await page.fill("#ed-gy", "0");
    await page.click("#ed-add-pair");
  }
  out.pairs = await page.locator("#ed-items button[data-list=calibration]").count();
  await page.click("#ed-save");
  await page.waitForSelector("#ed-status[data-state=refused]", { timeout: 10000 });
  out.refused = await page.innerText("#ed-status");
  await page.screenshot({ path: screenshot.replace(/\.png$/, "-editor.png"), fullPage: true });
  await page.click("#edit-scene"); // close the editor: the saved scene is drawn again

  // The counts chart, refreshed every 30 s, shows the crossings once the database has them.
  await page.waitForFunction(
    () => Number(document.getElementById("chart").dataset.bars || 0) > 0,
    null,
    { timeout: 100000 },
  );
  out.chart = await page.evaluate(() => ({ ...document.getElementById("chart").dataset }));
  out.chartNote = await page.innerText("#chart-note");
  out.final = await page.evaluate(() => ({ ...document.getElementById("canvas").dataset }));
  await page.screenshot({ path: screenshot, fullPage: true });
  console.log(JSON.stringify({ ...out, ...seen }));
} catch (e) {
  console.log(JSON.stringify({ failed: String(e), ...out, ...seen }));
  process.exitCode = 1;
} finally {
  await browser.close();
}

// Clicks the canvas at each of `fractions` ([fx, fy] of its box as shown).
async function clickCanvas(page, fractions) {
  const box = await page.locator("#canvas").boundingBox();
  for (const [fx, fy] of fractions) {
    await page.mouse.click(box.x + fx * box.width, box.y + fy * box.height);
  }
}

// In the page: the canvas's data attributes, and how many of nine points along `line` (native
// pixels) have the count lines' colour, i.e. the line was drawn where the scene says.
function readCanvas({ line, colour }) {
  const c = document.getElementById("canvas");
  const g = c.getContext("2d");
  const [[ax, ay], [bx, by]] = line;
  let onLine = 0;
  for (let k = 1; k <= 9; k += 1) {
    const t = k / 10;
    const px = g.getImageData(Math.round(ax + t * (bx - ax)), Math.round(ay + t * (by - ay)), 1, 1).data;
    if (colour.every((v, i) => Math.abs(px[i] - v) < 40)) onLine += 1;
  }
  return { ...c.dataset, width: c.width, height: c.height, onLine, samples: 9 };
}
