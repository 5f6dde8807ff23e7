"""Framing decoders in isolation: detection, both framings, limits, and arbitrary chunk boundaries."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from actantd.errors import MessageTooLarge, ParseError
from actantd.rpc.framing import (
    ContentLengthDecoder,
    FrameDecoder,
    FrameError,
    Framing,
    NdjsonDecoder,
    encode,
)

MIB = 1024 * 1024


def feed_all(decoder: FrameDecoder, chunks: list[bytes]) -> list[bytes | FrameError]:
    out: list[bytes | FrameError] = []
    for chunk in chunks:
        out.extend(decoder.feed(chunk))
    return out


def bytewise(data: bytes) -> list[bytes]:
    return [data[i : i + 1] for i in range(len(data))]


# ----------------------------------------------------------------------------------------------- detection


@pytest.mark.parametrize("first", [b"{}\n", b"[]\n", b"  \r\n\t {}\n"])
def test_json_start_selects_ndjson(first: bytes) -> None:
    dec = FrameDecoder()
    assert dec.feed(first) == [first.strip()]
    assert dec.framing is Framing.NDJSON


@pytest.mark.parametrize(
    "header",
    [
        b"Content-Length: 2\r\n\r\n{}",
        b"content-length:2\r\n\r\n{}",
        b"CONTENT-LENGTH:   2  \r\n\r\n{}",
        b"Content-Length: 2\r\nContent-Type: application/vscode-jsonrpc; charset=utf-8\r\n\r\n{}",
        b"Content-Type: application/vscode-jsonrpc; charset=utf-8\r\nContent-Length: 2\r\n\r\n{}",
        b"\r\n\r\nContent-Length: 2\r\n\r\n{}",
    ],
)
def test_header_start_selects_content_length(header: bytes) -> None:
    for chunks in ([header], bytewise(header)):
        dec = FrameDecoder()
        assert feed_all(dec, chunks) == [b"{}"]
        assert dec.framing is Framing.CONTENT_LENGTH


@pytest.mark.parametrize("garbage", [b"hello\n", b"GET / HTTP/1.1\r\n", b"\x00\x01", b"Content-Lengthy: 2\r\n\r\n"])
def test_unknown_framing_is_a_fatal_parse_error(garbage: bytes) -> None:
    dec = FrameDecoder()
    out = feed_all(dec, bytewise(garbage))
    assert len(out) == 1
    err = out[0]
    assert isinstance(err, FrameError) and isinstance(err.error, ParseError)
    assert dec.framing is None
    assert dec.feed(b"{}\n") == []  # dead for good


def test_whitespace_only_keeps_waiting_without_buffering() -> None:
    dec = FrameDecoder()
    for _ in range(1000):
        assert dec.feed(b" \r\n" * 100) == []
    assert dec.framing is None
    assert dec.feed(b'{"a":1}\n') == [b'{"a":1}']


def test_encode_defaults_to_ndjson_until_detected() -> None:
    dec = FrameDecoder()
    assert dec.encode(b"{}") == b"{}\n"
    dec.feed(b"Content-Length: 2\r\n\r\n{}")
    assert dec.encode(b"{}") == b"Content-Length: 2\r\n\r\n{}"


# -------------------------------------------------------------------------------------------------- NDJSON


def test_ndjson_lines_blank_lines_and_crlf() -> None:
    dec = NdjsonDecoder()
    assert dec.feed(b'{"a":1}\r\n\n\n  \n[1,2]\n{"b"') == [b'{"a":1}', b"[1,2]"]
    assert dec.feed(b":2}\n") == [b'{"b":2}']


def test_ndjson_passes_malformed_json_through() -> None:
    """Bad JSON is the protocol layer's business (-32700, connection stays usable), not a framing error."""
    assert NdjsonDecoder().feed(b"{not json\n{}\n") == [b"{not json", b"{}"]


def test_ndjson_rejects_a_newline_less_stream_as_soon_as_it_passes_the_limit() -> None:
    dec = NdjsonDecoder(max_message=8 * MIB)
    assert dec.feed(b"{") == []
    for _ in range(7):
        assert dec.feed(b"x" * MIB) == []
    assert dec.feed(b"x" * (MIB - 1)) == []  # exactly at the limit: still fine
    out = dec.feed(b"x")  # one byte over, newline or not: rejected now
    assert len(out) == 1 and isinstance(out[0], FrameError)
    assert isinstance(out[0].error, MessageTooLarge)
    assert dec.feed(b"\n{}\n") == []


def test_ndjson_message_exactly_at_limit_is_accepted() -> None:
    dec = NdjsonDecoder(max_message=100)
    msg = b"{" + b" " * 98 + b"}"
    assert dec.feed(msg + b"\n") == [msg]
    out = dec.feed(b"{" + b" " * 99 + b"}\n")
    assert isinstance(out[0], FrameError)


def test_ndjson_valid_messages_before_an_oversize_one_are_kept() -> None:
    dec = NdjsonDecoder(max_message=10)
    out = dec.feed(b"{}\n" + b"[" * 20 + b"\n")
    assert out[0] == b"{}"
    assert isinstance(out[1], FrameError)


# ------------------------------------------------------------------------------------------ Content-Length


def test_content_length_several_messages_in_one_chunk() -> None:
    data = encode(Framing.CONTENT_LENGTH, b'{"a":1}') + b"\r\n" + encode(Framing.CONTENT_LENGTH, b"[]")
    assert ContentLengthDecoder().feed(data) == [b'{"a":1}', b"[]"]


def test_content_length_body_may_contain_newlines_and_header_text() -> None:
    body = b'{\n"x": "Content-Length: 5\\r\\n"\n}'
    assert ContentLengthDecoder().feed(encode(Framing.CONTENT_LENGTH, body)) == [body]


def test_content_length_over_limit_is_rejected_before_the_body() -> None:
    dec = ContentLengthDecoder(max_message=8 * MIB)
    out = dec.feed(b"Content-Length: %d\r\n\r\n" % (8 * MIB + 1))
    assert len(out) == 1 and isinstance(out[0], FrameError)
    assert isinstance(out[0].error, MessageTooLarge)
    assert out[0].error.context["size"] == 8 * MIB + 1


@pytest.mark.parametrize(
    "headers",
    [
        b"Content-Type: x\r\n\r\n",  # no Content-Length
        b"Content-Length: -1\r\n\r\n",
        b"Content-Length: abc\r\n\r\n",
        b"Content-Length 5\r\n\r\n",
    ],
)
def test_content_length_bad_headers_are_fatal(headers: bytes) -> None:
    dec = FrameDecoder()
    out = dec.feed(headers)
    assert len(out) == 1 and isinstance(out[0], FrameError)
    assert isinstance(out[0].error, ParseError)


def test_content_length_endless_header_is_rejected() -> None:
    dec = FrameDecoder()
    out = dec.feed(b"Content-Length: 1" + b"1" * 9000)
    assert len(out) == 1 and isinstance(out[0], FrameError)


# ------------------------------------------------------------------------------------ arbitrary boundaries

json_payloads = st.lists(
    st.builds(
        lambda s: b'{"v":"' + s.encode() + b'"}',
        st.text(alphabet=st.characters(blacklist_categories=("Cs", "Cc")), max_size=40).map(
            lambda t: t.replace("\\", "").replace('"', "")
        ),
    ),
    min_size=1,
    max_size=12,
)


@settings(max_examples=200, deadline=None)
@given(payloads=json_payloads, framing=st.sampled_from(Framing), cuts=st.lists(st.integers(0, 10_000), max_size=20))
def test_any_chunking_yields_the_same_messages(payloads: list[bytes], framing: Framing, cuts: list[int]) -> None:
    stream = b"".join(encode(framing, p) for p in payloads)
    points = sorted({c % (len(stream) + 1) for c in cuts})
    chunks = [stream[a:b] for a, b in zip([0, *points], [*points, len(stream)], strict=True)]
    dec = FrameDecoder()
    assert feed_all(dec, chunks) == payloads
    assert dec.framing is framing
