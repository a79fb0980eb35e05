import { render } from "preact";
import { useEffect, useState } from "preact/hooks";
import "./styles.css";
import { ApiError, clearApiKey, errorText, fetchProject, getApiKey } from "./api";
import { ProjectContext } from "./project";
import { interceptLinks, navigate, useLocation, useTitle, type Location } from "./router";
import { isInsightKind } from "./urlstate";
import type { Project } from "./types";
import { LoginPage } from "./pages/Login";
import { InsightPage } from "./pages/Insight";
import { PersonsPage } from "./pages/Persons";
import { PersonPage } from "./pages/Person";
import { LivePage } from "./pages/Live";
import { DashboardsPage } from "./pages/Dashboards";
import { DashboardPage } from "./pages/Dashboard";
import { CohortsPage } from "./pages/Cohorts";
import { CohortPage } from "./pages/Cohort";
import { Alert } from "./components/Notices";

const NAV_LINKS: [string, string][] = [
  ["/insights/trends", "Trends"],
  ["/insights/funnels", "Funnels"],
  ["/insights/retention", "Retention"],
  ["/insights/paths", "Paths"],
  ["/insights/sessions", "Sessions"],
  ["/insights/stickiness", "Stickiness"],
  ["/insights/lifecycle", "Lifecycle"],
  ["/persons", "Persons"],
  ["/cohorts", "Cohorts"],
  ["/live", "Live"],
  ["/dashboards", "Dashboards"],
];

function loginUrl(loc: Location): string {
  return `/login?next=${encodeURIComponent(loc.path + loc.search)}`;
}

function Redirect({ to }: { to: string }) {
  useEffect(() => navigate(to, true), [to]);
  return null;
}

function App() {
  const loc = useLocation();
  if (loc.path === "/login") return <LoginPage search={loc.search} />;
  if (!getApiKey()) return <Redirect to={loginUrl(loc)} />;
  return <Shell loc={loc} />;
}

function Shell({ loc }: { loc: Location }) {
  const [project, setProject] = useState<Project | null>(null);
  const [error, setError] = useState<string | null>(null);

  useEffect(() => {
    fetchProject().then(setProject, (e) => {
      if (e instanceof ApiError && e.status === 401) {
        clearApiKey();
        navigate(loginUrl(loc), true);
      } else setError(errorText(e));
    });
  }, []);

  const logOut = () => {
    clearApiKey();
    navigate("/login", false);
  };

  return (
    <ProjectContext.Provider value={project}>
      <header class="site-header">
        <div class="brand">
          <a href="/insights/trends" class="brand-name">
            User Analytics
          </a>
          {project && (
            <span class="project-name" data-testid="project-name">
              {project.name}
            </span>
          )}
          <button type="button" class="link-button" onClick={logOut}>
            Log out
          </button>
        </div>
        <nav aria-label="Main">
          <ul>
            {NAV_LINKS.map(([href, text]) => (
              <li>
                <a href={href} aria-current={isCurrent(loc.path, href) ? "page" : undefined}>
                  {text}
                </a>
              </li>
            ))}
          </ul>
        </nav>
      </header>
      <main id="main">
        <Alert text={error} />
        <Route loc={loc} />
      </main>
    </ProjectContext.Provider>
  );
}

function isCurrent(path: string, href: string): boolean {
  return path === href || path.startsWith(href + "/");
}

function Route({ loc }: { loc: Location }) {
  const parts = loc.path.split("/").filter(Boolean);
  const [section, param] = parts;
  if (parts.length === 0) return <Redirect to="/insights/trends" />;
  if (section === "insights" && param && isInsightKind(param) && parts.length === 2) {
    return <InsightPage key={`${param}${loc.search}`} kind={param} search={loc.search} />;
  }
  if (section === "persons" && parts.length === 1) return <PersonsPage key={loc.search} search={loc.search} />;
  if (section === "persons" && parts.length === 2) {
    const distinctId = decodeURIComponent(param);
    return <PersonPage key={distinctId} distinctId={distinctId} />;
  }
  if (section === "cohorts" && parts.length === 1) return <CohortsPage />;
  if (section === "cohorts" && parts.length === 2) return <CohortPage key={param} id={decodeURIComponent(param)} />;
  if (section === "live" && parts.length === 1) return <LivePage />;
  if (section === "dashboards" && parts.length === 1) return <DashboardsPage />;
  if (section === "dashboards" && parts.length === 2) return <DashboardPage key={param} id={decodeURIComponent(param)} />;
  return <NotFound />;
}

function NotFound() {
  useTitle("Not found");
  return (
    <>
      <h1>Page not found</h1>
      <p>
        Nothing lives at this address. Try <a href="/insights/trends">Trends</a>.
      </p>
    </>
  );
}

interceptLinks();
render(<App />, document.getElementById("app")!);
