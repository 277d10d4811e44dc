// The official OpenAI Node.js client against a running sluice.
//
//   node tests/e2e/openai_e2e.mjs PORT
//
// PORT is sluice's proxy port; the key sk-sdk must name a tenant limited to
// 2 requests/s with a burst of 1.  Prints one JSON line on stdout:
//
//   {"node":..., "openai":..., "statuses":[200,429,200], "retry_after_ms":N,
//    "retry_gap_ms":N, ..., "stream_chunks":8, ...}
//
// and exits 0, or prints the error on stderr and exits 1.  The checks are made
// by tests/integration/test_openai_sdk.py, which starts sluice and gpusim.

import http from 'node:http';
import OpenAI from 'openai';
import { VERSION } from 'openai/version';
// The transport the SDK uses by default on Node.js (node-fetch with a
// keep-alive agent), so that what is tested is what users run; it is wrapped
// below through the client's public `fetch` option to see every attempt.
// (_shims is internal to the SDK; the lockfile pins the version.)
import { fetch as sdkFetch } from 'openai/_shims/index';

const port = Number(process.argv[2]);
if (!Number.isInteger(port) || port <= 0) {
  console.error('usage: node openai_e2e.mjs PORT');
  process.exit(2);
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
const round = (x) => Math.round(x * 10) / 10;

// Every HTTP exchange the SDK makes: when it was sent, when its response
// head came back, and what that head said.
const attempts = [];

async function recordingFetch(url, init) {
  const a = {
    url: String(url),
    sent: performance.now(),
    retry_count: init?.headers?.['x-stainless-retry-count'] ?? null,
  };
  attempts.push(a);
  const res = await sdkFetch(url, init);
  a.received = performance.now();
  a.status = res.status;
  a.retry_after_ms = res.headers.get('retry-after-ms');
  a.retry_after = res.headers.get('retry-after');
  a.reason = res.headers.get('x-sluice-reject-reason');
  return res;
}

// The SDK falls back to its own backoff (0.375 to 0.5 s before a first retry,
// close to the 0.5 s hint here) only when the response gives no usable
// retry-after-ms / retry-after: note when it does, so that timing alone is
// not the proof that sluice's hint was the one obeyed.
const defaultBackoffs = [];
class ProbedOpenAI extends OpenAI {
  calculateDefaultRetryTimeoutMillis(retriesRemaining, maxRetries) {
    const ms = super.calculateDefaultRetryTimeoutMillis(retriesRemaining, maxRetries);
    defaultBackoffs.push(round(ms));
    return ms;
  }
}

const client = new ProbedOpenAI({
  baseURL: `http://127.0.0.1:${port}/v1`,
  apiKey: 'sk-sdk',
  maxRetries: 3,
  timeout: 20_000,
  fetch: recordingFetch,
});

async function main() {
  // 1. Two back to back: the second is over the tenant's bucket, answered
  //    429 with retry-after-ms; the SDK must wait that long and retry.
  const first = await client.completions.create({ model: 'm', prompt: 'hello', max_tokens: 4 });
  const { data: second, response } = await client.completions
    .create({ model: 'm', prompt: 'hello', max_tokens: 4 })
    .withResponse();
  const completions = attempts.slice();
  const i429 = completions.findIndex((a) => a.status === 429);
  const rejected = i429 >= 0 ? completions[i429] : null;
  const retry = i429 >= 0 ? completions[i429 + 1] : null;

  // 2. Stream a chat completion once the bucket has refilled (burst 1 at
  //    2/s: 500 ms), so that this one is not rejected.
  //
  //    On a connection of its own: with Debian bookworm's nodejs
  //    (18.20.4+dfsg-1~deb12u3), node-fetch 2.7.0 (the SDK's transport) ends
  //    every streamed body read through a keep-alive agent with "Premature
  //    close", whatever the server (a plain node:http server too); upstream
  //    Node 18.20.4 and 20 do not.  Not a sluice matter.
  await sleep(1000);
  const before = attempts.length;
  const stream = await client.chat.completions.create(
    {
      model: 'm',
      messages: [{ role: 'user', content: 'hi' }],
      max_tokens: 8,
      stream: true,
    },
    { httpAgent: new http.Agent({ keepAlive: false }) },
  );
  let chunks = 0;
  let events = 0;
  let text = '';
  let finish = null;
  for await (const ev of stream) {
    events++;
    const choice = ev.choices?.[0];
    if (choice?.delta?.content) {
      chunks++;
      text += choice.delta.content;
    }
    if (choice?.finish_reason) finish = choice.finish_reason;
  }

  console.log(JSON.stringify({
    node: process.version,
    openai: VERSION,
    statuses: completions.map((a) => a.status),
    retry_counts: completions.map((a) => a.retry_count),
    reject_reason: rejected?.reason ?? null,
    retry_after_ms: rejected?.retry_after_ms != null ? Number(rejected.retry_after_ms) : null,
    retry_after: rejected?.retry_after ?? null,
    retry_gap_ms: rejected && retry ? round(retry.sent - rejected.received) : null,
    sdk_default_backoffs_ms: defaultBackoffs,
    first_ok: first.choices.length === 1,
    second_status: response.status,
    second_text: second.choices[0]?.text ?? null,
    // the rate-limit headers as the client hands them to its caller
    second_ratelimit: Object.fromEntries(
      ['limit-requests', 'remaining-requests', 'reset-requests', 'limit-tokens'].map((h) => [
        h,
        response.headers.get(`x-ratelimit-${h}`),
      ]),
    ),
    stream_statuses: attempts.slice(before).map((a) => a.status),
    stream_events: events,
    stream_chunks: chunks,
    stream_text: text,
    stream_finish: finish,
  }));
}

main().catch((err) => {
  console.error(err?.stack ?? String(err));
  console.error(JSON.stringify({ attempts }));
  process.exit(1);
});
