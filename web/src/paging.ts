import { useState } from "preact/hooks";
import { apiRequest, errorText } from "./api";

/** The API's pages: `limit` items, then the next page asked with `cursor` = this one's `next_cursor`. */
export interface CursorPage {
  next_cursor?: string | null;
}

/**
 * A list read a page at a time (persons, a person's events, a cohort's members): `load(null)` reads the
 * first page and replaces the list, `load(cursor)` appends the next one; `params` are the request's own
 * (a search, say). Resolves to the page, or null when it failed (then `error` says why).
 */
export function useCursorList<T, P extends CursorPage>(path: string, pageSize: number, itemsOf: (page: P) => T[] | undefined) {
  const [items, setItems] = useState<T[]>([]);
  const [cursor, setCursor] = useState<string | null>(null);
  const [loading, setLoading] = useState(false);
  const [error, setError] = useState<string | null>(null);

  const load = async (after: string | null, params: Record<string, string> = {}): Promise<P | null> => {
    setLoading(true);
    setError(null);
    try {
      const query = new URLSearchParams({ ...params, limit: String(pageSize) });
      if (after) query.set("cursor", after);
      const page = await apiRequest<P>(`${path}?${query}`);
      const got = itemsOf(page) ?? [];
      setItems((prev) => (after ? [...prev, ...got] : got));
      setCursor(page.next_cursor ?? null);
      return page;
    } catch (e) {
      setError(errorText(e));
      return null;
    } finally {
      setLoading(false);
    }
  };

  return { items, cursor, loading, error, load };
}
