"""The chat model behind every agent: OpenAI-compatible when configured, else the offline policy model."""

from __future__ import annotations

from functools import lru_cache

from langchain_core.language_models import BaseChatModel

from leadpilot.settings import get_settings


@lru_cache(maxsize=1)
def chat_model() -> BaseChatModel:
    """`LLM_PROVIDER=openai`: ChatOpenAI (OPENAI_BASE_URL honoured, streaming on); default: LocalPolicyModel."""
    settings = get_settings()
    if settings.llm_provider == "openai":
        from langchain_openai import ChatOpenAI

        return ChatOpenAI(model=settings.openai_model, api_key=settings.openai_api_key,  # type: ignore[arg-type]
                          base_url=settings.openai_base_url, streaming=True, temperature=0.2)
    from agents.local_model import LocalPolicyModel

    return LocalPolicyModel()
