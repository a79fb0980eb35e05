import { describe, expect, it } from "vitest";
import { EMPTY_FORM, cohortRequest, describeFilter, newBehavior, parseDistinctIds } from "./cohorts";

describe("cohort form", () => {
  it("parses the distinct ids textarea: one per line, trimmed, blanks skipped, each once", () => {
    expect(parseDistinctIds("user-1\n  user-2 \r\n\n\ruser-1\n\t\n")).toEqual(["user-1", "user-2"]);
    expect(parseDistinctIds("")).toEqual([]);
    expect(parseDistinctIds("a b\n")).toEqual(["a b"]);
  });

  it("builds a static request from the ids", () => {
    expect(cohortRequest({ ...EMPTY_FORM, name: " Beta ", kind: "static", idsText: "u1\nu2\nu1" })).toEqual({
      name: "Beta",
      kind: "static",
      distinct_ids: ["u1", "u2"],
    });
  });

  it("builds a dynamic request: person filters, then behavioural ones", () => {
    const request = cohortRequest({
      ...EMPTY_FORM,
      name: "Loyal",
      kind: "dynamic",
      match: "any",
      idsText: "ignored",
      personFilters: [
        { type: "person", property: "plan", op: "eq", value: "pro" },
        { type: "person", property: "email", op: "is_set" },
      ],
      behaviors: [newBehavior("purchase"), { event: "$pageview", did: false, min_count: 3, days: 7 }],
    });
    expect(request).toEqual({
      name: "Loyal",
      kind: "dynamic",
      match: "any",
      filters: [
        { type: "person", property: "plan", op: "eq", value: "pro" },
        { type: "person", property: "email", op: "is_set" },
        { type: "behavioral", event: "purchase", did: true, min_count: 1, days: 30 },
        { type: "behavioral", event: "$pageview", did: false, min_count: 3, days: 7 },
      ],
    });
  });

  it("sends an empty filter list as it is, for the API to refuse in its words", () => {
    expect(cohortRequest({ ...EMPTY_FORM, name: "x" })).toEqual({ name: "x", kind: "dynamic", match: "all", filters: [] });
  });

  it("describes filters", () => {
    expect(describeFilter({ type: "behavioral", event: "purchase", did: true, min_count: 1, days: 30 })).toBe(
      "did purchase at least 1 time in the last 30 days",
    );
    expect(describeFilter({ type: "behavioral", event: "x", did: false, min_count: 1, days: 7 })).toBe("did not do x in the last 7 days");
    expect(describeFilter({ type: "behavioral", event: "x", did: false, min_count: 2, days: 1 })).toBe(
      "did x fewer than 2 times in the last 1 day",
    );
    expect(describeFilter({ type: "person", property: "plan", op: "eq", value: "pro" })).toBe('person plan eq "pro"');
  });
});
