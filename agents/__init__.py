"""LangGraph agents: graphs, state, prompts and the chat-model provider."""
