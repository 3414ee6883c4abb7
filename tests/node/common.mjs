// Shared by the client scripts: config in, JSON out, optional HTTP proxy.
//
// A script reads one JSON config (argv[2], or stdin when argv[2] is absent or
// "-"), or a JSON array of configs, and prints one JSON result (or an array,
// in the same order) on stdout. Every client-side failure is caught and
// reported in the result, so the exit code is 0 unless the script itself is
// broken.
//
// Config keys used by every script:
//   baseURL   e.g. "http://127.0.0.1:8080/v1" (mitmdump in reverse mode, or the upstream)
//   proxy     null, or "http://127.0.0.1:PORT": requests go through this HTTP proxy
//             (undici's ProxyAgent; the target is reached through a CONNECT tunnel)
//   model, messages, tools (OpenAI format: [{type:"function", function:{name, description, parameters}}])
//   stream    true (default) or false
//   timeoutMs per client call (default 10000)

import { readFileSync } from 'node:fs';
import { fetch as undiciFetch, ProxyAgent } from 'undici';

export function readConfig() {
  const arg = process.argv[2];
  const text = arg === undefined || arg === '-' ? readFileSync(0, 'utf8') : arg;
  return JSON.parse(text);
}

// A fetch for the SDKs' `fetch` option: undici's own fetch (so its dispatcher
// is honoured) through a ProxyAgent when cfg.proxy is set, else Node's fetch.
export function makeFetch(cfg) {
  if (!cfg.proxy) return globalThis.fetch;
  const dispatcher = new ProxyAgent(cfg.proxy);
  return (url, init) => undiciFetch(url, { ...init, dispatcher });
}

// A thrown error (or an AI SDK error part's payload) as plain JSON.
export function describeError(err) {
  if (err instanceof Error) {
    const out = { name: err.name, class: err.constructor?.name, message: err.message };
    // openai-node APIError
    if (err.status !== undefined) out.status = err.status;
    if (err.error !== undefined) out.error = err.error;
    // AI SDK APICallError
    if (err.statusCode !== undefined) out.status = err.statusCode;
    if (err.responseBody !== undefined) out.responseBody = err.responseBody;
    if (err.cause instanceof Error) out.cause = err.cause.message;
    return out;
  }
  // The AI SDK passes an upstream's in-stream `error` object through as is.
  if (err !== null && typeof err === 'object') {
    return {
      name: 'object',
      message: typeof err.message === 'string' ? err.message : JSON.stringify(err),
      value: err,
    };
  }
  return { name: typeof err, message: String(err), value: err };
}

export function withTimeout(promise, ms, what) {
  let timer;
  const timeout = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what}: timed out after ${ms} ms`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

// Runs `job(cfg)` for one config or each of an array, prints the JSON result(s).
export async function main(job) {
  const input = readConfig();
  const configs = Array.isArray(input) ? input : [input];
  const results = [];
  for (const cfg of configs) {
    try {
      results.push(await job(cfg));
    } catch (err) {
      results.push({ scriptError: describeError(err) });
    }
  }
  const text = JSON.stringify(Array.isArray(input) ? results : results[0]) + '\n';
  // Exit explicitly (keep-alive sockets, and a ProxyAgent's, would hold the
  // process open), but only once stdout has taken everything: writes to a
  // pipe are asynchronous, and exiting early cuts the output at 64 KiB.
  process.stdout.write(text, () => process.exit(0));
}
