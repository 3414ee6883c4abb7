"""Every repair the addon makes, by name, with how it reads in a flow's summary.

Contract: code counts `Repair` members (`repairs[Repair.null_fields] += 1`);
the summary line (`views.summary.describe`) reads their phrases. A member is a
`str` equal to its name, so counters, saved flows and tests can use the plain
name too. Names say what the upstream did, not what the addon does about it.

In a phrase, `{n}` is the count, `{s}` an "s" and `{es}` an "es" when the
count is not 1; a phrase without `{n}` gets " x{n}" when it is more than 1.
"""

from __future__ import annotations

import enum


class Repair(enum.StrEnum):
    phrase: str

    def __new__(cls, name: str, phrase: str) -> Repair:
        member = str.__new__(cls, name)
        member._value_ = name
        member.phrase = phrase
        return member

    # -- stream chunks (endpoints/chat/chunks.py, calls.py) -------------------
    null_fields = "null_fields", "{n} null field{s} dropped"
    role_missing_on_first_chunk = "role_missing_on_first_chunk", "role added to first chunk"
    role_repeated = "role_repeated", "role deduplicated"
    content_missing_on_first_chunk = "content_missing_on_first_chunk", 'content "" added to first chunk'
    chunk_id_missing = "chunk_id_missing", "{n} missing chunk id{s} filled in"
    chunk_id_changing = "chunk_id_changing", "{n} changing chunk id{s} pinned"
    chunk_object_wrong = "chunk_object_wrong", "object set to chat.completion.chunk on {n} chunk{s}"
    created_missing_or_not_integer = "created_missing_or_not_integer", "created fixed on {n} chunk{s}"
    created_changing = "created_changing", "created pinned on {n} chunk{s}"
    model_missing = "model_missing", "model filled in on {n} chunk{s}"
    choices_missing_or_object = "choices_missing_or_object", "choices made a list on {n} chunk{s}"
    choice_index_missing = "choice_index_missing", "{n} missing choice index{es} added"
    finish_reason_key_missing = "finish_reason_key_missing", "finish_reason key added to {n} choice{s}"
    finish_reason_empty = "finish_reason_empty", '{n} empty finish_reason{s} ("") made null'
    finish_reason_eos_token = "finish_reason_eos_token", "finish_reason eos_token renamed stop"
    tool_calls_finish_stop = "tool_calls_finish_stop", "finish_reason stop renamed tool_calls"
    delta_missing = "delta_missing", "delta added to {n} choice{s}"
    message_in_chunk = "message_in_chunk", "message dropped beside the delta in {n} chunk{s}"
    delta_not_object = "delta_not_object", "{n} non-object delta{s} turned into content"
    empty_chunk = "empty_chunk", "{n} empty chunk{s} dropped"
    empty_choices_chunk = "empty_choices_chunk", "{n} chunk{s} without choices handled"
    tool_calls_as_object = "tool_calls_as_object", "tool_calls made a list in {n} chunk{s}"
    tool_call_index_missing = "tool_call_index_missing", "{n} missing tool call index{es} added"
    tool_call_index_reused = "tool_call_index_reused", "{n} tool call{s} on a reused index renumbered"
    tool_name_repeated = "tool_name_repeated", "{n} repeated tool name{s} dropped"
    tool_name_empty = "tool_name_empty", '{n} empty tool name{s} ("") dropped'
    tool_name_missing = "tool_name_missing", "{n} tool call{s} started without a name"
    tool_name_late = "tool_name_late", "{n} late tool name{s} moved to the call's first delta"
    tool_call_id_missing = "tool_call_id_missing", "{n} missing tool call id{s} generated"
    tool_call_id_repeated = "tool_call_id_repeated", "{n} repeated tool call id{s} dropped"
    tool_call_id_reused = "tool_call_id_reused", "{n} reused tool call id{s} made unique"
    tool_call_type_missing = "tool_call_type_missing", "{n} missing tool call type{s} set to function"
    tool_arguments_not_string = "tool_arguments_not_string", "{n} tool argument object{s} turned into string{s}"
    finish_reason_never_sent = "finish_reason_never_sent", "finish chunk added"
    usage_not_last = "usage_not_last", "usage moved to one final chunk"
    usage_under_x_groq = "usage_under_x_groq", "usage taken from x_groq"

    # -- stream framing (endpoints/chat/stream.py) and headers ----------------
    done_missing = "done_missing", "[DONE] added"
    done_repeated = "done_repeated", "{n} repeated [DONE] dropped"
    chunk_after_done = "chunk_after_done", "{n} chunk{s} after [DONE] dropped"
    data_without_space = "data_without_space", "space added after data: on {n} event{s}"
    cr_line_ends = "cr_line_ends", "CR line ends made LF"
    named_event = "named_event", "event name dropped from {n} event{s}"
    stream_sent_as_json = "stream_sent_as_json", "content-type fixed"
    stream_answered_with_json = "stream_answered_with_json", "JSON reply to a stream request sent as a stream"
    error_at_status_200 = "error_at_status_200", "error sent with HTTP 200 given an error status"
    body_not_bare_json = "body_not_bare_json", "JSON body stripped of a data: prefix or blank lines"
    error_line_not_data = "error_line_not_data", "llama.cpp error: line sent as a data: error event"
    named_error_event = "named_error_event", "event: error sent as a data: error event"

    # -- non-stream replies (endpoints/chat/completion.py) --------------------
    completion_object_wrong = "completion_object_wrong", "object set to chat.completion"
    id_missing = "id_missing", "id filled in"
    message_missing = "message_missing", "{n} missing message{s} added"
    role_missing = "role_missing", "role added"
    content_missing = "content_missing", "content key added"
    content_null = "content_null", 'null content made ""'
    tool_arguments_missing = "tool_arguments_missing", '{n} missing tool argument{s} set to "{}"'

    # -- errors (endpoints/errors.py) -----------------------------------------
    error_body_empty = "error_body_empty", "empty error body made an OpenAI error"
    error_not_json = "error_not_json", "non-JSON error made an OpenAI error"
    error_unknown_shape = "error_unknown_shape", "unknown error shape made an OpenAI error"
    error_data_prefix = "error_data_prefix", "data: prefix taken off the error"
    error_in_array = "error_in_array", "error taken out of its array"
    error_is_string = "error_is_string", "string error made an error object"
    error_not_wrapped = "error_not_wrapped", 'error wrapped in {"error": ...}'
    nim_problem_json = "nim_problem_json", "NIM problem+json error made an OpenAI error"
    error_is_detail = "error_is_detail", "detail error made an OpenAI error"
    error_fields_missing = "error_fields_missing", "error fields filled in"

    # -- model lists (endpoints/models.py) ------------------------------------
    models_bare_list = "models_bare_list", 'model list wrapped in {"object": "list"}'
    models_list_object_missing = "models_list_object_missing", 'object "list" added to the model list'
    model_is_string = "model_is_string", "{n} model name{s} made model objects"
    model_id_missing = "model_id_missing", "{n} model id{s} taken from name"
    model_object_missing = "model_object_missing", 'object "model" added to {n} model{s}'
    model_created_missing_or_not_integer = "model_created_missing_or_not_integer", "created fixed on {n} model{s}"
    model_owned_by_missing = "model_owned_by_missing", "owned_by filled in on {n} model{s}"
    models_answered_locally = "models_answered_locally", "model list answered by the proxy (normalize_models)"
    models_endpoint_missing = "models_endpoint_missing", "model list answered by the proxy (upstream has none)"

    # -- requests (endpoints/chat/request.py) ---------------------------------
    stream_options_without_stream = "stream_options_without_stream", "stream_options dropped (stream is not true)"
    param_dropped = "param_dropped", "{n} unsupported param{s} dropped"
    model_alias = "model_alias", "model name aliased"
    max_completion_tokens_unsupported = "max_completion_tokens_unsupported", "max_completion_tokens sent as max_tokens"
    developer_role_unsupported = "developer_role_unsupported", "{n} developer message{s} sent as system"

    # -- hardening: caps and failures (mitm/, wire/) ---------------------------

    # -- both bridges: what of the upstream's chat stream the client's cannot carry (endpoints/bridge/)
    event_not_chunk = "event_not_chunk", "{n} upstream event{s} that are no chat chunk{s} left out"
    choice_beyond_first = "choice_beyond_first", "{n} choice{s} beyond the first left out"
    stream_not_translatable = "stream_not_translatable", "rest of the stream not readable: error event sent"
    stream_ended_early = "stream_ended_early", "upstream stream ended before it finished: error event sent"
    stream_without_chunks = "stream_without_chunks", "upstream stream held no chat chunk: error event sent"

    # -- the Responses bridge (endpoints/responses/) --------------------------
    # The upstream speaks chat completions only: what of a Responses request chat cannot carry.
    responses_param_unsupported = "responses_param_unsupported", "{n} Responses-only param{s} not sent upstream"
    hosted_tool_unavailable = "hosted_tool_unavailable", "{n} hosted tool{s} dropped (they cannot run upstream)"
    custom_tool_unsupported = "custom_tool_unsupported", "{n} custom tool{s} sent as function{s} taking one string"
    namespace_tool_unsupported = "namespace_tool_unsupported", "{n} namespace tool{s} flattened into functions"
    reasoning_item_unsupported = "reasoning_item_unsupported", "{n} reasoning item{s} not sent upstream"
    input_item_unsupported = "input_item_unsupported", "{n} input item{s} that chat cannot carry dropped"
    content_part_unsupported = "content_part_unsupported", "{n} content part{s} that chat cannot carry dropped"
    previous_response_unsupported = "previous_response_unsupported", "previous response replayed from the proxy's store"
    item_reference_unsupported = "item_reference_unsupported", "{n} item reference{s} resolved from the proxy's store"
    responses_body_on_chat_path = "responses_body_on_chat_path", "Responses-shaped body (Cursor agent) sent as chat"

    # -- the Messages bridge (endpoints/messages/) ----------------------------
    thinking_param_unsupported = "thinking_param_unsupported", "adaptive or disabled thinking not sent upstream"
    thinking_as_reasoning_effort = "thinking_as_reasoning_effort", "thinking sent as reasoning_effort"
    thinking_block_in_history = "thinking_block_in_history", "{n} thinking block{s} of the history not sent upstream"
    server_tool_unsupported = "server_tool_unsupported", "{n} Anthropic server tool{s} not sent upstream"
    content_block_unsupported = "content_block_unsupported", "{n} content block{s} with no chat counterpart not sent upstream"
    messages_field_unsupported = "messages_field_unsupported", "{n} Messages-only field{s} not sent upstream"
    api_key_header = "api_key_header", "x-api-key sent as Authorization: Bearer"
    error_not_anthropic = "error_not_anthropic", "error sent in Anthropic's shape"
    tool_arguments_not_json = "tool_arguments_not_json", "{n} tool call{s} with arguments that are no JSON object given input {}"
    count_tokens_unsupported = "count_tokens_unsupported", "input tokens estimated by the proxy"
    models_not_anthropic = "models_not_anthropic", "model list sent in Anthropic's shape"
    request_not_bridgeable = "request_not_bridgeable", "request not bridgeable: answered with an error"

    # -- NIM's request validation, reasoning, embeddings, pacing (profiles/) ---
    # reasoning (endpoints/chat/think.py)
    think_tags_in_content = "think_tags_in_content", "{n} chunk{s} of <think> reasoning sent as reasoning_content"
    think_open_tag_missing = "think_open_tag_missing", "reply began inside reasoning with no <think>"
    reasoning_in_separate_field = "reasoning_in_separate_field", "{n} reasoning chunk{s} folded into content as <think>"
    think_tags_in_history = "think_tags_in_history", "{n} folded <think> block{s} in history sent back as reasoning_content"
    # embeddings (endpoints/embeddings.py)
    embedding_input_type_missing = "embedding_input_type_missing", "input_type added"
    embedding_truncate_missing = "embedding_truncate_missing", "truncate added"
    embedding_dimensions_rejected = "embedding_dimensions_rejected", "dimensions dropped (the model rejects it)"
    embedding_dimensions_unsupported = "embedding_dimensions_unsupported", "dimensions rejected: dropped for this model from now on"
    embedding_floats_for_base64 = "embedding_floats_for_base64", "{n} float embedding{s} encoded as the base64 asked for"
    embedding_list_object_missing = "embedding_list_object_missing", 'object "list" added to the embedding list'
    embedding_object_missing = "embedding_object_missing", 'object "embedding" added to {n} embedding{s}'
    embedding_index_missing = "embedding_index_missing", "{n} missing embedding index{es} added"
    embedding_usage_missing = "embedding_usage_missing", "usage added to the embedding list"
    # request validation (endpoints/chat/validation.py), learned from rejections (chat/rejected.py)
    param_unsupported = "param_unsupported", "{n} param{s} the upstream rejects dropped (profile)"
    tool_function_key_unsupported = "tool_function_key_unsupported", "{n} tool function key{s} the upstream rejects dropped"
    param_rejected_before = "param_rejected_before", "{n} param{s} the upstream rejected before dropped"
    max_tokens_below_1 = "max_tokens_below_1", "max_tokens below 1 raised to 1"
    reasoning_effort_not_the_switch = "reasoning_effort_not_the_switch", "reasoning_effort sent as the model's own reasoning switch"
    max_tokens_default_too_low = "max_tokens_default_too_low", "max_tokens added (normalize_default_max_tokens)"
    max_tokens_over_model_limit = "max_tokens_over_model_limit", "max_tokens lowered to what the model allows"
    param_rejected = "param_rejected", "{n} param{s} rejected by the upstream, to be dropped from now on"
    max_tokens_rejected = "max_tokens_rejected", "max_tokens rejected by the upstream, to be lowered from now on"
    rejected_request_retried = "rejected_request_retried", "rejected request retried once, repaired"
    # errors (endpoints/errors.py)
    validation_error_as_401 = "validation_error_as_401", "401 for a request it failed to validate made a 400"
    resource_exhausted_not_429 = "resource_exhausted_not_429", "ResourceExhausted worker cap made a 429"
    model_gone_as_problem = "model_gone_as_problem", "removed model (problem+json 404/410) made a 404 model_not_found"
    function_degraded_as_400 = "function_degraded_as_400", "DEGRADED function made a 503"
    # pacing (pacing.py, mitm/pace.py)
    rate_limit_held = "rate_limit_held", "held {n} ms for normalize_rate_limit"
    rate_limit_exceeded_wait = "rate_limit_exceeded_wait", "answered 429: the wait for normalize_rate_limit was too long"


def phrase(repair: str, n: int) -> str:
    """How `n` of one repair read in a summary; a name that is no Repair reads as its words."""
    template = Repair[repair].phrase if repair in Repair.__members__ else repair.replace("_", " ")
    if "{n}" not in template:
        return template if n == 1 else f"{template} x{n}"
    return template.replace("{n}", str(n)).replace("{s}", "" if n == 1 else "s").replace("{es}", "" if n == 1 else "es")
