// The Vercel AI SDK's default OpenAI model, which speaks the Responses API (@ai-sdk/openai
// since v5: createOpenAI(...)(model) posts to {baseURL}/responses).
//
//   node ai_sdk_responses_client.mjs '<config json>'     (or the config on stdin; see common.mjs)
//
// Runs streamText with one tool that has an `execute`, and `stopWhen: stepCountIs(3)`,
// so when the model calls the tool the SDK runs it and sends its result back in a second
// request (a `function_call_output` item), then streams the final answer.
//
// Config: baseURL, model, prompt, tool: {name, description, parameters, result}
// (the tool's execute returns `result` as it is).
// Result: { ok, text, tool_calls: [{id, name, input}], tool_results: [{id, output}],
//   finish_reason, steps, response_ids, errors: [{name, message, status, ...}] }

import { createOpenAI } from '@ai-sdk/openai';
import { jsonSchema, stepCountIs, streamText, tool } from 'ai';
import { describeError, main, makeFetch } from './common.mjs';

async function run(cfg) {
  const out = { ok: true, text: '', tool_calls: [], tool_results: [], finish_reason: null, steps: 0, response_ids: [], errors: [] };
  const provider = createOpenAI({ baseURL: cfg.baseURL, apiKey: cfg.apiKey ?? 'test-key', fetch: makeFetch(cfg) });
  const tools = {
    [cfg.tool.name]: tool({
      description: cfg.tool.description,
      inputSchema: jsonSchema(cfg.tool.parameters),
      execute: async () => cfg.tool.result,
    }),
  };
  try {
    const result = streamText({
      model: provider(cfg.model),
      prompt: cfg.prompt,
      tools,
      stopWhen: stepCountIs(3),
      maxRetries: 0,
      onError: () => {},
    });
    for await (const part of result.fullStream) {
      switch (part.type) {
        case 'text-delta':
          out.text += part.text;
          break;
        case 'tool-call':
          out.tool_calls.push({ id: part.toolCallId, name: part.toolName, input: part.input });
          break;
        case 'tool-result':
          out.tool_results.push({ id: part.toolCallId, output: part.output });
          break;
        case 'finish-step':
          out.steps += 1;
          if (part.response?.id) out.response_ids.push(part.response.id);
          break;
        case 'finish':
          out.finish_reason = part.finishReason;
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

main(run);
