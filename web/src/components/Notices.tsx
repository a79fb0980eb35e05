/** An error in the API's (or the browser's) words, announced at once; nothing when there is none. */
export function Alert({ text }: { text: string | null | undefined }) {
  return text ? (
    <p class="alert" role="alert">
      {text}
    </p>
  ) : null;
}

/** What an action did, announced politely; nothing when there is nothing to say. */
export function Confirmation({ text, testId }: { text: string | null | undefined; testId?: string }) {
  return text ? (
    <p class="confirmation" role="status" data-testid={testId}>
      {text}
    </p>
  ) : null;
}
