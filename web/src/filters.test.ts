import { describe, expect, it } from "vitest";
import { formatFilterValue, parseFilterValue } from "./filters";

describe("filter values", () => {
  it("types values by the property's type", () => {
    expect(parseFilterValue("42", "gt", "Numeric")).toBe(42);
    expect(parseFilterValue("42", "eq", "String")).toBe("42");
    expect(parseFilterValue("true", "eq", "Boolean")).toBe(true);
    expect(parseFilterValue("abc", "eq", "Numeric")).toBe("abc");
  });

  it("splits lists for the in operator", () => {
    expect(parseFilterValue("Chrome, Firefox ,", "in", "String")).toEqual(["Chrome", "Firefox"]);
    expect(parseFilterValue("1,2", "in", "Numeric")).toEqual([1, 2]);
  });

  it("formats values back for the form", () => {
    expect(formatFilterValue(["a", "b"])).toBe("a, b");
    expect(formatFilterValue(3)).toBe("3");
    expect(formatFilterValue(undefined)).toBe("");
  });
});
