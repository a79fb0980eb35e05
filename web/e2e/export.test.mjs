import { test, before, after } from "node:test";
import { readFile } from "node:fs/promises";
import { launch, login, api, insightUrl, expectedTable, shownTable, settled, assert, DATE_FROM, DATE_TO } from "./support.mjs";

let browser, context;
before(async () => ({ browser, context } = await launch()));
after(async () => browser?.close());

// RFC 4180: fields separated by commas, quoted when they hold a comma, quote or line break
function parseCsv(text) {
  const rows = [];
  let row = [], field = "", quoted = false;
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    if (quoted) {
      if (c === '"' && text[i + 1] === '"') { field += '"'; i++; }
      else if (c === '"') quoted = false;
      else field += c;
    } else if (c === '"') quoted = true;
    else if (c === ",") { row.push(field); field = ""; }
    else if (c === "\r" && text[i + 1] === "\n") { row.push(field); rows.push(row); row = []; field = ""; i++; }
    else field += c;
  }
  if (field || row.length) { row.push(field); rows.push(row); }
  return rows;
}

for (const [kind, request] of [
  ["trends", { events: [{ event: "$pageview" }], measure: "uniques", interval: "day", breakdown: { type: "event", property: "$browser", limit: 5 }, date_from: DATE_FROM, date_to: DATE_TO }],
  ["funnels", { steps: [{ event: "$pageview" }, { event: "signed_up" }], window_seconds: 86400, date_from: DATE_FROM, date_to: DATE_TO }],
]) {
  test(`${kind}: the CSV download holds the table and the API's numbers`, async () => {
    const page = await context.newPage();
    await login(page);
    const answer = await api(`/api/${kind}`, request);
    await page.goto(insightUrl(kind, request));
    await settled(page);
    const [download] = await Promise.all([page.waitForEvent("download"), page.click('[data-testid="export-csv"]')]);
    assert.equal(download.suggestedFilename(), `${kind}.csv`);
    const csv = await readFile(await download.path(), "utf8");
    assert.ok(csv.endsWith("\r\n"));
    assert.deepEqual(parseCsv(csv), expectedTable(kind, answer));
    assert.deepEqual(parseCsv(csv), await shownTable(page));
    await page.close();
  });
}
