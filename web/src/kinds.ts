import type { InsightKind } from "./types";

export const KIND_TITLES: Record<InsightKind, string> = {
  trends: "Trends",
  funnels: "Funnels",
  retention: "Retention",
  paths: "Paths",
  sessions: "Sessions",
  stickiness: "Stickiness",
  lifecycle: "Lifecycle",
};
