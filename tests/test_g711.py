"""G.711 µ-law and A-law agree with the reference tables and lose only quantisation."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from appliance.audio.g711 import alaw_decode, alaw_encode, ulaw_decode, ulaw_encode

ALL_PCM = np.arange(-32768, 32768, dtype=np.int16)
LAWS = [pytest.param(ulaw_encode, ulaw_decode, id="ulaw"), pytest.param(alaw_encode, alaw_decode, id="alaw")]

# Values of the reference g711.c (identical to CPython's audioop).
ULAW_ENCODED = {0: 0xFF, -1: 0x7E, 1: 0xFF, 100: 0xF2, -100: 0x72, 1000: 0xCE, -1000: 0x4E,
                12345: 0x97, -12345: 0x17, 32767: 0x80, -32768: 0x00}
ALAW_ENCODED = {0: 0xD5, -1: 0x55, 1: 0xD5, 100: 0xD3, -100: 0x53, 1000: 0xFA, -1000: 0x7A,
                12345: 0xBD, -12345: 0x3D, 32767: 0xAA, -32768: 0x2A}
ULAW_DECODED = {0x00: -32124, 0x80: 32124, 0x7F: 0, 0xFF: 0, 0x10: -15996, 0x9C: 9852, 0xE5: 292, 0x42: -1756}
ALAW_DECODED = {0xD5: 8, 0x55: -8, 0x2A: -32256, 0xAA: 32256, 0x10: -2752, 0x9C: 3264, 0xE5: 1056, 0x42: -376}


@pytest.mark.parametrize(("encode", "table"), [(ulaw_encode, ULAW_ENCODED), (alaw_encode, ALAW_ENCODED)])
def test_encoding_matches_the_reference(encode, table: dict[int, int]) -> None:
    pcm = np.array(list(table), dtype=np.int16)
    assert encode(pcm).tolist() == list(table.values())


@pytest.mark.parametrize(("decode", "table"), [(ulaw_decode, ULAW_DECODED), (alaw_decode, ALAW_DECODED)])
def test_decoding_matches_the_reference(decode, table: dict[int, int]) -> None:
    assert decode(bytes(table)).tolist() == list(table.values())


@pytest.mark.parametrize(("encode", "decode"), LAWS)
def test_every_sample_comes_back_within_one_quantisation_step(encode, decode) -> None:
    error = np.abs(decode(encode(ALL_PCM)).astype(np.int32) - ALL_PCM)
    # Steps grow with the segment: relative error stays under 1/16 (about -24 dB),
    # and near silence the absolute error is at most 16 (-66 dBFS).
    bound = np.maximum(16, np.abs(ALL_PCM.astype(np.int32)) / 16)
    assert (error <= bound).all()


@pytest.mark.parametrize(("encode", "decode"), LAWS)
def test_output_keeps_shape_and_types(encode, decode) -> None:
    pcm = np.zeros((2, 160), dtype=np.int16)
    codes = encode(pcm)
    assert codes.dtype == np.uint8 and codes.shape == (2, 160)
    decoded = decode(codes)
    assert decoded.dtype == np.int16 and decoded.shape == (2, 160)


@pytest.mark.parametrize(("encode", "decode"), LAWS)
def test_wrong_sample_types_are_refused(encode, decode) -> None:
    with pytest.raises(TypeError):
        encode(np.zeros(160, dtype=np.float32))
    with pytest.raises(TypeError):
        decode(np.zeros(160, dtype=np.int16))


@given(st.binary(max_size=320))
def test_line_bytes_survive_decode_then_encode(data: bytes) -> None:
    # Every code except µ-law's "negative zero" (0x7F) is canonical: decoding and
    # re-encoding gives the same byte back; 0x7F comes back as positive zero 0xFF.
    assert alaw_encode(alaw_decode(data)).tobytes() == data
    assert ulaw_encode(ulaw_decode(data)).tobytes() == data.replace(b"\x7f", b"\xff")


@given(st.lists(st.integers(-32768, 32767), max_size=320))
def test_encoding_is_idempotent_after_one_pass(samples: list[int]) -> None:
    pcm = np.array(samples, dtype=np.int16)
    for encode, decode in ((ulaw_encode, ulaw_decode), (alaw_encode, alaw_decode)):
        once = decode(encode(pcm))
        assert np.array_equal(decode(encode(once)), once)
