// Drives the live page in headless Chromium for `tests/observability.rs`: opens the page, starts
// a camera through the form, waits for a frame with boxes drawn on the canvas and for the
// camera's scene to be asked for, checks the camera list and the drawn pixels, saves a
// screenshot, stops the camera with its button, and prints one JSON line with what it saw.
// Usage: node live_page.mjs BASE_URL CAMERA_URL SCREENSHOT_PATH
// With CAMERA_URL `--declared` it starts nothing: the page must pick up the camera the service
// already runs (declared in its configuration) by itself, and the camera is left running.
import { launch, watch } from "./chromium.mjs";

const [base, cameraUrl, screenshot] = process.argv.slice(2);
if (!base || !cameraUrl || !screenshot) {
  console.error("usage: node live_page.mjs BASE_URL CAMERA_URL SCREENSHOT_PATH");
  process.exit(64);
}

const browser = await launch();
let seen = { problems: [], handled: [] };
try {
  const page = await browser.newPage({ viewport: { width: 1400, height: 900 } });
  seen = watch(page);
  await page.goto(base);
  await page.waitForSelector("#conn.online", { timeout: 10000 });
  const declared = cameraUrl === "--declared";
  const id = declared ? "1" : "7";
  if (!declared) {
    await page.fill("#camera-id", id);
    await page.fill("#camera-url", cameraUrl);
    await page.click("#start");
  }
  await page.waitForFunction(
    () => Number(document.getElementById("canvas").dataset.boxes || 0) > 0,
    null,
    { timeout: 40000 },
  );
  await page.waitForSelector(`#cameras li[data-camera="${id}"] .badge.online`, { timeout: 10000 });
  // The camera's scene was asked for (the answer, scene or none, is written beside the title).
  await page.waitForFunction(() => document.getElementById("scene-info").textContent !== "", null, { timeout: 10000 });
  const shown = await page.evaluate((id) => {
    const c = document.getElementById("canvas");
    const g = c.getContext("2d");
    const px = g.getImageData(0, 0, c.width, c.height).data;
    let lit = 0;
    for (let i = 0; i < px.length; i += 4 * 97) if (px[i] + px[i + 1] + px[i + 2] > 30) lit += 1;
    return {
      boxes: Number(c.dataset.boxes),
      groups: Number(c.dataset.groups),
      frames: Number(c.dataset.frames),
      camera: Number(c.dataset.camera),
      width: c.width,
      height: c.height,
      litSamples: lit,
      samples: Math.floor(px.length / (4 * 97)),
      facts: document.getElementById("facts").innerText,
      sceneInfo: document.getElementById("scene-info").innerText,
      sceneLines: c.dataset.lines,
      cameraText: document.querySelector(`#cameras li[data-camera="${id}"]`).innerText,
    };
  }, id);
  await page.screenshot({ path: screenshot, fullPage: true });
  if (!declared) {
    await page.click(`#cameras li[data-camera="${id}"] button.stop`);
    await page.waitForSelector(`#cameras li[data-camera="${id}"] .badge.offline`, { timeout: 10000 });
  }
  console.log(JSON.stringify({ ...shown, stopped: !declared, ...seen }));
} catch (e) {
  console.log(JSON.stringify({ failed: String(e), ...seen }));
  process.exitCode = 1;
} finally {
  await browser.close();
}
