// Each insight opened from its shareable URL shows, in its table, exactly the API's numbers for the same request.
import { test, before, after } from "node:test";
import {
  launch, login, screenshot, api, insightUrl, expectedTable, shownTable, settled, assertAccessible, assert,
  API_KEY, DATE_FROM, DATE_TO,
} from "./support.mjs";

let browser, context, page;
before(async () => {
  ({ browser, context } = await launch());
  page = await context.newPage();
  await login(page);
});
after(async () => browser?.close());

const range = { date_from: DATE_FROM, date_to: DATE_TO };
const INSIGHTS = [
  ["trends", "trends", { events: [{ event: "$pageview" }, { event: "signed_up" }], measure: "totals", interval: "day", ...range }],
  ["trends-breakdown", "trends", { events: [{ event: "$pageview" }], measure: "uniques", interval: "day", breakdown: { type: "event", property: "$browser", limit: 5 }, ...range }],
  ["trends-person-filter", "trends", { events: [{ event: "$pageview", filters: [{ type: "person", property: "plan", op: "eq", value: "pro" }] }], measure: "uniques", interval: "hour", ...range }],
  ["trends-sum", "trends", { events: [{ event: "purchase" }], measure: "sum", property: "amount", interval: "day", ...range }],
  ["funnels", "funnels", { steps: [{ event: "$pageview" }, { event: "signed_up" }, { event: "purchase" }], window_seconds: 86400, ...range }],
  ["funnels-breakdown", "funnels", { steps: [{ event: "$pageview" }, { event: "signed_up" }], window_seconds: 86400, breakdown: { type: "event", property: "$browser", limit: 3 }, ...range }],
  ["retention", "retention", { start_event: "$pageview", return_event: "$any", period: "day", periods: 3, ...range }],
  ["paths", "paths", { start_event: "$pageview", steps: 4, limit: 20, ...range }],
  ["sessions", "sessions", { interval: "day", ...range }],
  ["stickiness", "stickiness", { events: [{ event: "$pageview" }, { event: "signed_up" }], interval: "day", ...range }],
  ["lifecycle", "lifecycle", { event: "$pageview", interval: "day", ...range }],
];

for (const [name, kind, request] of INSIGHTS) {
  test(`${name}: the table equals the API's answer`, async () => {
    const answer = await api(`/api/${kind}`, request);
    await page.goto(insightUrl(kind, request));
    await settled(page);
    const expected = expectedTable(kind, answer);
    assert.ok(expected.length > 1, `${name}: the seeded data should give rows`);
    assert.deepEqual(await shownTable(page), expected);
    await page.locator('[data-testid="insight-chart"] canvas, [data-testid="insight-chart"] svg').first().waitFor();
    if (!name.includes("-")) {
      await screenshot(page, `insight-${kind}`);
      await assertAccessible(page, `${kind} insight`);
    }
  });
}

test("running the form puts the request in the URL, and that URL shows the same insight", async () => {
  await page.goto(insightUrl("trends", { events: [{ event: "$pageview" }], measure: "totals", interval: "day", ...range }));
  await settled(page);
  await page.selectOption('select[name="interval"]', "hour");
  await page.click('button[type="submit"]:has-text("Run")');
  await page.waitForURL((url) => JSON.parse(url.searchParams.get("q") ?? "{}").interval === "hour");
  await settled(page);
  const shared = page.url();
  const request = JSON.parse(new URL(shared).searchParams.get("q"));
  assert.equal(request.interval, "hour");
  const expected = expectedTable("trends", await api("/api/trends", request));
  assert.deepEqual(await shownTable(page), expected);

  // a new tab has no key (sessionStorage is per tab): it asks for one, then opens the shared insight
  const other = await context.newPage();
  await other.goto(shared);
  await other.waitForURL((url) => url.pathname === "/login");
  await other.fill('input[name="api_key"]', API_KEY);
  await other.click('button[type="submit"]');
  await other.waitForURL((url) => url.href === shared);
  await settled(other);
  assert.deepEqual(await shownTable(other), expected);
  await other.close();
});

test("an API error is shown as the API worded it", async () => {
  const request = { events: [{ event: "no_such_event" }], measure: "totals", interval: "day", ...range };
  await page.goto(insightUrl("trends", request));
  await page.locator('[role="alert"]', { hasText: "no event named 'no_such_event' in this project" }).waitFor();
});
