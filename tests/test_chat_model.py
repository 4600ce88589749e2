"""ChatEFE: GPT4Tools prompt rendering, tool-call parsing, format retries, and real decoding.

Parsing and retry logic are driven by langchain_core's FakeListLLM (a fake of the model's *output*
text, so our parsing is what is tested); decoding runs a real tiny Llama through LocalLLM.
"""

from __future__ import annotations

import json

import pytest
from langchain.agents import create_agent
from langchain_core.callbacks import BaseCallbackHandler
from langchain_core.language_models.fake import FakeListLLM
from langchain_core.messages import AIMessage, HumanMessage, SystemMessage, ToolMessage
from langchain_core.tools import BaseTool, tool
from pydantic import BaseModel, Field

from efe_langchain import react
from efe_langchain.chat_model import ChatEFE, messages_to_prompt, to_react_tool
from efe_langchain.prompts import tool_spec

EDGE = tool_spec("Edge Detection On Image")
INSTRUCT = tool_spec("Instruct Image Using Text")
UPLOAD = "Provide an image named image/k3j9x0ab.png. Description: two dogs on a beach. Understand the image using tools."


class ImageInput(BaseModel):
    image_path: str = Field(description="an image path")


class ImageTextInput(BaseModel):
    image_path: str
    text: str


class EdgeTool(BaseTool):
    """Shaped like our tools: a snake_case name plus the GPT4Tools name and argument count."""

    name: str = "edge_detection_on_image"
    gpt4tools_name: str = EDGE.name
    description: str = EDGE.description
    n_args: int = 1
    args_schema: type[BaseModel] = ImageInput

    def _run(self, image_path: str) -> str:
        return image_path.replace(".png", "_edge.png")


class InstructTool(BaseTool):
    name: str = "instruct_image_using_text"
    gpt4tools_name: str = INSTRUCT.name
    description: str = INSTRUCT.description
    n_args: int = 2
    args_schema: type[BaseModel] = ImageTextInput

    def _run(self, image_path: str, text: str) -> str:
        return f"{image_path} styled as {text}"


@tool
def add_numbers(a: int, b: int) -> int:
    """Add two integers.

    Returns their sum.
    """
    return a + b


def fake(*responses: str) -> FakeListLLM:
    return FakeListLLM(responses=list(responses))


YES_EDGE = "Thought: Do I need to use a tool? Yes\nAction: Edge Detection On Image\nAction Input: image/k3j9x0ab.png"


# -- tool rendering ----------------------------------------------------------------------------
def test_our_tools_render_with_their_gpt4tools_name_and_verbatim_description():
    rt = to_react_tool(EdgeTool())
    assert (rt.name, rt.react_name, rt.description, rt.n_args, rt.takes_image) == (
        "edge_detection_on_image", EDGE.name, EDGE.description, 1, True
    )
    assert react.render_tool_lines([rt]) == f"> {EDGE.name}: {EDGE.description}"


def test_plain_langchain_tools_get_a_one_line_description_with_the_input_format():
    rt = to_react_tool(add_numbers)
    assert rt.react_name == "add_numbers" and rt.fields == ("a", "b") and rt.n_args == 2
    assert rt.description == (
        "Add two integers. Returns their sum. The input to this tool should be a comma separated "
        "string of two, representing the a and the b."
    )
    assert not rt.takes_image


def test_dict_and_pydantic_schemas_are_accepted():
    class Person(BaseModel):
        """Record a person."""

        name: str
        age: int

    for schema in (Person, Person.model_json_schema(), {"name": "Person", "description": "Record a person.",
                                                        "parameters": {"type": "object", "properties": {"name": {"type": "string"}, "age": {"type": "integer"}}}}):
        rt = to_react_tool(schema)
        assert rt.name == "Person" and rt.fields == ("name", "age") and rt.n_args == 2
        assert rt.args_from_input("Ada Lovelace, 36") == {"name": "Ada Lovelace", "age": 36}


def test_args_follow_the_schema_order_with_commas_kept_in_the_last():
    rt = to_react_tool(InstructTool())
    assert rt.args_from_input("image/a.png, make it look like a painting, please") == {
        "image_path": "image/a.png",
        "text": "make it look like a painting, please",
    }
    # a non-integer for an integer field stays text, so the tool's validation can say so
    assert to_react_tool(add_numbers).args_from_input("two, 3") == {"a": "two", "b": 3}


# -- message rendering -------------------------------------------------------------------------
def test_messages_render_into_history_input_and_scratchpad_byte_for_byte():
    call = AIMessage("", tool_calls=[{"name": "edge_detection_on_image", "args": {"image_path": "image/k3j9x0ab.png"}, "id": "c1"}])
    messages = [
        SystemMessage("You are helpful."),
        HumanMessage(UPLOAD),
        AIMessage("Received."),
        HumanMessage("What is in it?"),
        # an earlier turn's tool step: GPT4Tools keeps only human inputs and final answers
        AIMessage("", tool_calls=[{"name": "get_photo_description", "args": {"image_path": "image/k3j9x0ab.png"}, "id": "c0"}]),
        ToolMessage("two dogs", tool_call_id="c0"),
        AIMessage("Two dogs on a beach."),
        HumanMessage("Find the outlines in this picture."),
        call,
        ToolMessage("image/0f3c_edge_k3j9x0ab_k3j9x0ab.png", tool_call_id="c1"),
    ]
    expected = react.render_prompt(
        [EDGE],
        UPLOAD.join(["Human: ", "\nAI: Received.\n"]) + "Human: What is in it?\nAI: Two dogs on a beach.",
        "Find the outlines in this picture.",
        "Thought: Do I need to use a tool? Yes\nAction: Edge Detection On Image\nAction Input: image/k3j9x0ab.png\n"
        "Observation: image/0f3c_edge_k3j9x0ab_k3j9x0ab.png\n",
    )
    assert messages_to_prompt(messages, [EdgeTool()]) == expected
    # the system message is ignored by default: the GPT4Tools prefix is what the model knows
    assert "You are helpful" not in expected
    assert "You are helpful.\nFind the outlines" in messages_to_prompt(messages, [EdgeTool()], include_system_messages=True)


def test_generated_prompt_is_kept_with_the_raw_react_text():
    model = ChatEFE(llm=fake(YES_EDGE + "\nObservation: image/made_up.png")).bind_tools([EdgeTool()])
    msgs = [HumanMessage(UPLOAD), AIMessage("Received."), HumanMessage("Find the outlines in this picture.")]
    out = model.invoke(msgs)
    assert out.response_metadata["prompt"] == messages_to_prompt(msgs, [EdgeTool()])
    assert out.response_metadata["react_text"] == YES_EDGE + "\nObservation: image/made_up.png"


# -- parsing into tool calls and answers ---------------------------------------------------------
def test_tool_call_uses_the_langchain_name_and_schema_fields():
    model = ChatEFE(llm=fake(
        'Thought: Do I need to use a tool? Yes\nAction: instruct image using text\nAction Input: "image/a.png", make it a painting, in oil'
    )).bind_tools([EdgeTool(), InstructTool()])
    out = model.invoke("make image/a.png a painting")
    assert out.content == ""
    [call] = out.tool_calls
    assert call["name"] == "instruct_image_using_text"
    assert call["args"] == {"image_path": "image/a.png", "text": "make it a painting, in oil"}
    assert call["id"].startswith("call_")
    assert out.response_metadata["finish_reason"] == "tool_calls"


def test_final_answer_becomes_content():
    out = ChatEFE(llm=fake("Thought: Do I need to use a tool? No\nAI: Hello there!\nHuman: hi")).bind_tools([EdgeTool()]).invoke("hi")
    assert out.content == "Hello there!" and out.tool_calls == []


def test_format_failures_are_retried_with_the_reminder_as_observation():
    prompts: list[str] = []

    class Record(BaseCallbackHandler):
        def on_llm_start(self, serialized, batch, **kwargs):
            prompts.extend(batch)

    llm = FakeListLLM(
        responses=["Thought: I should look at it", "Thought: Do I need to use a tool? Yes\nAction: Photoshop\nAction Input: x", YES_EDGE],
        callbacks=[Record()],
    )
    out = ChatEFE(llm=llm, max_format_retries=2).bind_tools([EdgeTool()]).invoke("edges of image/k3j9x0ab.png")
    assert out.tool_calls[0]["args"] == {"image_path": "image/k3j9x0ab.png"}
    assert len(out.response_metadata["react_attempts"]) == 3
    assert len(prompts) == 3
    reminder1 = react.FORMAT_REMINDER.format(error="expected 'Action:' with 'Action Input:', or 'AI:'", tool_names=EDGE.name)
    assert prompts[1] == prompts[0] + "Thought: I should look at it\nObservation: " + reminder1 + "\n"
    assert "'Photoshop' is not one of the listed tools" in prompts[2]


def test_too_few_arguments_is_a_format_failure():
    llm = fake(
        "Thought: Do I need to use a tool? Yes\nAction: Instruct Image Using Text\nAction Input: image/a.png",
        "Thought: Do I need to use a tool? Yes\nAction: Instruct Image Using Text\nAction Input: image/a.png, make it pop",
    )
    out = ChatEFE(llm=llm).bind_tools([InstructTool()]).invoke("style image/a.png")
    assert out.tool_calls[0]["args"] == {"image_path": "image/a.png", "text": "make it pop"}
    assert "takes 2 comma-separated inputs (image_path, text), got 1" in out.response_metadata["prompt"]


def test_retries_are_bounded_then_a_clear_final_message():
    out = ChatEFE(llm=fake("gibberish Action", "Action: Edge Detection On Image"), max_format_retries=1).bind_tools([EdgeTool()]).invoke("x")
    assert out.tool_calls == []
    assert out.content.startswith("Sorry, I could not turn that into a valid tool call or answer after 2 tries")
    assert "'Action Input:' is missing" in out.response_metadata["parse_error"]
    assert out.response_metadata["react_attempts"] == ["gibberish Action", "Action: Edge Detection On Image"]


def test_tool_choice_naming_a_tool_lists_only_it():
    model = ChatEFE(llm=fake("Thought: Do I need to use a tool? No\nAI: ok"))
    out = model.bind_tools([EdgeTool(), add_numbers], tool_choice="add_numbers").invoke("1+1")
    assert "> add_numbers:" in out.response_metadata["prompt"] and EDGE.name not in out.response_metadata["prompt"]
    with pytest.raises(ValueError, match="not among the bound tools"):
        model.bind_tools([EdgeTool()], tool_choice="nope")


def test_stream_gives_the_same_tool_call():
    model = ChatEFE(llm=fake(YES_EDGE)).bind_tools([EdgeTool()])
    chunks = list(model.stream("edges of image/k3j9x0ab.png"))
    whole = chunks[0]
    for c in chunks[1:]:
        whole = whole + c
    [call] = whole.tool_calls
    assert call["name"] == "edge_detection_on_image" and call["args"] == {"image_path": "image/k3j9x0ab.png"}
    assert json.loads(whole.tool_call_chunks[0]["args"]) == call["args"]
    assert whole.response_metadata["react_text"] == YES_EDGE


def test_runs_in_create_agent_like_a_hosted_chat_model():
    llm = fake(
        "Thought: Do I need to use a tool? Yes\nAction: add_numbers\nAction Input: 2, 40",
        "Thought: Do I need to use a tool? No\nAI: The sum is 42.",
    )
    agent = create_agent(ChatEFE(llm=llm), [add_numbers])
    out = agent.invoke({"messages": [HumanMessage("What is 2 + 40?")]})
    kinds = [type(m).__name__ for m in out["messages"]]
    assert kinds == ["HumanMessage", "AIMessage", "ToolMessage", "AIMessage"]
    assert out["messages"][2].content == "42"
    assert out["messages"][-1].content == "The sum is 42."
    # the second call saw the tool's real result as its observation
    assert out["messages"][-1].response_metadata["prompt"].endswith("Action Input: 2, 40\nObservation: 42\n")


# -- a real (tiny, random) model -------------------------------------------------------------------
def test_constrained_decoding_on_a_real_model_only_calls_bound_tools_on_known_images(tiny_llm):
    tiny_llm.max_new_tokens = 12  # a random model's free text is noise: keep it short
    model = ChatEFE(llm=tiny_llm, constrained=True).bind_tools([EdgeTool(), InstructTool()])
    msgs = [HumanMessage(UPLOAD), AIMessage("Received."), HumanMessage("Find the outlines in this picture.")]
    out = model.invoke(msgs)
    text = out.response_metadata["react_text"]
    assert text.startswith(react.THOUGHT_PREFIX) and "Observation:" not in text
    if out.tool_calls:
        [call] = out.tool_calls
        assert call["name"] in ("edge_detection_on_image", "instruct_image_using_text")
        assert call["args"]["image_path"] == "image/k3j9x0ab.png"
        assert "react_attempts" not in out.response_metadata  # constrained output always parses
    else:
        assert out.content
    assert out.usage_metadata["input_tokens"] > 500


def test_free_decoding_on_a_real_model_never_raises(tiny_llm):
    tiny_llm.max_new_tokens = 12
    model = ChatEFE(llm=tiny_llm, constrained=False, max_format_retries=1).bind_tools([EdgeTool()])
    out = model.invoke([HumanMessage(UPLOAD), AIMessage("Received."), HumanMessage("edges please")])
    assert isinstance(out, AIMessage)
    assert out.tool_calls or out.content
    assert 1 <= len(out.response_metadata.get("react_attempts", [None])) <= 2


def test_a_tool_without_arguments_gets_none():
    @tool
    def what_time_is_it() -> str:
        """Tell the time."""
        return "noon"

    out = ChatEFE(llm=fake("Thought: Do I need to use a tool? Yes\nAction: what_time_is_it\nAction Input: now")).bind_tools([what_time_is_it]).invoke("time?")
    assert out.tool_calls[0]["args"] == {}
    assert what_time_is_it.invoke(out.tool_calls[0]["args"]) == "noon"


class PromptSeedInput(BaseModel):
    text: str = Field(description="the prompt")
    seed: int | None = Field(default=None, description="random seed (optional)")


class Text2ImageTool(BaseTool):
    """Shaped like our generation tools: one GPT4Tools argument plus an optional seed."""

    name: str = "generate_image_from_user_input_text"
    gpt4tools_name: str = "Generate Image From User Input Text"
    description: str = "useful when you want to generate an image from a user input text."
    n_args: int = 1
    args_schema: type[BaseModel] = PromptSeedInput

    def _run(self, text: str, seed: int | None = None) -> str:
        return f"image for {text} (seed {seed})"


def test_optional_fields_are_not_required():
    @tool
    def draw(prompt: str, seed: int | None = None) -> str:
        """Draw a picture."""
        return prompt

    for t in (Text2ImageTool(), draw):
        bound = ChatEFE(llm=fake("Thought: Do I need to use a tool? No\nAI: ok")).bind_tools([t])
        [rendered] = bound.kwargs["tools"]
        params = rendered["function"]["parameters"]
        first = next(iter(params["properties"]))
        assert params["required"] == [first], params
        assert params["properties"]["seed"] == {"type": "integer"}
        rt = to_react_tool(rendered)  # the dict bind_tools keeps reads back the same way
        assert rt.n_args == 1 and rt.required == (first,)
        # A call whose optional seed is unset renders as the required input alone.
        assert rt.input_from_args({first: "a cat", "seed": None}) == "a cat"
        assert rt.input_from_args({first: "a cat", "seed": 7}) == "a cat, 7"
    # A plain tool is asked for its required input only, and one input is a valid call.
    rt = to_react_tool(draw)
    assert "seed" not in rt.description and rt.args_from_input("a red car, at night") == {"prompt": "a red car, at night"}
    out = ChatEFE(llm=fake("Thought: Do I need to use a tool? Yes\nAction: draw\nAction Input: a cat")).bind_tools([draw]).invoke("draw a cat")
    assert out.tool_calls[0]["args"] == {"prompt": "a cat"}


def test_a_gpt4tools_tool_given_by_its_snake_name_shows_its_trained_name_and_words():
    schema = {"type": "function", "function": {"name": "instruct_image_using_text", "description": "edit",
              "parameters": {"type": "object", "properties": {"image_path": {"type": "string"}, "text": {"type": "string"}}}}}
    rt = to_react_tool(schema)
    assert (rt.name, rt.react_name, rt.description, rt.n_args) == ("instruct_image_using_text", INSTRUCT.name, INSTRUCT.description, 2)
    out = ChatEFE(llm=fake(
        "Thought: Do I need to use a tool? Yes\nAction: Instruct Image Using Text\nAction Input: image/a.png, make it snowy"
    )).bind_tools([schema]).invoke("make image/a.png snowy")
    assert out.tool_calls[0]["name"] == "instruct_image_using_text"
    assert out.tool_calls[0]["args"] == {"image_path": "image/a.png", "text": "make it snowy"}
