"""Message framing for the socket: split a byte stream into JSON-RPC payloads, and back.

Transport-free on purpose: the decoders only see ``bytes`` pushed into :meth:`FrameDecoder.feed`, so they are
tested without sockets and the server stays a thin loop. Two framings share one socket path, chosen per
connection from the first non-whitespace bytes:

* ``{`` or ``[`` → newline-delimited JSON (what ``socat`` users and Actant's TypeScript daemon speak);
* a ``Content-Length:`` / ``Content-Type:`` header → LSP-style header framing (vscode-jsonrpc, Neovim's
  ``vim.lsp.rpc``, Emacs ``jsonrpc.el``).

Every :class:`FrameError` is fatal: once a byte stream is out of step (an oversize message, a broken header,
an unknown framing) there is no reliable way to find the start of the next message, so the caller answers
the error and closes. Malformed JSON *inside* a well-framed message is not a framing problem: the payload is
handed on and the protocol layer answers ``-32700`` while the connection stays usable.

Memory is bounded by ``max_message`` plus one read chunk: a newline-less stream is rejected as soon as the
buffered part passes the limit, and a ``Content-Length`` over the limit is rejected before its body arrives.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from actantd.errors import ActantError, MessageTooLarge, ParseError
from actantd.limits import MAX_MESSAGE_BYTES

DEFAULT_MAX_MESSAGE = MAX_MESSAGE_BYTES
"""8 MiB: far above any legitimate request, small enough that a runaway client can't bloat us."""

MAX_HEADER_BYTES = 8 * 1024
"""An LSP header block is a couple of short lines; anything longer is garbage, not a big message."""

_WHITESPACE = b" \t\r\n"
_HEADER_PREFIXES = (b"content-length:", b"content-type:")
_HEADER_END = b"\r\n\r\n"


class Framing(enum.Enum):
    NDJSON = "ndjson"
    CONTENT_LENGTH = "content-length"


@dataclass(frozen=True, slots=True)
class FrameError:
    """A framing failure; the caller replies with ``error.to_rpc()`` (id null) and closes the connection."""

    error: ActantError


Frame = bytes | FrameError


def encode(framing: Framing, payload: bytes) -> bytes:
    """Wrap one JSON payload for the wire. msgspec never emits a raw newline, so NDJSON needs no escaping."""
    if framing is Framing.CONTENT_LENGTH:
        return b"Content-Length: %d\r\n\r\n%b" % (len(payload), payload)
    return payload + b"\n"


def _too_large(size: int, limit: int) -> FrameError:
    return FrameError(
        MessageTooLarge(f"message exceeds the {limit}-byte limit", size=size, limit=limit),
    )


class _BufferedDecoder:
    """What both framings share: the partial-message buffer, its size limit, and dying once it is exceeded."""

    __slots__ = ("_buf", "_dead", "_limit")

    def __init__(self, max_message: int = DEFAULT_MAX_MESSAGE) -> None:
        self._limit = max_message
        self._buf = bytearray()
        self._dead = False

    @property
    def buffered(self) -> int:
        """Bytes held for an incomplete message (what the server's input budget counts)."""
        return len(self._buf)

    def release(self) -> None:
        """Drop the buffer now (connection closed): its memory must not wait for the decoder to be freed."""
        self._dead = True
        self._buf = bytearray()

    def _die(self, out: list[Frame], err: FrameError) -> list[Frame]:
        self.release()
        out.append(err)
        return out


class NdjsonDecoder(_BufferedDecoder):
    """One JSON message per ``\\n``-terminated line; blank lines (and a trailing ``\\r``) are ignored."""

    __slots__ = ()

    def feed(self, data: bytes) -> list[Frame]:
        if self._dead:
            return []
        out: list[Frame] = []
        start = 0
        # Only the unterminated tail is ever copied into the buffer, so a chunk holding many small lines costs
        # one pass and the buffer never holds a complete line.
        while (nl := data.find(b"\n", start)) >= 0:
            if self._buf:
                self._buf += data[start:nl]
                line = bytes(self._buf)
                self._buf.clear()
            else:
                line = data[start:nl]
            start = nl + 1
            line = line.strip(_WHITESPACE)
            if not line:
                continue
            if len(line) > self._limit:
                return self._die(out, _too_large(len(line), self._limit))
            out.append(line)
        tail = len(data) - start
        if tail:
            if len(self._buf) + tail > self._limit:
                return self._die(out, _too_large(len(self._buf) + tail, self._limit))
            self._buf += data[start:]
        return out


class ContentLengthDecoder(_BufferedDecoder):
    """LSP base protocol: ``Name: value\\r\\n`` headers, a blank line, then exactly Content-Length bytes.

    Header names are case-insensitive; headers other than Content-Length (Content-Type...) are accepted and
    ignored. Whitespace between messages is skipped, which tolerates clients that end a body with a newline.
    """

    __slots__ = ("_body_len",)

    def __init__(self, max_message: int = DEFAULT_MAX_MESSAGE) -> None:
        super().__init__(max_message)
        self._body_len: int | None = None

    def feed(self, data: bytes) -> list[Frame]:
        if self._dead:
            return []
        self._buf += data
        out: list[Frame] = []
        pos = 0
        buf = self._buf
        while True:
            if self._body_len is None:
                while pos < len(buf) and buf[pos] in _WHITESPACE:
                    pos += 1
                end = buf.find(_HEADER_END, pos)
                if end < 0:
                    if len(buf) - pos > MAX_HEADER_BYTES:
                        return self._die(out, FrameError(ParseError("header block too long or not terminated")))
                    break
                if end - pos > MAX_HEADER_BYTES:
                    return self._die(out, FrameError(ParseError("header block too long")))
                parsed = self._parse_headers(bytes(buf[pos:end]))
                if isinstance(parsed, FrameError):
                    return self._die(out, parsed)
                self._body_len = parsed
                pos = end + len(_HEADER_END)
            if len(buf) - pos < self._body_len:
                break
            out.append(bytes(buf[pos : pos + self._body_len]))
            pos += self._body_len
            self._body_len = None
        del buf[:pos]
        return out

    def _parse_headers(self, block: bytes) -> int | FrameError:
        length: int | None = None
        for raw in block.split(b"\r\n"):
            name, sep, value = raw.partition(b":")
            if not sep or not name.strip():
                return FrameError(ParseError("malformed header line", header=raw[:100].decode("latin-1")))
            if name.strip().lower() != b"content-length":
                continue
            if length is not None:
                # Two lengths: which one frames the body is exactly the ambiguity request smuggling lives on.
                return FrameError(ParseError("duplicate Content-Length header"))
            text = value.strip()
            if not text.isdigit():
                return FrameError(ParseError("invalid Content-Length", value=text[:100].decode("latin-1")))
            if len(text.lstrip(b"0")) > len(str(self._limit)):
                # Longer than the limit has digits: too large, decided without int() (which refuses past
                # 4300 digits, raising inside the transport).
                return FrameError(
                    MessageTooLarge(
                        f"message exceeds the {self._limit}-byte limit (Content-Length of {len(text)} digits)",
                        limit=self._limit,
                    )
                )
            length = int(text.lstrip(b"0") or b"0")
        if length is None:
            return FrameError(ParseError("missing Content-Length header"))
        if length > self._limit:
            return _too_large(length, self._limit)
        return length


class FrameDecoder:
    """Detects the framing from the first non-whitespace bytes, then delegates to the matching decoder.

    ``framing`` is None until detected; :meth:`encode` uses NDJSON until then, so a notification pushed (or a
    refusal sent) before the client's first byte is still readable by line-oriented clients.
    """

    __slots__ = ("_dead", "_inner", "_limit", "_probe", "framing")

    def __init__(self, max_message: int = DEFAULT_MAX_MESSAGE) -> None:
        self._limit = max_message
        self._probe = bytearray()
        self._inner: NdjsonDecoder | ContentLengthDecoder | None = None
        self.framing: Framing | None = None
        self._dead = False

    def encode(self, payload: bytes) -> bytes:
        return encode(self.framing or Framing.NDJSON, payload)

    @property
    def buffered(self) -> int:
        return self._inner.buffered if self._inner is not None else len(self._probe)

    def release(self) -> None:
        self._dead = True
        self._probe = bytearray()
        if self._inner is not None:
            self._inner.release()

    def feed(self, data: bytes) -> list[Frame]:
        if self._inner is not None:
            return self._inner.feed(data)
        if self._dead:
            return []
        # Leading whitespace is dropped as it arrives, so the probe never grows past one header prefix.
        self._probe += data
        stripped = self._probe.lstrip(_WHITESPACE)
        if not stripped:
            self._probe.clear()
            return []
        if stripped[0] in b"{[":
            self.framing = Framing.NDJSON
            self._inner = NdjsonDecoder(self._limit)
        else:
            head = bytes(stripped[:15]).lower()
            if any(head.startswith(p) for p in _HEADER_PREFIXES):
                self.framing = Framing.CONTENT_LENGTH
                self._inner = ContentLengthDecoder(self._limit)
            elif any(p.startswith(head) for p in _HEADER_PREFIXES):
                self._probe = bytearray(stripped)
                return []  # still a prefix of a header name: wait for more bytes
            else:
                self._dead = True
                self._probe.clear()
                return [
                    FrameError(ParseError("unknown framing: expected JSON ('{' or '[') or a Content-Length header"))
                ]
        rest = bytes(stripped)
        self._probe.clear()
        return self._inner.feed(rest)
