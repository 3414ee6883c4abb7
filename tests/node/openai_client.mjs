// openai-node (the `openai` package) as a chat app uses it.
//
//   node openai_client.mjs '<config json>'     (or the config on stdin; see common.mjs)
//
// With "stream": true (the default) it runs, each as its own request:
//   helper  client.chat.completions.stream(...).finalChatCompletion()
//           (ChatCompletionStream: the accumulator LibreChat and others use)
//   create  client.chat.completions.create({stream: true}) iterated by hand:
//           delta.content joined, delta.reasoning_content (or .reasoning)
//           joined, the last usage kept, tool calls accumulated the naive way
//           many apps do (`name +=`, `arguments +=`, keyed by `index`)
// ("modes": ["helper"] runs only some; "extra": {...} adds request keys.)
// With "stream": false:
//   create  client.chat.completions.create({...}) -> message and finish_reason
//
// Result: { helper: {...}, create: {...} }, each either
//   { ok: true, content, tool_calls: [{id, name, arguments}], finish_reason, ... }
// or { ok: false, error: {name, message, status?, ...}, partial content so far }.

import OpenAI from 'openai';
import { describeError, main, makeFetch, withTimeout } from './common.mjs';

function makeClient(cfg) {
  return new OpenAI({
    baseURL: cfg.baseURL,
    apiKey: cfg.apiKey ?? 'test-key',
    fetch: makeFetch(cfg),
    maxRetries: 0,
    timeout: cfg.timeoutMs ?? 10000,
  });
}

function params(cfg, stream) {
  const p = { model: cfg.model, messages: cfg.messages, stream };
  if (cfg.tools) p.tools = cfg.tools;
  // More request keys, sent as given (e.g. stream_options, frequency_penalty).
  Object.assign(p, cfg.extra ?? {});
  return p;
}

function toolCalls(message) {
  return (message?.tool_calls ?? []).map((tc) => ({
    id: tc.id,
    type: tc.type,
    name: tc.function?.name,
    arguments: tc.function?.arguments,
  }));
}

async function helper(client, cfg) {
  const runner = client.chat.completions.stream(params(cfg, true));
  let streamed = '';
  runner.on('content', (delta) => {
    streamed += delta;
  });
  try {
    const completion = await runner.finalChatCompletion();
    return { ...completionResult(completion), id: completion.id, model: completion.model };
  } catch (err) {
    return { ok: false, error: describeError(err), content: streamed };
  }
}

async function createStream(client, cfg) {
  let content = '';
  let reasoning = '';
  let usage = null;
  let finishReason = null;
  let firstRole;
  let chunks = 0;
  const calls = new Map(); // index -> {id, name, arguments}, the naive way
  try {
    const stream = await client.chat.completions.create(params(cfg, true));
    for await (const chunk of stream) {
      chunks += 1;
      if (chunk.usage) usage = chunk.usage;
      const choice = chunk.choices?.[0];
      if (!choice) continue;
      const delta = choice.delta ?? {};
      if (chunks === 1) firstRole = delta.role;
      if (typeof delta.content === 'string') content += delta.content;
      const r = delta.reasoning_content ?? delta.reasoning;
      if (typeof r === 'string') reasoning += r;
      for (const tc of delta.tool_calls ?? []) {
        const key = String(tc.index);
        if (!calls.has(key)) calls.set(key, { index: tc.index ?? null, id: '', name: '', arguments: '' });
        const slot = calls.get(key);
        if (tc.id) slot.id = tc.id;
        slot.name += tc.function?.name ?? '';
        slot.arguments += tc.function?.arguments ?? '';
      }
      if (choice.finish_reason) finishReason = choice.finish_reason;
    }
    return {
      ok: true,
      content,
      tool_calls: [...calls.values()],
      finish_reason: finishReason,
      first_role: firstRole ?? null,
      chunks,
      reasoning,
      usage,
    };
  } catch (err) {
    return { ok: false, error: describeError(err), content, reasoning, chunks };
  }
}

// What a ChatCompletion says: from create(), or the stream helper's final completion.
function completionResult(completion) {
  const choice = completion.choices[0];
  return {
    ok: true,
    role: choice.message.role,
    content: choice.message.content,
    tool_calls: toolCalls(choice.message),
    finish_reason: choice.finish_reason,
    usage: completion.usage ?? null,
  };
}

async function createOnce(client, cfg) {
  try {
    const completion = await client.chat.completions.create(params(cfg, false));
    return completionResult(completion);
  } catch (err) {
    return { ok: false, error: describeError(err) };
  }
}

await main(async (cfg) => {
  const client = makeClient(cfg);
  const ms = (cfg.timeoutMs ?? 10000) + 2000;
  const stream = cfg.stream ?? true;
  const modes = cfg.modes ?? (stream ? ['helper', 'create'] : ['create']);
  const out = {};
  for (const mode of modes) {
    const run = mode === 'helper' ? helper : stream ? createStream : createOnce;
    out[mode] = await withTimeout(run(client, cfg), ms, `openai-node ${mode}`);
  }
  return out;
});
