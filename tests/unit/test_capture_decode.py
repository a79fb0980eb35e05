"""Request body -> JSON payload: every encoding the SDKs use (PROTOCOLS.md §3, §7), and the limits."""

from __future__ import annotations

import base64
import gzip
import random
import struct
import zlib
from urllib.parse import quote, urlencode

import orjson
import pytest
from lzstring import LZString

from workers.capture import Rejected
from workers.capture.decode import decode_payload, lz64_decompress

MAX = 1024 * 1024
BATCH = {
    "api_key": "phc_t",
    "batch": [{"event": "$pageview", "properties": {"distinct_id": "u1", "x": "é😀"}}],
}
RAW = orjson.dumps(BATCH)
FORM = "application/x-www-form-urlencoded"


def decode(body: bytes, **kwargs: object) -> object:
    return decode_payload(body, max_bytes=kwargs.pop("max_bytes", MAX), **kwargs)  # type: ignore[arg-type]


def rejected(body: bytes, **kwargs: object) -> Rejected:
    with pytest.raises(Rejected) as caught:
        decode(body, **kwargs)
    return caught.value


def js_string(text: str) -> str:
    """What JavaScript hands lz-string: UTF-16 code units, emoji as surrogate pairs."""
    data = text.encode("utf-16-le")
    return "".join(chr(unit) for unit in struct.unpack(f"<{len(data) // 2}H", data))


def lz64(value: object) -> str:
    return LZString().compressToBase64(js_string(orjson.dumps(value).decode()))


def test_plain_json() -> None:
    assert decode(RAW, content_type="application/json") == BATCH


def test_gzip_by_content_encoding_header() -> None:
    assert decode(gzip.compress(RAW), content_type="application/json", content_encoding="gzip") == BATCH


def test_gzip_by_magic_bytes_sent_as_text_plain_without_header_or_flag() -> None:
    # posthog-js with supportedCompression ["gzip-js"]: raw gzip, Content-Type text/plain, nothing else
    assert decode(gzip.compress(RAW), content_type="text/plain") == BATCH


def test_gzip_js_flag_in_query_with_gzip_body() -> None:
    assert decode(gzip.compress(RAW), content_type="text/plain", query={"compression": "gzip-js"}) == BATCH


def test_deflate_content_encoding() -> None:
    assert decode(zlib.compress(RAW), content_encoding="deflate") == BATCH


def test_base64_form_in_body() -> None:
    body = urlencode({"data": base64.b64encode(RAW).decode()}).encode()
    assert decode(body, content_type=FORM) == BATCH


def test_base64_form_where_plus_arrived_as_space() -> None:
    payload = {"event": "e", "properties": {"distinct_id": "u1", "text": ">>>?>>?"}}
    encoded = base64.b64encode(orjson.dumps(payload)).decode()
    assert "+" in encoded
    body = f"data={encoded}".encode()  # not urlencoded: parsing turns '+' into ' '
    assert decode(body, content_type=FORM) == payload


def test_base64_form_without_form_content_type_and_compression_base64_in_query() -> None:
    # posthog-js beacon: /e/?compression=base64, body data=<base64>
    body = f"data={quote(base64.b64encode(RAW).decode())}".encode()
    assert decode(body, content_type="text/plain", query={"compression": "base64"}) == BATCH


def test_base64_data_in_query_with_empty_body() -> None:
    assert decode(b"", query={"data": base64.b64encode(RAW).decode(), "ip": "1"}) == BATCH


def test_urlsafe_base64_without_padding() -> None:
    data = base64.urlsafe_b64encode(RAW).decode().rstrip("=")
    assert decode(f"data={data}".encode(), content_type=FORM) == BATCH


def test_base64_of_gzip_in_form() -> None:
    body = urlencode({"data": base64.b64encode(gzip.compress(RAW)).decode(), "compression": "gzip-js"})
    assert decode(body.encode(), content_type=FORM) == BATCH


def test_urlencoded_json_in_data_field() -> None:
    assert decode(urlencode({"data": RAW.decode()}).encode(), content_type=FORM) == BATCH


def test_raw_base64_body_with_compression_base64_in_query() -> None:
    assert decode(base64.b64encode(RAW), query={"compression": "base64"}) == BATCH


def test_lz64_flag_in_query() -> None:
    body = urlencode({"data": lz64(BATCH)}).encode()
    assert decode(body, content_type=FORM, query={"compression": "lz64"}) == BATCH


def test_lz64_flag_in_form_body_as_legacy_posthog_js_sends_it() -> None:
    events = [{"event": "$pageview", "properties": {"token": "phc_t", "distinct_id": "u1", "$time": 1.5}}]
    body = urlencode({"data": lz64(events), "compression": "lz64"}).encode()
    assert decode(body, content_type=FORM, query={"ip": "1", "_": "1795326649790", "ver": "1.60.0"}) == events


def test_lz64_form_where_plus_arrived_as_space() -> None:
    data = lz64(BATCH)
    assert "+" in data
    body = f"data={data}&compression=lz64".encode()
    assert decode(body, content_type=FORM) == BATCH


def test_lz64_decoder_matches_the_lzstring_package() -> None:
    rng = random.Random(7)
    for length in (1, 2, 3, 10, 100, 2000):
        for _ in range(10):
            text = "".join(rng.choice('abc{}[]":, é\n') for _ in range(length))
            packed = LZString().compressToBase64(text)
            assert lz64_decompress(packed, MAX) == text == LZString().decompressFromBase64(packed)


def test_lz64_joins_surrogate_pairs_from_javascript() -> None:
    assert lz64_decompress(LZString().compressToBase64(js_string("a😀b")), MAX) == "a😀b"


def test_lone_surrogate_escapes_are_decoded_for_clean_to_replace() -> None:
    # what JSON.stringify writes for a string cut inside an emoji; orjson alone refuses it
    body = b'{"event": "e", "properties": {"title": "cut \\ud83d", "low": "\\udc00", "ok": "\\ud83d\\ude00"}}'
    expected = {"event": "e", "properties": {"title": "cut \ud83d", "low": "\udc00", "ok": "😀"}}
    assert decode(body) == expected
    assert decode(gzip.compress(body), content_type="text/plain") == expected
    assert (
        decode(urlencode({"data": base64.b64encode(body).decode()}).encode(), content_type=FORM) == expected
    )
    assert decode(urlencode({"data": body.decode()}).encode(), content_type=FORM) == expected
    lz = urlencode({"data": LZString().compressToBase64(body.decode()), "compression": "lz64"})
    assert decode(lz.encode(), content_type=FORM) == expected


def test_gzip_bomb_is_413_without_inflating_it() -> None:
    bomb = gzip.compress(b"0" * (20 * MAX))
    assert len(bomb) < MAX
    assert rejected(bomb, content_type="text/plain").status == 413
    assert rejected(bomb, content_encoding="gzip").status == 413
    inner = urlencode({"data": base64.b64encode(bomb).decode()}).encode()
    assert rejected(inner, content_type=FORM).status == 413


def test_lz64_bomb_is_413() -> None:
    bomb = LZString().compressToBase64("a" * (MAX + MAX // 4))
    assert len(bomb) < 20_000
    error = rejected(f"data={bomb}&compression=lz64".encode(), content_type=FORM)
    assert (error.status, error.code) == (413, "payload_too_large")


def test_decompressed_size_exactly_at_the_cap_is_accepted() -> None:
    body = orjson.dumps({"event": "x", "pad": "a" * 2000})
    assert decode(gzip.compress(body), max_bytes=len(body)) == orjson.loads(body)
    assert rejected(gzip.compress(body), max_bytes=len(body) - 1).status == 413


@pytest.mark.parametrize(
    ("body", "kwargs", "code"),
    [
        (b"", {}, "empty_body"),
        (b"  \n", {}, "empty_body"),
        (b"{not json", {}, "invalid_json"),
        (b'["\\ud83d", NaN]', {}, "invalid_json"),
        (b'["\\ud83d"', {}, "invalid_json"),
        (b"hello", {"content_type": "text/plain"}, "invalid_json"),
        (b"\x1f\x8bnot really gzip", {}, "invalid_gzip"),
        (gzip.compress(RAW)[:-12], {}, "invalid_gzip"),
        (b"plain text", {"content_encoding": "gzip"}, "invalid_gzip"),
        (b"data=%%%not-base64!!", {"content_type": FORM}, "invalid_base64"),
        (b"data=" + base64.b64encode(b"{bad json"), {"content_type": FORM}, "invalid_json"),
        (b"data=@@@@&compression=lz64", {"content_type": FORM}, "invalid_lz64"),
        (
            b"data=" + LZString().compressToBase64("x" * 500)[:-4].encode() + b"&compression=lz64",
            {},
            "invalid_lz64",
        ),
        (RAW, {"query": {"compression": "zstd"}}, "unsupported_compression"),
        (RAW, {"content_encoding": "br"}, "unsupported_encoding"),
        (b"not gzip", {"query": {"compression": "gzip-js"}}, "invalid_gzip"),
    ],
)
def test_malformed_bodies_are_400_naming_the_problem(
    body: bytes, kwargs: dict[str, object], code: str
) -> None:
    error = rejected(body, **kwargs)
    assert (error.status, error.code) == (400, code)
