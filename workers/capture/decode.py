"""Request body -> JSON payload, the way the SDKs encode it (PROTOCOLS.md §3, §7).

In order: `Content-Encoding: gzip|deflate`, or gzip recognised by its magic bytes (posthog-js sends raw gzip
as text/plain with no header and no flag); then a form (`data=<base64|lz-string|JSON>`, `compression` in
the form or the query) or, for an empty body, `data=` in the query; then JSON. Every decompression stops
as soon as its output passes `max_bytes` (a zip bomb costs at most that much memory).
"""

from __future__ import annotations

import base64
import binascii
import re
import zlib
from collections.abc import Mapping
from urllib.parse import parse_qsl

import orjson

from workers import sanitize
from workers.capture import Rejected

GZIP_MAGIC = b"\x1f\x8b"
COMPRESSIONS = ("gzip-js", "gzip", "lz64", "base64")
_FORM_START = re.compile(rb"\s*[A-Za-z_$][\w$.\-]*=")
_SURROGATE = re.compile("[\ud800-\udfff]")


def decode_payload(
    body: bytes,
    *,
    content_type: str = "",
    content_encoding: str = "",
    query: Mapping[str, str] | None = None,
    max_bytes: int,
) -> object:
    """The JSON value the client meant to send; `Rejected` (400 or 413) if it cannot be had."""
    query = query or {}
    compression = _compression(query.get("compression"))
    encoding = content_encoding.strip().lower()
    if encoding in ("gzip", "x-gzip"):
        body = gunzip(body, max_bytes)
    elif encoding == "deflate":
        body = _inflate(body, max_bytes, zlib.MAX_WBITS | 32, "deflate")
    elif encoding not in ("", "identity"):
        raise Rejected(400, "unsupported_encoding", f"Content-Encoding {encoding!r} is not supported")
    elif body.startswith(GZIP_MAGIC):
        body = gunzip(body, max_bytes)

    if not body.strip():
        if "data" not in query:
            raise Rejected(400, "empty_body", "the request has no body")
        return _decode_text(query["data"], compression, max_bytes)
    if body.lstrip()[:1] in (b"{", b"["):
        return _json(body)
    if _looks_like_form(content_type, body):
        form = dict(parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True))
        if "data" in form:
            return _decode_text(form["data"], _compression(form.get("compression")) or compression, max_bytes)
    if compression in ("lz64", "base64"):
        return _decode_text(body.decode("latin-1"), compression, max_bytes)
    if compression in ("gzip", "gzip-js"):
        raise Rejected(400, "invalid_gzip", f"compression={compression} but the body is not gzip")
    return _json(body)


def gunzip(data: bytes, max_bytes: int) -> bytes:
    return _inflate(data, max_bytes, zlib.MAX_WBITS | 16, "gzip")


def lz64_decompress(text: str, max_chars: int) -> str:
    """LZ-string's base64 form (lz-string's `compressToBase64`), decoded with a cap on the output size."""
    bits = _Bits(text)
    dictionary: list[str] = ["", "", ""]  # codes 0, 1, 2 are commands, not entries
    kind = bits.read(2)
    if kind == 2:
        return ""
    if kind not in (0, 1):
        raise Rejected(400, "invalid_lz64", "not LZ-string data")
    word = chr(bits.read(8 if kind == 0 else 16))
    dictionary.append(word)
    out, size = [word], 1
    width, enlarge_in = 3, 4
    while True:
        if bits.exhausted:
            raise Rejected(400, "invalid_lz64", "LZ-string data ends without its end marker")
        code = bits.read(width)
        if code == 2:
            return _from_utf16_units("".join(out))
        if code in (0, 1):
            dictionary.append(chr(bits.read(8 if code == 0 else 16)))
            code = len(dictionary) - 1
            enlarge_in -= 1
            if enlarge_in == 0:
                enlarge_in, width = 1 << width, width + 1
        if code < len(dictionary):
            entry = dictionary[code]
        elif code == len(dictionary):
            entry = word + word[0]
        else:
            raise Rejected(400, "invalid_lz64", "LZ-string data refers to an unknown entry")
        size += len(entry)
        if size > max_chars:
            raise Rejected(413, "payload_too_large", f"decompressed body is over {max_chars} bytes")
        out.append(entry)
        dictionary.append(word + entry[0])
        word = entry
        enlarge_in -= 1
        if enlarge_in == 0:
            enlarge_in, width = 1 << width, width + 1


def _from_utf16_units(text: str) -> str:
    """LZ-string works on JavaScript's UTF-16 code units: join surrogate pairs, replace lone halves."""
    if not _SURROGATE.search(text):
        return text
    return text.encode("utf-16-le", "surrogatepass").decode("utf-16-le", "replace")


def _looks_like_form(content_type: str, body: bytes) -> bool:
    mime = content_type.split(";")[0].strip().lower()
    return mime == "application/x-www-form-urlencoded" or _FORM_START.match(body) is not None


def _compression(value: str | None) -> str | None:
    if value is None or not value.strip():
        return None
    value = value.strip().lower()
    if value not in COMPRESSIONS:
        raise Rejected(400, "unsupported_compression", f"compression={value!r} is not one of {COMPRESSIONS}")
    return value


def _decode_text(text: str, compression: str | None, max_bytes: int) -> object:
    """A `data=` value: LZ-string with lz64, JSON as is, else base64 (of JSON, or of gzip)."""
    if compression == "lz64":
        return _json(lz64_decompress(text, max_bytes))
    if text.lstrip()[:1] in ("{", "["):
        return _json(text)
    raw = _base64(text)
    if raw.startswith(GZIP_MAGIC):
        raw = gunzip(raw, max_bytes)
    return _json(raw)


def _base64(text: str) -> bytes:
    # urlencoded forms turn '+' into ' '; accept the URL-safe alphabet and missing padding too
    cleaned = (
        text.strip().replace(" ", "+").replace("-", "+").replace("_", "/").replace("\n", "").replace("\r", "")
    )
    cleaned += "=" * (-len(cleaned) % 4)
    try:
        return base64.b64decode(cleaned, validate=True)
    except (binascii.Error, ValueError):
        raise Rejected(400, "invalid_base64", "the data field is not valid base64") from None


def _inflate(data: bytes, max_bytes: int, wbits: int, name: str) -> bytes:
    inflater = zlib.decompressobj(wbits)
    out = bytearray()
    pending = data
    try:
        while True:
            part = inflater.decompress(pending, max_bytes + 1 - len(out))
            out += part
            if len(out) > max_bytes:
                raise Rejected(413, "payload_too_large", f"decompressed body is over {max_bytes} bytes")
            pending = inflater.unconsumed_tail
            if inflater.eof or not (pending or part):
                break
    except zlib.error as exc:
        raise Rejected(400, f"invalid_{name}", f"the body is not valid {name}: {exc}") from None
    if not inflater.eof:
        raise Rejected(400, f"invalid_{name}", f"the {name} body is truncated")
    return bytes(out)


def _json(data: bytes | str) -> object:
    try:
        return sanitize.loads(data)
    except orjson.JSONDecodeError as exc:
        raise Rejected(400, "invalid_json", f"the body is not valid JSON: {exc}") from None


_BASE64_VALUES = {
    c: i for i, c in enumerate("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/=")
}


class _Bits:
    """LZ-string's bit order: 6 bits per character, high bit first; numbers are assembled low bit first."""

    def __init__(self, text: str) -> None:
        self._text = text.strip().replace(" ", "+")
        self._index = 0  # next character to load
        self._value = 0
        self._mask = 0  # the bit of `_value` to read next; 0 = load a character first

    @property
    def exhausted(self) -> bool:
        """Every bit of every character has been read (lz-string checks this before each code)."""
        return self._index > len(self._text) or (self._index == len(self._text) and self._mask == 0)

    def read(self, count: int) -> int:
        result = 0
        for bit in range(count):
            if self._mask == 0:
                self._value = self._load()
                self._mask = 32
            if self._value & self._mask:
                result |= 1 << bit
            self._mask >>= 1
        return result

    def _load(self) -> int:
        index = self._index
        self._index += 1
        if index >= len(self._text):
            return 0
        value = _BASE64_VALUES.get(self._text[index])
        if value is None:
            raise Rejected(
                400, "invalid_lz64", f"character {self._text[index]!r} is not in LZ-string's alphabet"
            )
        return value
