import { test, before, after } from "node:test";
import { launch, login, screenshot, assertAccessible, assert, WEB_URL, EMPTY_API_KEY, TOKEN } from "./support.mjs";

let browser, context;
before(async () => ({ browser, context } = await launch()));
after(async () => browser?.close());

test("a project with no events says how to send the first one with each SDK", async () => {
  const page = await context.newPage();
  await login(page, EMPTY_API_KEY);
  await page.goto(`${WEB_URL}/insights/trends`);
  const empty = page.locator('[data-testid="empty-state"]');
  await empty.waitFor();
  const text = await empty.textContent();
  assert.match(text, /browser-empty-token/);
  assert.doesNotMatch(text, new RegExp(TOKEN), "the other project's token");
  assert.match(text, /posthog/i);
  assert.match(text, /amplitude/i);
  assert.match(text, /\/2\/httpapi/);
  await screenshot(page, "empty");
  await assertAccessible(page, "empty state");
});
