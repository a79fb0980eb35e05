// Save an insight, put it on a new dashboard, reload: the tile shows the API's numbers; the dashboard is
// stored (the API lists it with its tile).
import { test, before, after } from "node:test";
import {
  launch, login, screenshot, api, insightUrl, expectedTable, shownTable, settled, assertAccessible, assert,
  WEB_URL, DATE_FROM, DATE_TO,
} from "./support.mjs";

let browser, context;
before(async () => ({ browser, context } = await launch()));
after(async () => browser?.close());

async function waitForTiles(name, count) {
  for (let n = 0; n < 100; n++) {
    const dashboard = (await api("/api/dashboards")).dashboards.find((d) => d.name === name);
    if (dashboard?.tiles.length === count) return;
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
  throw new Error(`${name} never got ${count} tiles`);
}

test("a saved insight on a dashboard survives a reload and shows the API's numbers", async () => {
  const page = await context.newPage();
  await login(page);
  const name = `Board ${Date.now()}`;
  await page.goto(`${WEB_URL}/dashboards`);
  await page.fill('input[name="dashboard_name"]', name);
  await page.selectOption('select[name="refresh_seconds"]', "60");
  await page.click('[data-testid="create-dashboard"]');
  await page.getByRole("link", { name }).waitFor();
  await assertAccessible(page, "dashboards");

  const insights = [
    ["trends", { events: [{ event: "$pageview" }, { event: "purchase" }], measure: "totals", interval: "day", date_from: DATE_FROM, date_to: DATE_TO }],
    ["funnels", { steps: [{ event: "$pageview" }, { event: "signed_up" }], window_seconds: 86400, date_from: DATE_FROM, date_to: DATE_TO }],
  ];
  for (const [kind, request] of insights) {
    await page.goto(insightUrl(kind, request));
    await settled(page);
    await page.fill('input[name="insight_name"]', `${kind} of ${name}`);
    await page.click('[data-testid="save-insight"]');
    await page.getByText(`${kind} of ${name}`).first().waitFor();
    const dashboard = page.locator('select[name="dashboard"]');
    const option = dashboard.locator("option", { hasText: name });
    await dashboard.selectOption(await option.getAttribute("value"));
    await page.click('[data-testid="add-to-dashboard"]');
    await waitForTiles(name, insights.findIndex(([k]) => k === kind) + 1);
  }

  const stored = (await api("/api/dashboards")).dashboards.find((d) => d.name === name);
  assert.equal(stored.refresh_seconds, 60);
  assert.deepEqual(stored.tiles.map((t) => t.insight.kind), ["trends", "funnels"]);
  assert.deepEqual(stored.tiles.map((t) => t.insight.query), insights.map(([, r]) => r));

  await page.goto(`${WEB_URL}/dashboards/${stored.id}`);
  await page.reload();
  const tiles = page.locator('[data-testid="dashboard-tile"]');
  await tiles.nth(1).waitFor();
  assert.equal(await tiles.count(), 2);
  await settled(page);
  for (const [n, [kind, request]] of insights.entries()) {
    assert.deepEqual(await shownTable(tiles.nth(n)), expectedTable(kind, await api(`/api/${kind}`, request)));
  }
  await screenshot(page, "dashboard");
  await assertAccessible(page, "dashboard");
});
