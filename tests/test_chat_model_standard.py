"""The langchain-tests standard unit suite for chat models, run on ChatEFE over a real tiny LM."""

from __future__ import annotations

import pytest
from langchain_tests.unit_tests import ChatModelUnitTests

from efe_langchain.chat_model import ChatEFE


class TestChatEFEStandard(ChatModelUnitTests):
    _llm = None

    @pytest.fixture(autouse=True)
    def _tiny_local_llm(self, tiny_lm):
        # chat_model_params is a property the suite reads outside fixtures: park the LLM on the class.
        from efe_langchain.llm import LocalLLM

        if type(self)._llm is None:
            type(self)._llm = LocalLLM.from_model(*tiny_lm, max_new_tokens=8)

    @property
    def chat_model_class(self) -> type[ChatEFE]:
        return ChatEFE

    @property
    def chat_model_params(self) -> dict:
        return {"llm": type(self)._llm, "model": "tiny-llama-test"}

    @property
    def has_tool_calling(self) -> bool:
        return True

    @property
    def has_tool_choice(self) -> bool:
        return True

    @property
    def returns_usage_metadata(self) -> bool:
        return True
