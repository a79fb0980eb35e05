// A filter's value as the API wants it, from the text typed in the form (and back).
import type { FilterOp, PropertyDefinition } from "./types";

function coerce(raw: string, type: PropertyDefinition["type"] | undefined): unknown {
  const text = raw.trim();
  if (type === "Numeric" && text !== "" && Number.isFinite(Number(text))) return Number(text);
  if (type === "Boolean" && (text === "true" || text === "false")) return text === "true";
  return raw;
}

/** "in" takes a comma-separated list; numeric and boolean properties get numbers and booleans. */
export function parseFilterValue(raw: string, op: FilterOp, type: PropertyDefinition["type"] | undefined): unknown {
  if (op === "in") return raw.split(",").map((s) => s.trim()).filter(Boolean).map((s) => coerce(s, type));
  return coerce(raw, type);
}

export function formatFilterValue(value: unknown): string {
  if (value === undefined || value === null) return "";
  if (Array.isArray(value)) return value.map(String).join(", ");
  return typeof value === "object" ? JSON.stringify(value) : String(value);
}

