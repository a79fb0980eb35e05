// An event sent through capture appears on the live page; while paused it waits, counted, until resumed.
import { test, before, after } from "node:test";
import { randomUUID } from "node:crypto";
import { launch, login, screenshot, sendEvents, assertAccessible, assert, WEB_URL } from "./support.mjs";

let browser, context;
before(async () => ({ browser, context } = await launch()));
after(async () => browser?.close());

const event = (name) => ({ event: name, distinct_id: `live-${randomUUID()}`, uuid: randomUUID(), properties: { $browser: "Chrome" } });

test("new events arrive as they land, and pause holds them back", async () => {
  const page = await context.newPage();
  await login(page);
  await page.goto(`${WEB_URL}/live`);
  await page.getByText(/connected/i).first().waitFor();

  const first = event("live_check");
  await sendEvents([first]);
  const item = page.locator(`[data-testid="live-events"] li[data-uuid="${first.uuid}"]`);
  await item.waitFor({ timeout: 60_000 });
  assert.match(await item.textContent(), /live_check/);
  assert.match(await item.textContent(), new RegExp(first.distinct_id));
  await screenshot(page, "live");
  await assertAccessible(page, "live");

  await page.click('[data-testid="live-pause"]');
  await page.getByRole("button", { name: "Resume" }).waitFor();
  const second = event("live_check");
  await sendEvents([second]);
  await page.getByText(/1 new/).waitFor({ timeout: 60_000 });
  assert.equal(await page.locator(`li[data-uuid="${second.uuid}"]`).count(), 0);
  await page.click('[data-testid="live-pause"]');
  await page.locator(`[data-testid="live-events"] li[data-uuid="${second.uuid}"]`).waitFor();
  const order = await page.locator('[data-testid="live-events"] li').evaluateAll((items) => items.map((li) => li.dataset.uuid));
  assert.ok(order.indexOf(second.uuid) < order.indexOf(first.uuid), "newest first");
});

test("the event filter shows only that event", async () => {
  const page = await context.newPage();
  await login(page);
  await page.goto(`${WEB_URL}/live`);
  await page.getByText(/connected/i).first().waitFor();
  await page.selectOption('select[name="event"]', "signed_up");
  await page.getByText(/connected/i).first().waitFor();
  const other = event("live_check");
  const wanted = event("signed_up");
  await sendEvents([other, wanted]);
  await page.locator(`li[data-uuid="${wanted.uuid}"]`).waitFor({ timeout: 60_000 });
  assert.equal(await page.locator(`li[data-uuid="${other.uuid}"]`).count(), 0);
});
