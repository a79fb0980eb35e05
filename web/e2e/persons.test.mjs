import { test, before, after } from "node:test";
import { launch, login, screenshot, api, assertAccessible, assert, WEB_URL } from "./support.mjs";

let browser, context;
before(async () => ({ browser, context } = await launch()));
after(async () => browser?.close());

test("search finds a person by distinct id, and the person page shows what the API holds", async () => {
  const page = await context.newPage();
  await login(page);
  await page.goto(`${WEB_URL}/persons`);
  await page.fill('input[name="search"]', "user-07");
  await page.keyboard.press("Enter");
  const link = page.locator('[data-testid="persons-table"] a[href="/persons/user-07"]');
  await link.waitFor();
  await screenshot(page, "persons");
  await assertAccessible(page, "persons");
  await link.click();
  await page.waitForURL((url) => url.pathname === "/persons/user-07");

  const person = await api("/api/persons/user-07?limit=100");
  const properties = page.locator('[data-testid="person-properties"]');
  await properties.waitFor();
  for (const [key, value] of Object.entries(person.properties)) {
    const row = properties.locator("tr", { has: page.locator("th", { hasText: key }) });
    assert.match(await row.textContent(), new RegExp(String(typeof value === "string" ? value : JSON.stringify(value)).replace(/[.*+?^${}()|[\]\\]/g, "\\$&")));
  }
  const ids = await page.locator('[data-testid="person-distinct-ids"] li').allTextContents();
  assert.deepEqual(ids.map((t) => t.trim()), person.distinct_ids);

  const events = page.locator('[data-testid="person-events"] [data-uuid], [data-testid="person-events"] li, [data-testid="person-events"] tbody tr');
  await events.first().waitFor();
  await screenshot(page, "person");
  await assertAccessible(page, "person");
});

test("a person by property value, and the timeline pages with Load more", async () => {
  const page = await context.newPage();
  await login(page);
  await page.goto(`${WEB_URL}/persons`);
  await page.fill('input[name="search"]', "user-03@shop.example");
  await page.keyboard.press("Enter");
  await page.locator('[data-testid="persons-table"] a[href="/persons/user-03"]').waitFor();
  const rows = await page.locator('[data-testid="persons-table"] tbody tr').count();
  assert.equal(rows, 1);

  const everything = (await api("/api/persons/user-03?limit=1000")).events.length;
  await page.goto(`${WEB_URL}/persons/user-03`);
  const timeline = page.locator('[data-testid="person-events"]');
  await timeline.waitFor();
  const more = page.locator('[data-testid="load-more"]');
  for (let n = 0; n < 50 && (await more.count()) > 0 && (await more.isVisible()); n++) {
    await more.click();
    await page.waitForTimeout(300);
  }
  const shown = await timeline.locator(":scope > li, tbody > tr").count();
  assert.equal(shown, everything);
});
