"""A chat model that plays back a script of messages (exact tool calls), for graph tests."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from typing import Any

from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage
from langchain_core.outputs import ChatGeneration, ChatResult


def call(name: str, **args: Any) -> AIMessage:
    return AIMessage(content="", tool_calls=[{"name": name, "args": args, "id": f"call_{uuid.uuid4().hex[:8]}",
                                              "type": "tool_call"}])


class Scripted(BaseChatModel):
    """Each call returns the next scripted message (a callable gets the conversation and may raise)."""

    script: list[Any]
    seen: list[list[BaseMessage]] = []

    @property
    def _llm_type(self) -> str:
        return "scripted"

    def bind_tools(self, tools: Sequence[Any], **kwargs: Any) -> Scripted:  # type: ignore[override]
        return self

    def _generate(self, messages: list[BaseMessage], stop: list[str] | None = None, run_manager: Any = None,
                  **kwargs: Any) -> ChatResult:
        self.seen.append(list(messages))
        step = self.script.pop(0) if len(self.script) > 1 else self.script[0]
        message = step(messages) if isinstance(step, Callable) else step  # type: ignore[arg-type]
        message = message.model_copy(update={"id": None}) if isinstance(message, AIMessage) else message
        if message.tool_calls:  # fresh ids each time, as a real model's
            message = message.model_copy(update={"tool_calls": [
                {**c, "id": f"call_{uuid.uuid4().hex[:8]}"} for c in message.tool_calls]})
        return ChatResult(generations=[ChatGeneration(message=message)])
