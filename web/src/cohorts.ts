// The "New cohort" form's state and the POST /api/cohorts request it makes.
import type { BehavioralFilter, CohortFilter, CohortRequest, Filter, PersonFilter } from "./types";

export interface BehaviorRow {
  event: string;
  did: boolean;
  min_count: number;
  days: number;
}

export interface CohortForm {
  name: string;
  kind: "static" | "dynamic";
  /** static: distinct ids, one per line */
  idsText: string;
  match: "all" | "any";
  personFilters: Filter[];
  behaviors: BehaviorRow[];
}

export const EMPTY_FORM: CohortForm = {
  name: "",
  kind: "dynamic",
  idsText: "",
  match: "all",
  personFilters: [],
  behaviors: [],
};

export function newBehavior(event = ""): BehaviorRow {
  return { event, did: true, min_count: 1, days: 30 };
}

/** The textarea's distinct ids: one per line, trimmed, blank lines skipped, each once (first order kept). */
export function parseDistinctIds(text: string): string[] {
  const seen = new Set<string>();
  for (const line of text.split(/\r\n|\r|\n/)) {
    const id = line.trim();
    if (id) seen.add(id);
  }
  return [...seen];
}

function personFilter(f: Filter): PersonFilter {
  const out: PersonFilter = { type: "person", property: f.property, op: f.op };
  if (f.value !== undefined) out.value = f.value;
  return out;
}

function behavioralFilter(b: BehaviorRow): BehavioralFilter {
  return { type: "behavioral", event: b.event, did: b.did, min_count: b.min_count, days: b.days };
}

/** The create request for the form; the API validates it (and its 400 is shown as it words it). */
export function cohortRequest(form: CohortForm): CohortRequest {
  const name = form.name.trim();
  if (form.kind === "static") return { name, kind: "static", distinct_ids: parseDistinctIds(form.idsText) };
  const filters: CohortFilter[] = [...form.personFilters.map(personFilter), ...form.behaviors.map(behavioralFilter)];
  return { name, kind: "dynamic", match: form.match, filters };
}

/** A dynamic cohort's filter in words, for its page. */
export function describeFilter(f: CohortFilter): string {
  if (f.type === "behavioral") {
    const days = `in the last ${f.days} day${f.days === 1 ? "" : "s"}`;
    if (f.did) return `did ${f.event} at least ${f.min_count} time${f.min_count === 1 ? "" : "s"} ${days}`;
    if (f.min_count === 1) return `did not do ${f.event} ${days}`;
    return `did ${f.event} fewer than ${f.min_count} times ${days}`;
  }
  const value = f.value === undefined ? "" : ` ${JSON.stringify(f.value)}`;
  return `person ${f.property} ${f.op}${value}`;
}
