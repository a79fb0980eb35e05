// Cohorts through the pages: a dynamic cohort (a person filter and a behavioural one) and a static one are
// created in the form; their pages show the API's count, version and members; Refresh makes a new version;
// Delete takes the cohort off the list. A 400 is shown in the API's words.
import { test, before, after } from "node:test";
import { launch, login, screenshot, api, settled, assertAccessible, assert, WEB_URL, API_KEY } from "./support.mjs";

let browser, context;
before(async () => ({ browser, context } = await launch()));
after(async () => browser?.close());

async function post(path, body) {
  const response = await fetch(`${WEB_URL}${path}`, {
    method: "POST",
    headers: { Authorization: `Bearer ${API_KEY}`, "Content-Type": "application/json" },
    body: JSON.stringify(body),
  });
  return { status: response.status, answer: await response.json() };
}

const text = async (locator) => (await locator.textContent()).trim();

// the cohort page, once loaded: its id (from the URL), facts and every member (Load more until none left)
async function shownCohort(page) {
  await page.waitForURL((url) => /^\/cohorts\/\d+$/.test(url.pathname));
  const id = Number(new URL(page.url()).pathname.split("/").pop());
  await page.locator('[data-testid="cohort-members"]').waitFor();
  await settled(page);
  const more = page.locator('[data-testid="load-more"]');
  for (let n = 0; n < 100 && (await more.count()) > 0; n++) {
    await more.click();
    await settled(page);
  }
  const members = await page.locator('[data-testid="cohort-members"] tbody tr').evaluateAll((rows) =>
    rows.map((r) => ({
      id: r.getAttribute("data-person-id"),
      distinct_ids: [...r.querySelectorAll("a")].map((a) => a.textContent.trim()),
      links: [...r.querySelectorAll("a")].map((a) => a.getAttribute("href")),
    })),
  );
  return {
    id,
    count: await text(page.locator('[data-testid="cohort-count"]')),
    version: await text(page.locator('[data-testid="cohort-version"]')),
    kind: await text(page.locator('[data-testid="cohort-kind"]')),
    members,
  };
}

async function assertMatchesApi(shown) {
  const cohort = await api(`/api/cohorts/${shown.id}`);
  const persons = (await api(`/api/cohorts/${shown.id}/persons?limit=1000`)).persons;
  assert.equal(shown.kind, cohort.kind);
  assert.equal(shown.count, String(cohort.count));
  assert.equal(shown.version, String(cohort.version));
  assert.equal(persons.length, cohort.count);
  assert.deepEqual(
    shown.members.map(({ id, distinct_ids }) => ({ id, distinct_ids })),
    persons.map((p) => ({ id: p.id, distinct_ids: p.distinct_ids })),
  );
  for (const m of shown.members) assert.deepEqual(m.links, m.distinct_ids.map((d) => `/persons/${encodeURIComponent(d)}`));
  return { cohort, persons };
}

test("a dynamic cohort made in the form shows the API's count and members; a 400 is shown as worded", async () => {
  const page = await context.newPage();
  await login(page);
  await page.goto(`${WEB_URL}/cohorts`);
  await settled(page);
  const name = `Pro viewers ${Date.now()}`;
  await page.fill('input[name="cohort_name"]', name);

  // no filters: the API's own words
  await page.click('[data-testid="create-cohort"]');
  const refused = await post("/api/cohorts", { name, kind: "dynamic", match: "all", filters: [] });
  assert.equal(refused.status, 400);
  const alert = page.locator('form [role="alert"]');
  await alert.waitFor();
  assert.equal(await text(alert), refused.answer.detail);

  await page.getByRole("button", { name: "Add filter", exact: true }).click();
  await page.locator('select[name="filter_property"] option[value="plan"]').waitFor({ state: "attached" });
  await page.selectOption('select[name="filter_property"]', "plan");
  await page.selectOption('select[name="filter_op"]', "eq");
  await page.fill('input[name="filter_value"]', "pro");
  await page.getByRole("button", { name: "Add behaviour filter" }).click();
  await page.selectOption('select[name="behavior_event"]', "$pageview");
  await page.fill('input[name="behavior_min_count"]', "1");
  await page.fill('input[name="behavior_days"]', "30");
  await assertAccessible(page, "new cohort form");
  await page.click('[data-testid="create-cohort"]');

  const shown = await shownCohort(page);
  const { cohort, persons } = await assertMatchesApi(shown);
  assert.equal(cohort.name, name);
  assert.equal(cohort.match, "all");
  assert.deepEqual(cohort.filters, [
    { type: "person", property: "plan", op: "eq", value: "pro" },
    { type: "behavioral", event: "$pageview", did: true, min_count: 1, days: 30 },
  ]);
  assert.ok(cohort.count > 0, "the seeded pro persons who viewed pages");
  for (const p of persons) assert.equal(p.properties.plan, "pro");
  await screenshot(page, "cohort");
  await assertAccessible(page, "cohort");

  // the list shows it as the API has it
  await page.getByRole("link", { name: "← Cohorts" }).click();
  const row = page.locator(`[data-testid="cohorts-table"] tr[data-cohort-id="${cohort.id}"]`);
  await row.waitFor();
  const cells = await row.locator("th, td").allTextContents();
  assert.deepEqual(cells.slice(0, 4).map((c) => c.trim()), [name, "dynamic", String(cohort.count), String(cohort.version)]);
  assert.equal(await row.locator("a").getAttribute("href"), `/cohorts/${cohort.id}`);
  await screenshot(page, "cohorts");
  await assertAccessible(page, "cohorts");
});

test("a static cohort of two distinct ids; Refresh makes a new version; Delete takes it off the list", async () => {
  const page = await context.newPage();
  await login(page);
  await page.goto(`${WEB_URL}/cohorts`);
  await settled(page);
  const name = `Two users ${Date.now()}`;
  await page.fill('input[name="cohort_name"]', name);
  await page.selectOption('select[name="cohort_kind"]', "static");
  await page.fill('textarea[name="distinct_ids"]', "user-01\n\n  user-02  \nuser-01\n");
  await page.click('[data-testid="create-cohort"]');

  const shown = await shownCohort(page);
  const { cohort } = await assertMatchesApi(shown);
  assert.equal(cohort.kind, "static");
  assert.equal(cohort.distinct_ids_count, 2);
  assert.equal(cohort.count, 2);
  assert.equal(cohort.unmatched, 0);
  assert.equal(await text(page.locator('[data-testid="cohort-unmatched"]')), "0");
  assert.deepEqual(shown.members.flatMap((m) => m.distinct_ids).sort(), ["user-01", "user-02"]);

  await page.click('[data-testid="cohort-refresh"]');
  const next = String(cohort.version + 1);
  await page.waitForFunction(
    (v) => document.querySelector('[data-testid="cohort-version"]')?.textContent.trim() === v,
    next,
  );
  await page.locator('[data-testid="cohort-message"]').waitFor();
  const refreshed = await api(`/api/cohorts/${cohort.id}`);
  assert.equal(refreshed.version, cohort.version + 1);
  assert.equal(await text(page.locator('[data-testid="cohort-count"]')), String(refreshed.count));
  await settled(page);
  await assertAccessible(page, "static cohort");

  page.once("dialog", (dialog) => dialog.accept());
  await page.click('[data-testid="cohort-delete"]');
  await page.waitForURL((url) => url.pathname === "/cohorts");
  await settled(page);
  assert.equal(await page.locator(`a[href="/cohorts/${cohort.id}"]`).count(), 0);
  const listed = (await api("/api/cohorts")).cohorts.map((c) => c.id);
  assert.ok(!listed.includes(cohort.id), `cohort ${cohort.id} is still listed`);
});

test("a cohort of more members than a page: Load more shows them all, as the API pages them", async () => {
  const created = await post("/api/cohorts", {
    name: `Viewers ${Date.now()}`,
    kind: "dynamic",
    filters: [{ type: "behavioral", event: "$pageview", days: 30 }],
  });
  assert.equal(created.status, 201, JSON.stringify(created.answer));
  const page = await context.newPage();
  await login(page);
  await page.goto(`${WEB_URL}/cohorts/${created.answer.id}`);
  await page.locator('[data-testid="cohort-members"]').waitFor();
  await settled(page);
  assert.ok(created.answer.count > 25, `${created.answer.count} members: fewer than a page`);
  assert.equal(await page.locator('[data-testid="cohort-members"] tbody tr').count(), 25);
  assert.equal(await page.locator('[data-testid="load-more"]').count(), 1);
  const { cohort } = await assertMatchesApi(await shownCohort(page));
  assert.equal(cohort.count, created.answer.count);
  const deleted = await fetch(`${WEB_URL}/api/cohorts/${cohort.id}`, { method: "DELETE", headers: { Authorization: `Bearer ${API_KEY}` } });
  assert.equal(deleted.status, 204);
});
