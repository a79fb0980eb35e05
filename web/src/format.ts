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
