"""A Responses request as the chat request the upstream gets: one test per translation rule."""

import json
from collections import Counter

import pytest
from hypothesis import given
from hypothesis import strategies as st

from normalize.endpoints.responses.custom_input import InputReader
from normalize.endpoints.responses.request import BridgeError, Lookup, to_chat
from normalize.endpoints.responses.tools import ToolMap, chat_tool_choice, chat_tools
from normalize.repairs import Repair

# What Codex 0.169 sends (clients.md), cut down: developer and user messages, flat function
# tools with strict:false, a namespace, the freeform apply_patch, hosted tools, Responses-only keys.
CODEX = {
    "model": "gpt-5.5",
    "stream": True,
    "input": [
        {"type": "message", "id": "msg_1", "role": "developer", "content": [{"type": "input_text", "text": "You are Codex."}]},
        {"type": "message", "id": "msg_2", "role": "user", "content": [{"type": "input_text", "text": "<environment_context/>"}]},
        {"type": "message", "id": "msg_3", "role": "user", "content": [{"type": "input_text", "text": "Say hi"}]},
    ],
    "tools": [
        {"type": "function", "name": "exec_command", "description": "Runs a command.", "strict": False,
         "parameters": {"type": "object", "properties": {"cmd": {"type": "string"}}, "required": ["cmd"]}},
        {"type": "custom", "name": "apply_patch", "description": "Edit files.",
         "format": {"type": "grammar", "syntax": "lark", "definition": "start: begin_patch hunk+ end_patch"}},
        {"type": "namespace", "name": "multi_agent_v1", "description": "Sub-agents.",
         "tools": [{"type": "function", "name": "close_agent", "strict": False, "parameters": {"type": "object", "properties": {}}}]},
        {"type": "tool_search", "execution": "client", "parameters": {}},
        {"type": "web_search", "external_web_access": True},
    ],
    "tool_choice": "auto",
    "parallel_tool_calls": True,
    "reasoning": {"effort": "medium", "summary": "auto"},
    "store": False,
    "include": ["reasoning.encrypted_content"],
    "prompt_cache_key": "0a1b",
    "client_metadata": {"x-codex-installation-id": "7e72"},
    "text": {"verbosity": "low"},
}


def chat(body, **kw):
    return to_chat(body, **kw).chat


def test_codex_request():
    bridged = to_chat(CODEX)
    assert bridged.chat == {
        "model": "gpt-5.5",
        "messages": [
            {"role": "developer", "content": "You are Codex."},
            {"role": "user", "content": "<environment_context/>"},
            {"role": "user", "content": "Say hi"},
        ],
        "tools": [
            {"type": "function", "function": {"name": "exec_command", "description": "Runs a command.",
                                              "parameters": {"type": "object", "properties": {"cmd": {"type": "string"}}, "required": ["cmd"]}}},
            {"type": "function", "function": {
                "name": "apply_patch",
                "description": "Edit files.\n\nThe input is plain text (not JSON) that must match this lark grammar:\nstart: begin_patch hunk+ end_patch",
                "parameters": {"type": "object", "properties": {"input": {"type": "string", "description": "The tool's whole input, as plain text."}},
                               "required": ["input"], "additionalProperties": False}}},
            {"type": "function", "function": {"name": "multi_agent_v1__close_agent", "parameters": {"type": "object", "properties": {}}}},
        ],
        "tool_choice": "auto",
        "parallel_tool_calls": True,
        "reasoning_effort": "medium",
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    assert bridged.repairs == Counter({
        Repair.responses_param_unsupported: 4,  # store, include, prompt_cache_key, client_metadata
        Repair.hosted_tool_unavailable: 2,
        Repair.custom_tool_unsupported: 1,
        Repair.namespace_tool_unsupported: 1,
    })
    assert bridged.input == CODEX["input"]


def test_responses_param_unsupported():
    body = {"model": "m", "input": "hi", "store": True, "include": [], "metadata": {"a": "b"}, "truncation": "auto",
            "service_tier": "flex", "user": "u", "background": False, "prompt_cache_key": "k", "client_metadata": {}}
    bridged = to_chat(body)
    assert bridged.chat == {"model": "m", "messages": [{"role": "user", "content": "hi"}]}
    assert bridged.repairs[Repair.responses_param_unsupported] == 9


def test_instructions_are_a_leading_system_message():
    assert chat({"model": "m", "instructions": "Be brief.", "input": "hi"})["messages"] == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "hi"},
    ]


def test_input_items_without_type_are_messages():
    # openai-agents sends {"role": "user", "content": ...} without "type".
    assert chat({"input": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}]})["messages"] == [
        {"role": "user", "content": "hi"},
        {"role": "assistant", "content": "hello"},
    ]


def test_content_part_unsupported():
    item = {"role": "user", "content": [
        {"type": "input_text", "text": "What is this?"},
        {"type": "input_image", "image_url": "data:image/png;base64,AAAA", "detail": "low"},
        {"type": "input_image", "file_id": "file-1"},
        {"type": "input_file", "file_id": "file-2"},
    ]}
    bridged = to_chat({"input": [item]})
    assert bridged.chat["messages"] == [{"role": "user", "content": [
        {"type": "text", "text": "What is this?"},
        {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA", "detail": "low"}},
    ]}]
    assert bridged.repairs[Repair.content_part_unsupported] == 2


def test_several_text_parts_are_joined():
    item = {"role": "user", "content": [{"type": "input_text", "text": "a"}, {"type": "input_text", "text": "b"}]}
    assert chat({"input": [item]})["messages"] == [{"role": "user", "content": "a\nb"}]


def test_assistant_output_text_and_refusal():
    item = {"type": "message", "role": "assistant", "status": "completed", "id": "msg_9",
            "content": [{"type": "output_text", "text": "Sure.", "annotations": []}, {"type": "refusal", "refusal": " No."}]}
    assert chat({"input": [item]})["messages"] == [{"role": "assistant", "content": "Sure.\n No."}]


def test_function_calls_and_outputs():
    # A Codex follow-up turn: the message, the echoed calls (with id and status), their outputs.
    body = {"input": [
        {"type": "message", "role": "user", "content": "list files"},
        {"type": "message", "role": "assistant", "content": [{"type": "output_text", "text": "Looking."}]},
        {"type": "function_call", "id": "fc_1", "status": "completed", "call_id": "call_a", "name": "exec_command", "arguments": '{"cmd":"ls"}'},
        {"type": "function_call", "id": "fc_2", "status": "completed", "call_id": "call_b", "name": "exec_command", "arguments": '{"cmd":"pwd"}'},
        {"type": "function_call_output", "id": "fco_1", "call_id": "call_a", "output": "Process exited with code 0\nOutput:\na.txt\n"},
        {"type": "function_call_output", "call_id": "call_b", "output": [{"type": "input_text", "text": "/tmp"}]},
    ], "tools": CODEX["tools"][:1]}
    assert chat(body)["messages"] == [
        {"role": "user", "content": "list files"},
        {"role": "assistant", "content": "Looking.", "tool_calls": [
            {"id": "call_a", "type": "function", "function": {"name": "exec_command", "arguments": '{"cmd":"ls"}'}},
            {"id": "call_b", "type": "function", "function": {"name": "exec_command", "arguments": '{"cmd":"pwd"}'}},
        ]},
        {"role": "tool", "tool_call_id": "call_a", "content": "Process exited with code 0\nOutput:\na.txt\n"},
        {"role": "tool", "tool_call_id": "call_b", "content": "/tmp"},
    ]


def test_custom_tool_unsupported_calls_in_history():
    patch = "*** Begin Patch\n*** Add File: a.txt\n+hi\n*** End Patch\n"
    body = {"input": [
        {"type": "custom_tool_call", "call_id": "call_p", "name": "apply_patch", "input": patch},
        {"type": "custom_tool_call_output", "call_id": "call_p", "output": "Success. Updated the following files:\nA a.txt\n"},
    ], "tools": CODEX["tools"]}
    messages = chat(body)["messages"]
    assert messages[0] == {"role": "assistant", "content": None, "tool_calls": [
        {"id": "call_p", "type": "function", "function": {"name": "apply_patch", "arguments": json.dumps({"input": patch}, ensure_ascii=False, separators=(",", ":"))}}]}
    assert messages[1] == {"role": "tool", "tool_call_id": "call_p", "content": "Success. Updated the following files:\nA a.txt\n"}


def test_namespace_tool_unsupported_call_in_history():
    body = {"input": [{"type": "function_call", "call_id": "c", "name": "close_agent", "namespace": "multi_agent_v1", "arguments": "{}"}],
            "tools": CODEX["tools"]}
    assert chat(body)["messages"][0]["tool_calls"][0]["function"]["name"] == "multi_agent_v1__close_agent"


def test_reasoning_item_unsupported():
    bridged = to_chat({"input": [{"type": "reasoning", "id": "rs_1", "summary": [], "encrypted_content": None},
                                 {"role": "user", "content": "hi"}]})
    assert bridged.chat["messages"] == [{"role": "user", "content": "hi"}]
    assert bridged.repairs[Repair.reasoning_item_unsupported] == 1


def test_input_item_unsupported():
    bridged = to_chat({"input": [{"type": "web_search_call", "id": "ws_1", "status": "completed"}, "text", {"role": "user", "content": "hi"}]})
    assert bridged.chat["messages"] == [{"role": "user", "content": "hi"}]
    assert bridged.repairs[Repair.input_item_unsupported] == 2


def test_tool_strict_kept_for_the_profile_to_judge():
    # A true `strict` goes to chat as it is; the nim profile's rule drops it (NIM: 401
    # "Unknown parameter: function.strict"), as it does for chat clients.
    tools = [{"type": "function", "name": "f", "strict": True, "parameters": {"type": "object"}}]
    assert chat({"tools": tools, "input": "x"})["tools"][0]["function"]["strict"] is True


def test_hosted_tool_unavailable(caplog):
    # Dropped with a log line and a count, never a 400; other bridges drop web_search,
    # tool_search and namespace tools silently (maxx PR #813, HarnessRouter/harnessrouter#202).
    caplog.set_level("INFO")
    bridged = to_chat({"input": "x", "tools": [{"type": "web_search"}, {"type": "file_search", "vector_store_ids": []},
                                               {"type": "code_interpreter"}, {"type": "image_generation"}, {"type": "computer_use_preview"}],
                       "tool_choice": "auto"})
    assert "tools" not in bridged.chat and "tool_choice" not in bridged.chat
    assert bridged.repairs[Repair.hosted_tool_unavailable] == 5
    assert "code_interpreter" in caplog.text


@pytest.mark.parametrize(("choice", "want"), [
    ("auto", "auto"), ("none", "none"), ("required", "required"),
    ({"type": "function", "name": "exec_command"}, {"type": "function", "function": {"name": "exec_command"}}),
    ({"type": "custom", "name": "apply_patch"}, {"type": "function", "function": {"name": "apply_patch"}}),
    ({"type": "allowed_tools", "mode": "required", "tools": []}, "required"),
    ({"type": "web_search"}, None),
])
def test_tool_choice(choice, want):
    names = chat_tools(CODEX["tools"], repairs=Counter(), label="t")[1]
    assert chat_tool_choice(choice, names) == want


def test_tool_names_map_back():
    names: ToolMap = chat_tools(CODEX["tools"] + [{"type": "function", "name": "multi_agent_v1__close_agent"}],
                                repairs=Counter(), label="t")[1]
    assert names.tool("multi_agent_v1__close_agent").namespace == "multi_agent_v1"
    assert names.tool("multi_agent_v1__close_agent_2").namespace is None  # a name already taken gets a suffix
    assert names.tool("apply_patch").kind == "custom"
    assert names.tool("unknown").kind == "function"


def test_parameters():
    body = {"input": "x", "max_output_tokens": 100, "temperature": 0.2, "top_p": 0.9, "stop": ["\n"],
            "text": {"format": {"type": "json_schema", "name": "out", "schema": {"type": "object"}, "strict": True}}}
    assert chat(body) == {"messages": [{"role": "user", "content": "x"}], "temperature": 0.2, "top_p": 0.9, "stop": ["\n"],
                          "max_tokens": 100, "response_format": {"type": "json_schema", "json_schema": {"name": "out", "schema": {"type": "object"}, "strict": True}}}
    assert chat({"input": "x", "text": {"format": {"type": "json_object"}}})["response_format"] == {"type": "json_object"}
    assert "response_format" not in chat({"input": "x", "text": {"format": {"type": "text"}}})


def test_not_streamed_asks_no_usage():
    assert "stream_options" not in chat({"input": "x", "stream": False})


def test_previous_response_unsupported():
    stored = [{"type": "message", "role": "user", "content": "first"},
              {"type": "message", "role": "assistant", "content": [{"type": "output_text", "text": "one"}]}]
    bridged = to_chat({"previous_response_id": "resp_1", "instructions": "Be brief.", "input": "second"},
                      Lookup(previous=lambda rid: stored if rid == "resp_1" else None))
    assert bridged.chat["messages"] == [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "first"},
                                        {"role": "assistant", "content": "one"}, {"role": "user", "content": "second"}]
    assert bridged.input == [{"type": "message", "role": "user", "content": "second"}]  # what the store keeps of this turn
    assert bridged.repairs[Repair.previous_response_unsupported] == 1


def test_unknown_previous_response_is_openais_400():
    with pytest.raises(BridgeError) as e:
        to_chat({"previous_response_id": "resp_gone", "input": "x"})
    assert e.value.status == 400
    assert e.value.error == {"error": {"message": "Previous response with id 'resp_gone' not found.", "type": "invalid_request_error",
                                       "param": "previous_response_id", "code": "previous_response_not_found"}}


def test_item_reference_unsupported():
    item = {"type": "message", "id": "msg_7", "role": "user", "content": "kept"}
    bridged = to_chat({"input": [{"type": "item_reference", "id": "msg_7"}]}, Lookup(item=lambda iid: item if iid == "msg_7" else None))
    assert bridged.chat["messages"] == [{"role": "user", "content": "kept"}]
    with pytest.raises(BridgeError) as e:
        to_chat({"input": [{"type": "item_reference", "id": "msg_8"}]})
    assert e.value.status == 404


# -- a custom tool's input, read out of its arguments ------------------------------------

PATCH = '*** Begin Patch\n*** Update File: a.py\n@@\n-print("hi")\n+print("héllo \\ 🚀")\n*** End Patch\n'


@pytest.mark.parametrize("arguments", [
    json.dumps({"input": PATCH}), json.dumps({"input": PATCH}, ensure_ascii=False), '{ "input" :\n "x\\ty" , "other": 1}',
    json.dumps({"other": 1, "input": PATCH}), PATCH, '{"input": 5}', '{"input": "bad \\q escape"}', "", '{"input": "\\ud83d\\ude80 \\ud800"}',
])
@given(data=st.data())
def test_custom_input_any_split_adds_up(arguments, data):
    cuts = sorted(data.draw(st.sets(st.integers(0, len(arguments)), max_size=8)))
    reader = InputReader()
    deltas = [reader.feed(arguments[a:b]) for a, b in zip([0, *cuts], [*cuts, len(arguments)])]
    deltas.append(reader.finish(arguments))
    assert "".join(deltas) == "".join(reader.sent)
    try:
        value = json.loads(arguments)
        want = value["input"] if isinstance(value, dict) and isinstance(value.get("input"), str) else arguments
    except ValueError:
        want = "".join(reader.sent) if arguments.startswith('{"input": "bad') else arguments
    assert "".join(reader.sent) == want


def test_custom_input_streams_as_it_comes():
    reader = InputReader()
    assert reader.feed('{"input": "*** Be') == "*** Be"
    assert reader.feed('gin Patch\\n') == "gin Patch\n"
    assert reader.feed('"}') == ""
    assert reader.finish('{"input": "*** Begin Patch\\n"}') == ""
