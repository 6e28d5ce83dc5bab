// Headless Chromium for the browser tests (Debian's /usr/bin/chromium through playwright-core),
// and what a page did wrong: page errors and console errors. A browser logs every HTTP error
// answer to a fetch as a console error ("Failed to load resource"); the answers the live page
// expects and handles (a camera without a scene: 404; a refused scene: 400; counts while the
// database is down or measurement is off: 503, 404) are kept apart as `handled`, so the tests
// can still check them.
import { chromium } from "playwright-core";

const HANDLED = [
  { path: /^\/api\/cameras\/\d+\/scene$/, statuses: [400, 404] },
  { path: /^\/api\/cameras\/\d+\/counts$/, statuses: [404, 503] },
];

export function launch() {
  return chromium.launch({
    executablePath: process.env.CHROMIUM_PATH || "/usr/bin/chromium",
    headless: true,
    args: [
      "--headless",
      "--no-sandbox",
      "--disable-gpu",
      "--disable-background-networking",
      "--disable-component-update",
    ],
  });
}

// Collects `page`'s problems (strings) and handled HTTP errors ({path, status}) as they happen.
export function watch(page) {
  const seen = { problems: [], handled: [] };
  page.on("pageerror", (e) => seen.problems.push(`page error: ${e}`));
  page.on("console", (m) => {
    if (m.type() !== "error") return;
    const handled = handledError(m.text(), m.location().url);
    if (handled) seen.handled.push(handled);
    else seen.problems.push(`console: ${m.text()} (${m.location().url || "page"})`);
  });
  return seen;
}

function handledError(text, url) {
  const status = /Failed to load resource: the server responded with a status of (\d+)/.exec(text);
  if (!status || !url) return null;
  const path = new URL(url).pathname;
  const code = Number(status[1]);
  const known = HANDLED.some((h) => h.path.test(path) && h.statuses.includes(code));
  return known ? { path, status: code } : null;
}
