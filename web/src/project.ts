import { createContext } from "preact";
import { useContext, useEffect, useState } from "preact/hooks";
import { errorText, fetchDefinitions } from "./api";
import type { Definitions, Project } from "./types";

export const ProjectContext = createContext<Project | null>(null);

export function useProject(): Project | null {
  return useContext(ProjectContext);
}

/** The project's event and property names, which feed every picker. */
export function useDefinitions(): { definitions: Definitions | null; error: string | null } {
  const [definitions, setDefinitions] = useState<Definitions | null>(null);
  const [error, setError] = useState<string | null>(null);
  useEffect(() => {
    let live = true;
    fetchDefinitions().then(
      (d) => live && setDefinitions({ events: d.events ?? [], event_properties: d.event_properties ?? [], person_properties: d.person_properties ?? [] }),
      (e) => live && setError(errorText(e)),
    );
    return () => {
      live = false;
    };
  }, []);
  return { definitions, error };
}
