"""Which upstream model serves a requested Claude model: [routes] globs first, then haiku -> small, else big."""

from __future__ import annotations

from fnmatch import fnmatchcase

from ccproxy.settings import Settings


class ModelRouter:
    """Resolves a client model name to the upstream model; results are memoised (the name set is small)."""

    def __init__(self, settings: Settings) -> None:
        self.routes = settings.routes
        self.big_model = settings.big_model
        self.small_model = settings.small_model
        self._memo: dict[str, str] = {}

    def resolve(self, model: str) -> str:
        upstream = self._memo.get(model)
        if upstream is None:
            upstream = self._resolve(model)
            if len(self._memo) < 4096:  # bound the memo: clients choose model names
                self._memo[model] = upstream
        return upstream

    def _resolve(self, model: str) -> str:
        lowered = model.lower()
        for pattern, upstream in self.routes:
            if fnmatchcase(lowered, pattern.lower()):
                return upstream
        return self.small_model if "haiku" in lowered else self.big_model
