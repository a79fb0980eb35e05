import { useState } from "preact/hooks";
import { errorText, fetchProject, setApiKey } from "../api";
import { navigate, useTitle } from "../router";
import { safeReturnPath } from "../urlstate";
import { Alert } from "../components/Notices";

export function LoginPage({ search }: { search: string }) {
  useTitle("Log in");
  const [key, setKey] = useState("");
  const [error, setError] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);

  const submit = async (e: Event) => {
    e.preventDefault();
    setBusy(true);
    setError(null);
    try {
      await fetchProject(key.trim());
      setApiKey(key.trim());
      navigate(safeReturnPath(new URLSearchParams(search).get("next")), true);
    } catch (err) {
      setError(errorText(err));
      setBusy(false);
    }
  };

  return (
    <>
      <header class="site-header">
        <div class="brand">
          <span class="brand-name">User Analytics</span>
        </div>
      </header>
      <main id="main" class="login">
        <h1>Log in</h1>
        <form onSubmit={submit} class="card login-form">
          <label for="api_key">Project API key</label>
          <input
            id="api_key"
            name="api_key"
            type="password"
            autocomplete="off"
            required
            value={key}
            onInput={(e) => setKey(e.currentTarget.value)}
          />
          <p class="hint">The project's private API key (not the public capture token).</p>
          <button type="submit" class="primary" disabled={busy}>
            Log in
          </button>
          <Alert text={error} />
        </form>
      </main>
    </>
  );
}
