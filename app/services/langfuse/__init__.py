"""Tracing of Claude Code sessions to Langfuse (`LangfuseTracer`), or nowhere (`NoopTracer`)."""

from app.services.langfuse.base import Tracer
from app.services.langfuse.client import LangfuseTracer
from app.services.langfuse.factory import build_tracer
from app.services.langfuse.noop import NoopTracer

__all__ = ["LangfuseTracer", "NoopTracer", "Tracer", "build_tracer"]
