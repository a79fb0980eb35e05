// Dev-only stand-in for the query API on 127.0.0.1:8001, for looking at the UI without the stack.
// Run: node dev/mock-api.mjs   (EMPTY=1 for a project with no events). Not part of the app or its build.
import http from "node:http";

const KEY = "secret";
const EMPTY = process.env.EMPTY === "1";
const events = EMPTY ? [] : ["$pageview", "signed_up", "purchase"];
const insights = [];
const dashboards = [];
let nextId = 1;
const now = () => new Date().toISOString();

function days(from, to) {
  const out = [];
  for (let d = new Date(from + "T00:00:00Z"); d <= new Date(to + "T00:00:00Z"); d.setUTCDate(d.getUTCDate() + 1)) out.push(d.toISOString().slice(0, 10));
  return out;
}
const error = (res, status, code, detail) => send(res, status, { type: "error", code, detail });
function send(res, status, body) {
  res.writeHead(status, { "Content-Type": "application/json" });
  res.end(JSON.stringify(body));
}
const withTiles = (d) => ({ ...d, tiles: d.tiles.map((t) => ({ insight_id: t.insight_id, insight: insights.find((i) => i.id === t.insight_id) })) });

const handlers = {
  "GET /api/projects/me": () => ({ id: 1, name: "Demo shop", api_token: "phc_demo_token", api_key: KEY, timezone: "UTC" }),
  "GET /api/definitions": () => ({
    events,
    event_properties: [{ name: "$browser", type: "String" }, { name: "price", type: "Numeric" }],
    person_properties: [{ name: "email", type: "String" }, { name: "plan", type: "String" }],
  }),
  "POST /api/trends": (b) => {
    if (b.date_from > b.date_to) return [400, { type: "error", code: "bad_request", detail: "date_from must not be after date_to" }];
    const labels = days(b.date_from, b.date_to);
    const series = b.events.flatMap((e, k) =>
      (b.breakdown ? ["Chrome", "Firefox, ESR", ""] : [null]).map((bv, j) => ({ event: e.event, breakdown_value: bv, labels, values: labels.map((_, i) => (i * 7 + k * 13 + j * 5) % 23 + (i % 3 ? 0.5 : 0)) })),
    );
    return { series };
  },
  "POST /api/funnels": (b) => ({
    steps: b.steps.map((s, i) => ({ event: s.event, count: 1000 >> i, conversion_from_first: 1 / 2 ** i, conversion_from_previous: i ? 0.5 : 1, median_seconds_from_previous: i ? 95.5 * i : null })),
  }),
  "POST /api/retention": (b) => ({
    cohorts: days(b.date_from, b.date_to).map((date, c) => ({ date, size: 100 + c, values: Array.from({ length: b.periods + 1 }, (_, k) => (k === 0 ? 100 + c : Math.round((100 + c) / (k + 1.5))) ) })),
  }),
  "POST /api/sessions": (b) => {
    const labels = days(b.date_from, b.date_to);
    return { labels, sessions: labels.map((_, i) => 40 + i * 3), avg_duration_seconds: labels.map((_, i) => 120.5 + i), bounce_rate: labels.map((_, i) => 0.3 + i / 100) };
  },
  "POST /api/paths": () => ({
    edges: [
      { source: "1_$pageview", target: "2_signed_up", value: 40 },
      { source: "1_$pageview", target: "2_$pageview", value: 80 },
      { source: "2_signed_up", target: "3_purchase", value: 12 },
      { source: "2_$pageview", target: "3_purchase", value: 20 },
    ],
  }),
  "POST /api/stickiness": (b) => {
    const labels = days(b.date_from, b.date_to).map((_, i) => String(i + 1));
    return { series: b.events.map((e, k) => ({ event: e.event, labels, values: labels.map((_, i) => Math.max(0, 30 - i * 6 - k * 4)) })) };
  },
  "POST /api/lifecycle": (b) => {
    const labels = days(b.date_from, b.date_to);
    return {
      labels,
      new: labels.map((_, i) => 10 + (i % 3)),
      returning: labels.map((_, i) => (i ? 6 + i : 0)),
      resurrecting: labels.map((_, i) => i % 2),
      dormant: labels.map((_, i) => (i ? -(3 + (i % 4)) : 0)),
    };
  },
  "GET /api/persons": (_, q) => ({
    persons: Array.from({ length: 3 }, (_, i) => ({ id: `p${i}`, distinct_ids: [`user-${i}${q.get("search") ?? ""}`, `anon ${i}/x`], properties: { email: `u${i}@example.com`, plan: "pro" }, is_identified: true, created_at: now() })),
    next_cursor: q.get("cursor") ? null : "c2",
  }),
  "GET /api/insights": () => ({ insights }),
  "POST /api/insights": (b) => {
    const i = { id: nextId++, ...b, created_at: now(), updated_at: now() };
    insights.push(i);
    return [201, i];
  },
  "GET /api/dashboards": () => ({ dashboards: dashboards.map(withTiles) }),
  "POST /api/dashboards": (b) => {
    const d = { id: nextId++, name: b.name, refresh_seconds: b.refresh_seconds ?? 0, tiles: b.tiles ?? [], created_at: now(), updated_at: now() };
    dashboards.push(d);
    return [201, withTiles(d)];
  },
};

http
  .createServer(async (req, res) => {
    if (req.headers.authorization !== `Bearer ${KEY}`) return error(res, 401, "unauthorized", "Invalid API key");
    const url = new URL(req.url, "http://x");
    let body = "";
    for await (const chunk of req) body += chunk;
    const parsed = body ? JSON.parse(body) : undefined;
    const path = url.pathname;
    let m;
    if ((m = path.match(/^\/api\/persons\/(.+)$/))) {
      const id = decodeURIComponent(m[1]);
      if (id === "nobody") return error(res, 404, "person_not_found", "Person not found");
      const page = url.searchParams.get("cursor") ? 2 : 1;
      return send(res, 200, {
        id: "p1", distinct_ids: [id, "anon-1"], properties: { email: "a@example.com", tags: ["a", "b"], age: 31 }, is_identified: true, created_at: now(), version: 3,
        events: Array.from({ length: 3 }, (_, i) => ({ uuid: `e${page}${i}`, event: "$pageview", distinct_id: id, person_id: "p1", timestamp: now(), properties: { $current_url: "/x" } })),
        next_cursor: page === 1 ? "next" : null,
      });
    }
    if ((m = path.match(/^\/api\/dashboards\/(\d+)$/))) {
      const d = dashboards.find((x) => x.id === Number(m[1]));
      if (!d) return error(res, 404, "dashboard_not_found", "Dashboard not found");
      if (req.method === "PATCH") Object.assign(d, parsed, { updated_at: now() });
      if (req.method === "DELETE") { dashboards.splice(dashboards.indexOf(d), 1); res.writeHead(204); return res.end(); }
      return send(res, 200, withTiles(d));
    }
    if (path === "/api/live") {
      res.writeHead(200, { "Content-Type": "text/event-stream" });
      let n = 0;
      const timer = setInterval(() => {
        n++;
        const ts = now();
        const ev = { uuid: `live-${Date.now()}-${n}`, event: events[n % 3] ?? "$pageview", distinct_id: `user-${n % 4}`, person_id: null, timestamp: ts, properties: {} };
        res.write(n % 3 === 0 ? ": keepalive\n\n" : `id: ${ts}|${ev.uuid}\nevent: event\ndata: ${JSON.stringify(ev)}\n\n`);
        if (n > 12) { clearInterval(timer); res.end(); }
      }, 300);
      req.on("close", () => clearInterval(timer));
      return;
    }
    if ((m = path.match(/^\/api\/insights\/(\d+)$/)) && req.method === "DELETE") {
      insights.splice(insights.findIndex((x) => x.id === Number(m[1])), 1);
      res.writeHead(204);
      return res.end();
    }
    const handler = handlers[`${req.method} ${path}`];
    if (!handler) return error(res, 404, "not_found", `No route ${req.method} ${path}`);
    const out = handler(parsed, url.searchParams);
    return Array.isArray(out) ? send(res, out[0], out[1]) : send(res, 200, out);
  })
  .listen(Number(process.env.PORT ?? 8001), "127.0.0.1");
