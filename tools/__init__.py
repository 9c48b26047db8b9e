"""Typed LangChain tools over services/; the tenant comes from the run config, never from the model."""
