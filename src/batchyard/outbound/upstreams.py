"""Where the ``openai`` handler sends each request: the default upstream and the per-model routes file.

The default upstream is ``--upstream URL`` / ``BATCHYARD_UPSTREAM_URL`` with ``BATCHYARD_UPSTREAM_API_KEY``. The
routes file (``BATCHYARD_UPSTREAMS_FILE``, TOML) names more upstreams and maps models to them, with prices::

    [upstreams.default]                 # limits of the --upstream URL (its base_url may also be set here)
    max_concurrency = 256

    [upstreams.gpu1]
    base_url = "http://10.0.0.5:8000/v1"
    api_key_env = "GPU1_API_KEY"        # or api_key = "..." (the file is then a secret too)
    max_concurrency = 128               # requests in flight, per worker process
    requests_per_minute = 6000          # per worker process
    tokens_per_minute = 2000000         # per worker process (prompt + completion)
    timeout_seconds = 120

    [models."meta-llama/Llama-3.1-8B-Instruct"]
    upstream = "gpu1"                   # default: the "default" upstream
    input_price_per_million = 0.05      # cost per million input (prompt) tokens
    output_price_per_million = 0.10

    [models."text-embedding-*"]         # shell-style patterns; an exact name wins, then the longest pattern
    input_price_per_million = 0.02

A model no route names goes to the default upstream, when there is one (without a price). Upstreams are the
operator's own configuration, so they may be on loopback or a private network. Keys are held in
:class:`Secret`, whose ``repr`` and ``str`` hide them: they reach the upstream's ``Authorization`` header only.
Pure: reading the file is the caller's (:func:`load_routes_file`).
"""

from __future__ import annotations

import fnmatch
import math
import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from batchyard.errors import ConfigError

DEFAULT_UPSTREAM = "default"
_UPSTREAM_KEYS = {
    "base_url",
    "api_key",
    "api_key_env",
    "max_concurrency",
    "requests_per_minute",
    "tokens_per_minute",
    "timeout_seconds",
}
_MODEL_KEYS = {"upstream", "input_price_per_million", "output_price_per_million"}


class Secret:
    """A key that never shows itself: ``repr``/``str`` print ``***``; :meth:`reveal` is for the header only."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "Secret('***')"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)


@dataclass(frozen=True)
class Upstream:
    """An OpenAI-compatible server: its base URL (ending in ``/v1``), key and limits (per worker process)."""

    name: str
    base_url: str
    api_key: Secret | None = None
    max_concurrency: int = 256
    requests_per_minute: float | None = None
    tokens_per_minute: float | None = None
    timeout_seconds: float | None = None

    def url_for(self, path: str) -> str:
        """The full URL of an endpoint path as a batch line names it: ``/v1/chat/completions`` on a base URL
        ``http://h/v1`` is ``http://h/v1/chat/completions`` (the base's ``/v1`` is not repeated)."""
        path = "/" + path.lstrip("/")
        base = self.base_url.rstrip("/")
        if base.endswith("/v1") and (path == "/v1" or path.startswith("/v1/")):
            path = path[3:]
        return base + path


@dataclass(frozen=True)
class Price:
    """Dollars (or any currency) per million tokens."""

    input_per_million: float = 0.0
    output_per_million: float = 0.0

    def cost(self, input_tokens: float, output_tokens: float) -> float:
        return (input_tokens * self.input_per_million + output_tokens * self.output_per_million) / 1_000_000


@dataclass(frozen=True)
class Route:
    upstream: Upstream
    price: Price | None


@dataclass
class Routes:
    """Models to upstreams. :meth:`route` answers None for a model with nowhere to go."""

    upstreams: dict[str, Upstream] = field(default_factory=dict)
    models: dict[str, tuple[str, Price | None]] = field(default_factory=dict)

    def route(self, model: str | None) -> Route | None:
        if model is not None:
            exact = self.models.get(model)
            if exact is not None:
                return self._resolve(exact)
            patterns = [p for p in self.models if _is_pattern(p) and fnmatch.fnmatchcase(model, p)]
            if patterns:
                return self._resolve(self.models[max(patterns, key=len)])
        default = self.upstreams.get(DEFAULT_UPSTREAM)
        return Route(default, None) if default is not None else None

    def _resolve(self, entry: tuple[str, Price | None]) -> Route | None:
        name, price = entry
        upstream = self.upstreams.get(name)
        return Route(upstream, price) if upstream is not None else None

    def known_models(self) -> list[str]:
        return sorted(self.models)


def _is_pattern(name: str) -> bool:
    return any(c in name for c in "*?[")


def display_url(url: str) -> str:
    """A URL fit for a message or a banner: without any ``user:password@`` part."""
    parts = urlsplit(url)
    if "@" not in parts.netloc:
        return url
    return urlunsplit(parts._replace(netloc=parts.netloc.rsplit("@", 1)[1]))


def check_base_url(url: str, where: str) -> str:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError(f"{where}: {url!r} is not an http(s) URL such as http://127.0.0.1:8001/v1")
    url = url.rstrip("/")
    return url if parts.path.strip("/") else url + "/v1"


def build_routes(
    *,
    default_url: str | None,
    default_key: str | None,
    default_concurrency: int,
    default_timeout: float | None = None,
    document: Mapping[str, Any] | None = None,
    source: str = "routes file",
    environ: Mapping[str, str] | None = None,
) -> Routes:
    """The routes from the settings' default upstream and a parsed routes file (``document``), checked: a
    mistake is a :class:`~batchyard.errors.ConfigError` naming the file and the entry."""
    env = os.environ if environ is None else environ
    routes = Routes()
    document = document or {}
    unknown = set(document) - {"upstreams", "models"}
    if unknown:
        raise ConfigError(
            f"{source}: unknown section(s) {sorted(unknown)}; expected [upstreams.NAME] and [models.NAME]"
        )
    sections = _table(document.get("upstreams", {}), f"{source}: upstreams")
    if default_url is not None or DEFAULT_UPSTREAM in sections:
        defaults: dict[str, Any] = {"base_url": default_url}
        if default_key:
            defaults["api_key"] = default_key
        sections = {**sections, DEFAULT_UPSTREAM: {**defaults, **sections.get(DEFAULT_UPSTREAM, {})}}
    for name, raw in sections.items():
        routes.upstreams[name] = _upstream(name, raw, source, env, default_concurrency, default_timeout)
    for model, raw in _table(document.get("models", {}), f"{source}: models").items():
        where = f"{source}: models.{model!r}"
        entry = _table(raw, where)
        extra = set(entry) - _MODEL_KEYS
        if extra:
            raise ConfigError(f"{where} has unknown key(s) {sorted(extra)}; known: {sorted(_MODEL_KEYS)}")
        upstream = entry.get("upstream", DEFAULT_UPSTREAM)
        if upstream not in routes.upstreams:
            known = ", ".join(sorted(routes.upstreams)) or "none (set --upstream or add [upstreams.NAME])"
            raise ConfigError(f"{where} uses upstream {upstream!r}, which is not defined; known: {known}")
        price = None
        if "input_price_per_million" in entry or "output_price_per_million" in entry:
            price = Price(
                _number(entry.get("input_price_per_million", 0.0), f"{where}.input_price_per_million"),
                _number(entry.get("output_price_per_million", 0.0), f"{where}.output_price_per_million"),
            )
        routes.models[model] = (upstream, price)
    return routes


def _upstream(
    name: str, raw: Any, source: str, env: Mapping[str, str], default_concurrency: int, default_timeout: float | None
) -> Upstream:
    where = f"{source}: upstreams.{name}"
    entry = _table(raw, where)
    extra = set(entry) - _UPSTREAM_KEYS
    if extra:
        raise ConfigError(f"{where} has unknown key(s) {sorted(extra)}; known: {sorted(_UPSTREAM_KEYS)}")
    url = entry.get("base_url")
    if not isinstance(url, str) or not url:
        hint = " (or start with --upstream URL)" if name == DEFAULT_UPSTREAM else ""
        raise ConfigError(f'{where} needs base_url = "http://host:port/v1"{hint}')
    key: str | None = None
    if "api_key" in entry and "api_key_env" in entry:
        raise ConfigError(f"{where}: give api_key or api_key_env, not both")
    if "api_key_env" in entry:
        variable = entry["api_key_env"]
        if not isinstance(variable, str) or variable not in env:
            raise ConfigError(f"{where}: api_key_env names {variable!r}, which is not set in the environment")
        key = env[variable]
    elif "api_key" in entry:
        if not isinstance(entry["api_key"], str):
            raise ConfigError(f"{where}: api_key must be a string")
        key = entry["api_key"]
    concurrency = entry.get("max_concurrency", default_concurrency)
    if isinstance(concurrency, bool) or not isinstance(concurrency, int) or concurrency < 1:
        raise ConfigError(f"{where}: max_concurrency must be a whole number >= 1")
    rpm = entry.get("requests_per_minute")
    tpm = entry.get("tokens_per_minute")
    timeout = entry.get("timeout_seconds", default_timeout)
    return Upstream(
        name=name,
        base_url=check_base_url(url, where),
        api_key=Secret(key) if key else None,
        max_concurrency=concurrency,
        requests_per_minute=None if rpm is None else _positive(rpm, f"{where}.requests_per_minute"),
        tokens_per_minute=None if tpm is None else _positive(tpm, f"{where}.tokens_per_minute"),
        timeout_seconds=None if timeout is None else _positive(timeout, f"{where}.timeout_seconds"),
    )


def _table(value: Any, where: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise ConfigError(f"{where} must be a table")
    return value


def _number(value: Any, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value) or value < 0:
        raise ConfigError(f"{where} must be a number >= 0")
    return float(value)


def _positive(value: Any, where: str) -> float:
    number = _number(value, where)
    if number <= 0:
        raise ConfigError(f"{where} must be more than 0")
    return number


def load_routes_file(path: Path) -> dict[str, Any]:
    """Parse the TOML routes file; a missing or malformed file is a ConfigError naming it."""
    try:
        with path.open("rb") as f:
            return tomllib.load(f)
    except FileNotFoundError:
        raise ConfigError(f"upstreams file {path} does not exist (BATCHYARD_UPSTREAMS_FILE)") from None
    except OSError as exc:
        raise ConfigError(f"upstreams file {path} cannot be read: {exc.strerror or exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"upstreams file {path} is not valid TOML: {exc}") from None
