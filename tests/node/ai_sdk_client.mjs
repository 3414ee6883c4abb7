// The Vercel AI SDK (`ai`) with both of its OpenAI chat providers.
//
//   node ai_sdk_client.mjs '<config json>'     (or the config on stdin; see common.mjs)
//
// Providers (config "providers", default both), each its own request:
//   openai      createOpenAI({ baseURL, apiKey, fetch }).chat(model)
//               (@ai-sdk/openai: the strict one; .chat() so it calls
//               /chat/completions, not the Responses API)
//   compatible  createOpenAICompatible({ name, baseURL, apiKey, fetch })(model)
//
// "stream": true (default) runs streamText() and collects every fullStream
// part; false runs generateText(). Tools (OpenAI format) become AI SDK tools
// with no `execute`, so a call ends the run (one step) and is reported.
//
// Result: { openai: {...}, compatible: {...} }, each
//   { ok, text, reasoning, tool_calls: [{id, name, input}], finish_reason, raw_finish_reason,
//     errors: [{name, message, ...}], part_types: [...] }
// where ok means no `error` (or `tool-error`) part and nothing thrown.

import { createOpenAI } from '@ai-sdk/openai';
import { createOpenAICompatible } from '@ai-sdk/openai-compatible';
import { generateText, jsonSchema, streamText, tool } from 'ai';
import { describeError, main, makeFetch, withTimeout } from './common.mjs';

function makeModel(provider, cfg) {
  const common = {
    baseURL: cfg.baseURL,
    apiKey: cfg.apiKey ?? 'test-key',
    fetch: makeFetch(cfg),
  };
  if (provider === 'openai') return createOpenAI(common).chat(cfg.model);
  if (provider === 'compatible') {
    return createOpenAICompatible({ name: cfg.providerName ?? 'upstream', ...common })(cfg.model);
  }
  throw new Error(`unknown provider ${provider}`);
}

function makeTools(cfg) {
  if (!cfg.tools) return undefined;
  return Object.fromEntries(
    cfg.tools.map((t) => [
      t.function.name,
      tool({
        description: t.function.description ?? '',
        inputSchema: jsonSchema(t.function.parameters ?? { type: 'object', properties: {} }),
      }),
    ]),
  );
}

function callArgs(provider, cfg) {
  const args = {
    model: makeModel(provider, cfg),
    messages: cfg.messages,
    maxRetries: 0,
  };
  const tools = makeTools(cfg);
  if (tools) args.tools = tools;
  return args;
}

async function stream(provider, cfg) {
  const out = {
    ok: true,
    text: '',
    reasoning: '',
    tool_calls: [],
    finish_reason: null,
    raw_finish_reason: null,
    errors: [],
    part_types: [],
  };
  try {
    const result = streamText({ ...callArgs(provider, cfg), onError: () => {} });
    for await (const part of result.fullStream) {
      if (out.part_types.at(-1) !== part.type) out.part_types.push(part.type);
      switch (part.type) {
        case 'text-delta':
          out.text += part.text;
          break;
        case 'reasoning-delta':
          out.reasoning += part.text;
          break;
        case 'tool-call':
          out.tool_calls.push({ id: part.toolCallId, name: part.toolName, input: part.input });
          break;
        case 'finish':
          out.finish_reason = part.finishReason;
          out.raw_finish_reason = part.rawFinishReason ?? null;
          break;
        case 'error':
        case 'tool-error':
          out.errors.push({ part: part.type, ...describeError(part.error) });
          break;
        default:
          break;
      }
    }
  } catch (err) {
    out.errors.push({ part: 'thrown', ...describeError(err) });
  }
  out.ok = out.errors.length === 0;
  return out;
}

async function generate(provider, cfg) {
  try {
    const r = await generateText(callArgs(provider, cfg));
    return {
      ok: true,
      text: r.text,
      reasoning: r.reasoningText ?? '',
      tool_calls: r.toolCalls.map((c) => ({ id: c.toolCallId, name: c.toolName, input: c.input })),
      finish_reason: r.finishReason,
      raw_finish_reason: r.rawFinishReason ?? null,
      errors: [],
    };
  } catch (err) {
    return { ok: false, text: '', reasoning: '', tool_calls: [], finish_reason: null, errors: [{ part: 'thrown', ...describeError(err) }] };
  }
}

await main(async (cfg) => {
  const providers = cfg.providers ?? ['openai', 'compatible'];
  const run = (cfg.stream ?? true) ? stream : generate;
  const ms = (cfg.timeoutMs ?? 10000) + 2000;
  const out = {};
  for (const p of providers) {
    out[p] = await withTimeout(run(p, cfg), ms, `ai-sdk ${p}`);
  }
  return out;
});
