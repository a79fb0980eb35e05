import { test, before, after } from "node:test";
import { launch, login, screenshot, assertAccessible, assertFocusVisible, assert, WEB_URL, API_KEY } from "./support.mjs";

let browser, context;
before(async () => ({ browser, context } = await launch()));
after(async () => browser?.close());

test("a wrong key shows the API's own words and stays on the login page", async () => {
  const page = await context.newPage();
  await page.goto(`${WEB_URL}/login`);
  await assertAccessible(page, "login");
  await assertFocusVisible(page, "login");
  await page.fill('input[name="api_key"]', "not-a-key");
  await page.click('button[type="submit"]');
  await assert.doesNotReject(page.locator('[role="alert"]', { hasText: "no project has this API key" }).waitFor());
  assert.equal(new URL(page.url()).pathname, "/login");
  await screenshot(page, "login");
  await page.close();
});

test("a deep link asks for the key, then opens where it pointed; the key stays in the session only", async () => {
  const page = await context.newPage();
  await page.goto(`${WEB_URL}/persons`);
  await page.waitForURL((url) => url.pathname === "/login");
  await page.fill('input[name="api_key"]', API_KEY);
  await page.click('button[type="submit"]');
  await page.waitForURL((url) => url.pathname === "/persons");
  const stored = await page.evaluate(() => ({ session: Object.values(sessionStorage), local: Object.values(localStorage) }));
  assert.ok(stored.session.includes(API_KEY));
  assert.ok(!stored.local.includes(API_KEY), "the key must not outlive the browser session");
  await page.close();
});

test("log out forgets the key", async () => {
  const page = await context.newPage();
  await login(page);
  await page.getByRole("button", { name: /log out/i }).click();
  await page.waitForURL((url) => url.pathname === "/login");
  await page.goto(`${WEB_URL}/insights/trends`);
  await page.waitForURL((url) => url.pathname === "/login");
  await page.close();
});
