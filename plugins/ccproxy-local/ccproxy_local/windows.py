"""Context windows as local servers report them in `GET /v1/models`, per model id."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

# Where each server puts a model's window in its `/v1/models` entry, most specific first:
# vLLM and SGLang `max_model_len`; LM Studio `max_context_length`; llama.cpp `meta.n_ctx` (the running server's
# context, newer builds) or `meta.n_ctx_train` (what the model was trained for). Ollama's OpenAI API reports none.
TOP_LEVEL_KEYS = ("max_model_len", "max_context_length", "context_length")
META_KEYS = ("n_ctx", "n_ctx_train")


def entry_window(entry: Mapping[str, Any]) -> int | None:
    """The window one `data` entry reports, or None."""
    for key in TOP_LEVEL_KEYS:
        if _tokens(entry.get(key)):
            return int(entry[key])
    meta = entry.get("meta")
    if isinstance(meta, Mapping):
        for key in META_KEYS:
            if _tokens(meta.get(key)):
                return int(meta[key])
    return None


def _tokens(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value > 0


@dataclass(frozen=True, slots=True)
class ContextWindows:
    """What a server reported: each listed model's window, and the model ids it lists.

    A server that lists exactly one model answers under any model name (llama.cpp serves its one loaded model
    whatever the request says), so that model's window is every name's.
    """

    by_model: Mapping[str, int] = field(default_factory=dict)
    models: tuple[str, ...] = ()

    @classmethod
    def from_listing(cls, payload: Any) -> ContextWindows:
        """From a `GET /models` answer; ValueError when it has no `data` list."""
        entries = payload.get("data") if isinstance(payload, dict) else None
        if not isinstance(entries, list):
            raise ValueError("GET /models answered without a `data` list")
        windows: dict[str, int] = {}
        models: set[str] = set()
        for entry in entries:
            if not isinstance(entry, dict) or not isinstance(entry.get("id"), str):
                continue
            models.add(entry["id"])
            window = entry_window(entry)
            if window is not None:
                windows[entry["id"]] = window
        return cls(windows, tuple(sorted(models)))

    def window(self, model: str) -> int | None:
        found = self.by_model.get(model)
        if found is None and len(self.models) == 1:
            found = self.by_model.get(self.models[0])
        return found
