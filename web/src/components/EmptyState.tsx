import { useProject } from "../project";
import { captureUrl } from "../urlstate";

/** Shown while the project has no events: how to send the first one with each SDK. */
export function EmptyState() {
  const project = useProject();
  const token = project?.api_token ?? "<project api token>";
  const capture = captureUrl();
  const snippets: [string, string][] = [
    [
      "posthog-js (browser)",
      `posthog.init('${token}', { api_host: '${capture}' })\nposthog.capture('signed_up')`,
    ],
    [
      "PostHog Python",
      `from posthog import Posthog\n\nposthog = Posthog('${token}', host='${capture}')\nposthog.capture(distinct_id='user-1', event='signed_up')`,
    ],
    [
      "Amplitude Python",
      `from amplitude import Amplitude, BaseEvent\n\nclient = Amplitude('${token}')\nclient.configuration.server_url = '${capture}/2/httpapi'\nclient.track(BaseEvent(event_type='signed_up', user_id='user-1'))`,
    ],
    [
      "Amplitude Node",
      `import { init, track } from '@amplitude/analytics-node';\n\ninit('${token}', { serverUrl: '${capture}/2/httpapi' });\ntrack('signed_up', undefined, { user_id: 'user-1' });`,
    ],
  ];
  return (
    <section class="empty-state" data-testid="empty-state" aria-labelledby="empty-state-title">
      <h2 id="empty-state-title">No events yet</h2>
      <p>
        This project has not received any events. Send a first one with any of these SDKs, pointed at the capture
        service at <code>{capture}</code>, then reload this page.
      </p>
      {snippets.map(([name, code]) => (
        <div class="snippet">
          <h3>{name}</h3>
          <pre tabIndex={0} aria-label={`${name} example`}>
            <code>{code}</code>
          </pre>
        </div>
      ))}
    </section>
  );
}
