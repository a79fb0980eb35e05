// Shared by the browser tests (run by tests/browser/test_web.py, which starts the stack and seeds it):
// Debian's chromium through playwright-core, the API called directly, and the insight tables as the
// contract defines them, built here from the API's answers independently of the app's own code.
import { readFileSync, mkdirSync } from "node:fs";
import { createRequire } from "node:module";
import { join } from "node:path";
import assert from "node:assert/strict";
import { chromium } from "playwright-core";

const env = (name) => {
  const value = process.env[name];
  if (!value) throw new Error(`${name} is not set: run these through tests/browser/test_web.py`);
  return value;
};

export const WEB_URL = env("UA_WEB_URL");
export const CAPTURE_URL = env("UA_CAPTURE_URL");
export const API_KEY = env("UA_API_KEY");
export const EMPTY_API_KEY = env("UA_EMPTY_API_KEY");
export const TOKEN = env("UA_TOKEN");
export const DATE_FROM = env("UA_DATE_FROM");
export const DATE_TO = env("UA_DATE_TO");
const SCREENSHOTS = env("UA_SCREENSHOTS");

export async function launch() {
  const browser = await chromium.launch({ executablePath: env("UA_CHROMIUM"), args: ["--no-sandbox"] });
  const context = await browser.newContext({ viewport: { width: 1280, height: 860 }, acceptDownloads: true });
  return { browser, context };
}

export async function login(page, key = API_KEY) {
  await page.goto(`${WEB_URL}/login`);
  await page.fill('input[name="api_key"]', key);
  await page.click('button[type="submit"]');
  await page.waitForURL((url) => !url.pathname.startsWith("/login"));
}

export async function screenshot(page, name) {
  mkdirSync(SCREENSHOTS, { recursive: true });
  await page.waitForTimeout(1000); // the charts' entry animation
  await page.screenshot({ path: join(SCREENSHOTS, `${name}.png`), fullPage: true });
}

export async function api(path, body, key = API_KEY) {
  const response = await fetch(`${WEB_URL}${path}`, {
    method: body === undefined ? "GET" : "POST",
    headers: { Authorization: `Bearer ${key}`, "Content-Type": "application/json" },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const answer = await response.json();
  assert.equal(response.status, 200, JSON.stringify(answer));
  return answer;
}

export async function sendEvents(events) {
  const response = await fetch(`${CAPTURE_URL}/batch/`, {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ api_key: TOKEN, batch: events }),
  });
  assert.equal(response.status, 200, await response.text());
}

export const insightUrl = (kind, request) =>
  `${WEB_URL}/insights/${kind}?q=${encodeURIComponent(JSON.stringify(request))}`;

// the table of an answer, as the pages must show it: [header cells, ...rows of label and cells]
const cell = (value) => (value === null || value === undefined ? "" : String(value));

export function expectedTable(kind, answer) {
  if (kind === "trends") {
    const labels = answer.series.length ? answer.series[0].labels : [];
    return [
      ["Series", ...labels.map(cell)],
      ...answer.series.map((s) => [
        s.breakdown_value === null ? s.event : `${s.event} · ${s.breakdown_value === "" ? "(none)" : s.breakdown_value}`,
        ...s.values.map(cell),
      ]),
    ];
  }
  if (kind === "funnels") {
    const columns = ["count", "conversion_from_first", "conversion_from_previous", "median_seconds_from_previous"];
    const rows = (steps, prefix) => steps.map((s, n) => [`${prefix}${n + 1}. ${s.event}`, ...columns.map((c) => cell(s[c]))]);
    return [
      ["Step", ...columns],
      ...rows(answer.steps, ""),
      ...(answer.breakdowns ?? []).flatMap((b) => rows(b.steps, `${b.breakdown_value} · `)),
    ];
  }
  if (kind === "retention") {
    const periods = answer.cohorts.length ? answer.cohorts[0].values.length : 0;
    return [
      ["Cohort", "size", ...Array.from({ length: periods }, (_, n) => String(n))],
      ...answer.cohorts.map((c) => [c.date, cell(c.size), ...c.values.map(cell)]),
    ];
  }
  if (kind === "paths") {
    return [["Edge", "value"], ...answer.edges.map((e) => [`${e.source} → ${e.target}`, cell(e.value)])];
  }
  if (kind === "sessions") {
    const measures = ["sessions", "avg_duration_seconds", "bounce_rate"];
    return [["Measure", ...answer.labels.map(cell)], ...measures.map((m) => [m, ...answer[m].map(cell)])];
  }
  if (kind === "stickiness") {
    // as trends without breakdowns: a row per series, a column per number of intervals ("1", "2", ...)
    const labels = answer.series.length ? answer.series[0].labels : [];
    return [["Series", ...labels.map(cell)], ...answer.series.map((s) => [s.event, ...s.values.map(cell)])];
  }
  if (kind === "lifecycle") {
    const statuses = ["new", "returning", "resurrecting", "dormant"];
    return [["Status", ...answer.labels.map(cell)], ...statuses.map((s) => [s, ...answer[s].map(cell)])];
  }
  throw new Error(`unknown kind ${kind}`);
}

// the insight table shown on the page (inside `scope`, a locator or the page), once it has loaded
export async function shownTable(scope) {
  const table = scope.locator('table[data-testid="insight-table"]');
  await table.waitFor();
  return table.evaluate((t) => [
    [...t.querySelectorAll("thead tr:last-child th")].map((c) => c.textContent.trim()),
    ...[...t.querySelectorAll("tbody tr")].map((r) => [...r.querySelectorAll("th, td")].map((c) => c.textContent.trim())),
  ]);
}

export async function settled(page) {
  await page.waitForFunction(() => !document.querySelector('[aria-busy="true"]') && !document.querySelector('[data-testid="loading"]'));
}

// accessibility basics with axe-core: WCAG 2 A and AA rules (labels, contrast, landmarks, names)
const axeSource = readFileSync(createRequire(import.meta.url).resolve("axe-core/axe.min.js"), "utf8");

export async function assertAccessible(page, what) {
  await page.addScriptTag({ content: axeSource });
  const result = await page.evaluate(() =>
    window.axe.run(document, { runOnly: { type: "tag", values: ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa"] } }),
  );
  const found = result.violations.map((v) => `${v.id} (${v.impact}): ${v.help} — ${v.nodes.map((n) => n.target.join(" ")).slice(0, 5).join(", ")}`);
  assert.deepEqual(found, [], `${what}: axe-core found ${found.length} violations`);
}

// keyboard focus is visible: the focused element draws an outline or a box shadow
export async function assertFocusVisible(page, what) {
  await page.keyboard.press("Tab");
  const style = await page.evaluate(() => {
    const el = document.activeElement;
    if (!el || el === document.body) return null;
    const s = getComputedStyle(el);
    return { outline: s.outlineStyle !== "none" && parseFloat(s.outlineWidth) > 0, shadow: s.boxShadow !== "none", tag: el.tagName };
  });
  assert.ok(style, `${what}: Tab focused nothing`);
  assert.ok(style.outline || style.shadow, `${what}: the focused ${style.tag} shows no outline`);
}

export { assert };
