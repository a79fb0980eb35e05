/** A timestamp in the browser's locale and time zone; the raw text when it does not parse. */
export function formatTime(iso: string | null | undefined): string {
  if (!iso) return "";
  const d = new Date(iso);
  return Number.isNaN(d.getTime()) ? iso : d.toLocaleString();
}

/** A property value as text: strings as they are, everything else as JSON. */
export function propertyText(value: unknown): string {
  return typeof value === "string" ? value : JSON.stringify(value) ?? "";
}

const SHOWN_PROPERTIES = ["email", "name", "$name", "username"];

/** A few of a person's properties as text, the usual identifying ones first. */
export function fewProperties(props: Record<string, unknown>): string {
  const keys = Object.keys(props ?? {});
  const chosen = [...SHOWN_PROPERTIES.filter((k) => k in props), ...keys.filter((k) => !SHOWN_PROPERTIES.includes(k))].slice(0, 3);
  return chosen.map((k) => `${k}: ${propertyText(props[k])}`).join(", ");
}
