/**
 * Ask from the page: the same `POST /v1/ask` stream as `coral ask`, its text shown as it comes,
 * the tools the model calls as progress, then the citations (linked to their pages) and what
 * the answer cost. A follow-up keeps the conversation, as `coral ask --continue` does.
 */
import type { AskAnswer, AskStreamMessage, Citation, ErrorBody } from "@coral-mesh/sdk-proto";
import { useEffect, useRef, useState } from "preact/hooks";
import { href } from "../route.js";

type Turn = { question: string; text: string; tools: string[]; answer?: AskAnswer; error?: string };

/** Reads `POST /v1/ask`'s Server-Sent Events, one message at a time. */
async function* askStream(body: object, signal: AbortSignal): AsyncGenerator<AskStreamMessage> {
  const response = await fetch("/v1/ask", {
    method: "POST",
    headers: { "content-type": "application/json", accept: "text/event-stream" },
    credentials: "same-origin",
    body: JSON.stringify(body),
    signal,
  });
  if (!response.ok || !response.body) {
    const error = (await response.json().catch(() => null)) as Partial<ErrorBody> | null;
    throw new Error(error?.message ? `${error.message} (${error.code})` : `${response.status} ${response.statusText}`);
  }
  const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
  let pending = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    pending += value;
    const events = pending.split("\n\n");
    pending = events.pop() ?? "";
    for (const event of events) {
      const data = event
        .split("\n")
        .filter((line) => line.startsWith("data:"))
        .map((line) => line.slice(5).trimStart())
        .join("\n");
      if (data) yield JSON.parse(data) as AskStreamMessage;
    }
  }
}

function citationHref(c: Citation): string | undefined {
  switch (c.kind) {
    case "finding":
      return href.findings();
    case "service":
      return href.service(c.id);
    case "event":
      return href.timeline({});
    case "agent":
      return href.agents();
    default:
      return undefined;
  }
}

const usd = (n: number) => (n === 0 ? "$0" : n < 0.01 ? `$${n.toFixed(4)}` : `$${n.toFixed(2)}`);

export function AskPage() {
  const [question, setQuestion] = useState("");
  const [turns, setTurns] = useState<Turn[]>([]);
  const [busy, setBusy] = useState(false);
  const conversation = useRef<string | undefined>(undefined);
  const abort = useRef<AbortController | undefined>(undefined);

  // Leaving the page ends the question: the coordinator then stops the model's call.
  useEffect(() => () => abort.current?.abort(), []);

  const update = (change: (turn: Turn) => Turn) => setTurns((all) => [...all.slice(0, -1), change(all.at(-1) as Turn)]);

  const submit = async (event: Event) => {
    event.preventDefault();
    const asked = question.trim();
    if (!asked || busy) return;
    setBusy(true);
    setQuestion("");
    setTurns((all) => [...all, { question: asked, text: "", tools: [] }]);
    abort.current = new AbortController();
    try {
      const body = { question: asked, ...(conversation.current ? { conversationId: conversation.current } : {}) };
      let ended = false;
      for await (const message of askStream(body, abort.current.signal)) {
        if (message.type === "done" || message.type === "error") ended = true;
        if (message.type === "text") update((t) => ({ ...t, text: t.text + message.delta }));
        else if (message.type === "tool") update((t) => ({ ...t, tools: [...t.tools, message.name] }));
        else if (message.type === "done") {
          conversation.current = message.answer.conversationId;
          update((t) => ({ ...t, text: t.text || message.answer.answer, answer: message.answer }));
        } else if (message.type === "error") update((t) => ({ ...t, error: `${message.message} (${message.code})` }));
      }
      if (!ended) update((t) => ({ ...t, error: "The answer was cut off: the connection to the coordinator ended before it did." }));
    } catch (error) {
      if (!abort.current.signal.aborted) update((t) => ({ ...t, error: (error as Error).message }));
    } finally {
      setBusy(false);
    }
  };

  return (
    <section aria-labelledby="ask-title" class="ask">
      <h1 id="ask-title">Ask</h1>
      <p class="muted">
        Answered from the mesh's findings and what the coordinator stores, by the configured model, or from the findings alone without one.
        Follow-up questions keep the conversation for an hour.
      </p>
      {turns.map((turn, i) => (
        <article class="turn" key={i} data-turn={i} aria-busy={busy && i === turns.length - 1}>
          <h2 class="question">{turn.question}</h2>
          {turn.tools.length > 0 && <p class="muted tools">looked at: {turn.tools.join(", ")}</p>}
          <div class="answer" data-testid="answer">
            {turn.text}
          </div>
          {turn.error && <p class="error">{turn.error}</p>}
          {turn.answer && (
            <footer class="muted" data-testid="answered">
              {/* The answer from the findings alone says it already. */}
              {turn.answer.note && !turn.text.includes(turn.answer.note) && <p>{turn.answer.note}</p>}
              {turn.answer.citations.length > 0 && (
                <p>
                  evidence:{" "}
                  {turn.answer.citations.map((c) => {
                    const to = citationHref(c);
                    const label = `${c.kind} ${c.id}`;
                    return (
                      <span key={label} class="badge">
                        {to ? <a href={to}>{label}</a> : label}
                      </span>
                    );
                  })}
                </p>
              )}
              <p data-testid="cost">
                {turn.answer.model} · {turn.answer.usage.inputTokens.toLocaleString("en")} in /{" "}
                {turn.answer.usage.outputTokens.toLocaleString("en")} out tokens · {usd(turn.answer.usage.costUsd)}
              </p>
            </footer>
          )}
        </article>
      ))}
      <form onSubmit={submit} class="ask-form">
        <label for="question">{turns.length > 0 ? "A follow-up" : "Your question"}</label>
        <textarea
          id="question"
          rows={2}
          maxLength={4000}
          placeholder="why is checkout slow since this morning?"
          value={question}
          onInput={(e) => setQuestion((e.target as HTMLTextAreaElement).value)}
          onKeyDown={(e) => {
            if (e.key === "Enter" && !e.shiftKey) void submit(e);
          }}
        />
        <button type="submit" disabled={busy || !question.trim()}>
          {busy ? "Answering…" : "Ask"}
        </button>
        {turns.length > 0 && !busy && (
          <button
            type="button"
            onClick={() => {
              conversation.current = undefined;
              setTurns([]);
            }}
          >
            New conversation
          </button>
        )}
      </form>
    </section>
  );
}
