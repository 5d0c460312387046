"""The sherpa-onnx recognizer, for the ONNX models a device image provisions.

No registry ships a sherpa-onnx ASR model, so no test here can transcribe
speech with one: what is pinned is the manifest's parameters, the checks made
before sherpa-onnx sees a file, the errors it raises on a broken model, the
choice of back-end by the manifest's runtime (models/README.md, "sherpa-onnx"),
and the offline transducer's decoding path run for real on a tiny model with
random weights (its output is noise: only the plumbing is shown to work).
"""

from __future__ import annotations

import base64
import zlib
from pathlib import Path

import numpy as np
import pytest

from appliance.errors import ConfigError, ModelError
from appliance.models import ModelCatalog
from appliance.speech.asr_sherpa import SherpaRecognizer, SherpaSettings
from appliance.speech.language import CallRecognizer
from appliance.speech.loading import load_recognizer

# A tiny offline transducer with RANDOM weights, in sherpa-onnx's icefall layout: it
# proves the decoding path against the real sherpa-onnx, and says nothing about
# accuracy (its "words" are noise). Made with the onnx package (1.23.2), seed 0:
# encoder  x[N,T,80] -> encoder_out = x @ W[80,8], encoder_out_lens = x_lens
# decoder  y[N,2] -> decoder_out = sum(E[6,8][y], axis=1); metadata context_size=2, vocab_size=6
# joiner   logit = (encoder_out + decoder_out) @ J[8,6]
# Stored zlib-compressed and base64-encoded: onnx is not a dependency of the box.
_TINY_TRANSDUCER = {
    "encoder.onnx": (
        "eNptlms41fkWx23CbittopBy2Uo0jaIcxf+3RMzGuEakKaGNQiF7hoooWy5FiKKUW8o9GaT2/q2tQkxXXaZSKZVwMk1JodvpzIvzzHnO"
        "ebNerM93rVfrWc+HzV5+XZ0zi8OK4bC8VZUEWwK3bhRE+W0VRusrOPtHOwvDOAYchRi/MMGWbarcv+G/Ovpsh42CLdGbomNV5b4x431q"
        "bDc2m8uyYXk7JqiFoQzZZa9IJW950HvnLlOsNxk/67eQ2MFy6N8WBV8Ml6DXeDEOZejgFjsjxuWqmvQVZwOV234cnwgtMdNTCTXeFlOm"
        "tZuoRYrg0DE5aj9QC2aOxqg33kC6HYJBlCplxrwImr4PRc7aIXpnuz9ZYJmIOqaraZ8Sj/ZEc6Dg+lqyaaSRuPkbYkTLJHrsDB+k8xGm"
        "GRXjisutcMKuGhQm8eFc0F4Sf66IhhWdAxycgPEj/eDhdQqyJpqISWUBToxknafK80FxsAwjnLuIxsyHpMfEFBZmHUJvgRFGRvdSVXEu"
        "Hil9DHIDn2njllPkeGASZeq64BCrAoJ4+uCiMFXqpe3FTFMwgRuJCTDfZA5W/WMQ+uQq8OUaI4zw2wrxw3zGzFDGeqHSCiKrqY8st1Za"
        "U5mOCumlWB6gB/wONdD69QTcW7gCq5fcgx0GOdQ8uRNm5T2iJXwrlHTsIqcUkuBMrwGxeKGOM2qqcJKgAW/VycCddXHwu9V82pWUivW7"
        "/GDkWSkWp5uj4sc54CbLlVp1t5HN/Wo4+VovEzz5iGT6BxeyonExiAxsUNLXCPyny+DRF2+w1cqFgOMOkKbuA7duFDB7i5rQ1oFDB7+s"
        "xGDtJhxelUSE+1Sw5MYenJYowg/hqeRBaTNxsK8A34lAMWutCDbHNUCxRQ4Y+M+U7rYrhOq+GpI5do+IVCjBsYvENq2U7LzYTDtDRrBO"
        "uVfi1+qMv9mkwZL7OVRvtJLp2LUGDc/K4oJRK3G7LsWgkXyyyeq+pKrtEJbv1JQGeMvB658O05JaRRR1R1KH3QOg9clJEimoZ4J9KMo+"
        "7Ib4J5vBIysFdqy0ZZ5VbAb6SkLej2tD7L1Z9KdTYkyo3wMXqj/gaL2Q+mxxp5E7RVg6qg2WPGe6tKaXrlGThwWy76hmVz38800Dae95"
        "S2sejaFw40m0m50OS+1dJW2jB6jq6m54sLAMq4bVUe7DG2qmNQMiHxnhO/ZsTBVexbKm5TDPzwVOvhyheTaGZIvwBMZnvaFnNpyGr584"
        "5OvD6da/iBxQtF8Nak35NOI+F+ycX52vrZyG+trr8e2yldYzgo9Jxrgs6WnOPJQ7uBD2y8igFq8W8lwSoOLLLOrY/oZ6FCag7GIzfJcp"
        "xlNGBaB+9DfQ7yzCwBWHMH99Hxriz7jsmr3U1DwbV7HK4fPH05Td7guGvhN037qncPWrE7mWe5EO+fKsF+qV0ynuR3FXqwuJU9GRrIpL"
        "AbM/Q/EPlgu0OPtCxrAxRhgZEqNqTzyrN8M63mYJbhh/Sf3DU/C6eT2tS5eev71/JTzga+NeS0KTXRu/3csqNPRbZC38QQQhSny8Y1KF"
        "VzAW2fX14nNEmQnNIBhbW4YJ3CZwt31J/DuQyo36U9dMRVwwYCnVfvKKyVdMxffeCcgM8FA3xhLe3crF1Lxm9LnKA485K6B2pxCdxqfB"
        "fbdcOmZTQOYGF2O2hRdsnFQAljN5sP61MoyGRUptI0XkTNQNsWbODJoZrocB7QHMVNYtQqbtpd0WwzQnpBCqdu5H3Yd7wFN5KZnod8bd"
        "MQdpQ1IoKt78Dr7XPUNM05QxTn0/pmwvIMtmCoHNG5Q4m94lxclS2uKfxkzm5dL6fXlkuXUrVg8aQNi2ULr9SDPRY2ppgEIZkTikorn5"
        "YZBOfYAd8iKM8ogkm8l5yA7KIM09cXTtpiZkP7als++UiDM23oN8Wx1wb7mI0iaWtZh0UXsDf/zcLoYzV5wkptpiunXyBlLi6AN8p3go"
        "UTiN5NpXEAmioGzeBVqf445mKjF4t+YTI3g+Fy9fs8X1ta6QfeocIfJd9OQHS7BVqAOhxj5cHamFla6REDfFApAXQiy6DkKyYzoGekow"
        "/NY6DBqbYHyuOOGp6HF6ND8Wo27PwcdHEzDFQEw+xjmB3OdRupPxpPupGqrJsEEusInxmnoFwi324XB+C/nd4xkpTD9L4wPUYY/eWYwp"
        "ULSefbkK42JCYSQhE3luOaDFaqOFy/TJx3hfpuf5PnhcXEa9+xmpeY4NqutYkSmip/Sjqh1YvU+EePeZtKGa4qrv6mFXcRrkmuRTsz8U"
        "rK8dP0MN9mehQ6EOFb5PhZFPW5G2jgPdLUB5r2h45q8E+q2z6YBLGoSMIw5dqoH2sN2SyY842NsJ0Fa5F9xU7IC+/gqWXmnw1qEMkpdw"
        "kGf0gCnS4cICnyzx660FJNj4AfHT9QEPjRuSPo0GumuKJ2bzN2Kfah4UaNZIFgkdQJ5bjs/Vx/A4PxmrL2XDxaYU+CBTSRTWOqPeG3nK"
        "jT5M1xSdptsCdaXc4rX4ssqGumhdgNv5BsTVrQHe5XTSoA2JVPdArLRk2TD5WXkK9Fx4CpcsxumLW1JmR+ESPJSZhyTDHMtLT9Mv8TWQ"
        "+ifXcq6/I4bxVYjib+tJ+uyFuMMrG0Ib32BklS9tW2EMF9yr0Pr9WSKKOwEFPwwQI+97+HnzcpwjLoQgPEwC9+qJlV48JZV5FjCxbil6"
        "1B2ko96q5Ia1EiafZNMK3XJQuvgL9h19D2sz/oRP7j0IIVxqJ6wj2y7bYHQzg1qzt9H25Qy098ui1s1BiP3lIPmi2i3xTmyBD6t0Yf50"
        "CbFMr6C1iwYg7ZYrcJ3caMXTTkwcoWR6UDbOKevBt68y6EftA8RnfhnsLTxAfvT+9ocGj2Jw7llxYsAXxlj8E1jUDzNz7jnDkuksfGzX"
        "TNZvuk1Ojh3HIKkZyVQoo4YtI2jgK4Q0uxZqZe6LFSat1D9pKvlerhUEQ0ZU0PuGbLtZB215bGhqTwGt8REaF2gHJCZc4pqcCmXRCaiZ"
        "9QNeEZQA08Wn9Z3N1PHxMWZg9yJUjquEA8+P4zpzLXqltJ74DNyRNAc4Y6vLevzx6n3S2b8HjSLmgtPMi+g3XRmLGtWYJPsiNBmaB02P"
        "D4m5x5Lwj80X0EpwGcfY7ozs9IO44ddajG8Po9kXVKzbNDNIuYst/N69hogi+eA5VIUqYQ9px3URcWjPFvfmr6Q9Pxtjl2MSvb3YHt2+"
        "aklPvjiMl1NGiJdLBwh4A9Axt53p+nUjkMgQ6P/HYtRYfR+DFT9bXc18ijeultIDNbPg7qVGNOZPYobOHgNjjRbypEkeDHRDQHzzEZxU"
        "nkUcNhTCvNA9El/Nb1qpqsZRZbNUlTlyqiyXfxdPjizbzVf9P1KpxJnMVlSV/4sH8Dh/V9D/O8sO0OH8j4j+1xabSRwZ7tQoDQ4n/Fso"
        "zC86NkKgytm+KSJoa1S4IMr0X0FGIyM="
    ),
    "decoder.onnx": (
        "eNrj4LB6zMQlyMXoysVYKcSYrsTmnliSkVrEZcDFmM7FlFghxJ2SmpyfkloUn19aosQZlJpSmpwaXJqrxc/FkZ2aWpCSmVsswbCAkUmI"
        "GahQ6wwjBxsHhwCjE6Or1wHGHRe595sbLLTrFZPeP3OH0P4nU6T3W78QOiAjcMM2+ujC/a/W3947ZcZOe/cE1v2yB7n2T52yzn7TLW77"
        "dX8r7fe82Lovqcnefv8K/f3FfLr7yxdL2P/Rk9z/MNHFPkZQ0uHm5ev7yyc47P+c0G8f3y+yb8a8KfYnPRv3f1q60i5fW2pfxF5+O66O"
        "lXbamnP2h9V27s+V2mwvozDNTvrMTdtN7SZ79/Zss9vzdfJ+xwP1+xV+LbN/8lzKLnBtpP0ZHun9XRYb7ENPbLDTEuJgFGB3AgaDFwcj"
        "AwREiYBCip+Ll4NdiJOLWYjRj4uJgylJjgs5oMDyjAh5DicWLgYB3iJBLp7k/LyS1IqS+OLMqlQhRqMifi6usvzkxCSogBkAH3KKFw=="
    ),
    "joiner.onnx": (
        "eNrj4LB6ycSlxMWdmpecn5JaFJ9fWsLFnZIK5wgxFisxO6akcIlyMRZzMXoJsebkp2eWKLH5Jpb4luYIMWflZ2qdYeTg4GATYHRi9PI6"
        "wHgr9ZtdeyWP/RkOn/0fz7/brzS5c//PLRfsL9Qss187f+O+oNJZ+xrWt9gvLtbZp+a3bH/g34X2BwK+2G3jVjxQErVgn4ecsN0foBmt"
        "Z6Xtfu5X2i8i/Hav4IdpdlfNO/cdzdy3z9Nlgf2jkKL9D95s2hfAwHSAqZbLXoUzxH5RJo/9tDdZ9gFLHtrpxq23M1z5yW75nY59itIz"
        "7LkqNu2L1Nu9P7s70v7K4zf25WdK9/9WvrBXsVJ///nbh/b9OW1jO+XzvP3zNfr2RcmhBIcQPxcvB6MQJxezEKMfFxMHB0geOYTQ5ZMk"
        "uCCBhC7D5sTCxSDAW8TPxQUMtTyg9pTMXCFGCwAjDY4v"
    ),
}
_TINY_TOKENS = "<blk> 0\nB 1\nO 2\nN 3\nJ 4\nU 5\n"


TRANSDUCER = {"encoder": "encoder.int8.onnx", "decoder": "decoder.onnx", "joiner": "joiner.int8.onnx",
              "tokens": "tokens.txt"}


def _files(directory: Path, names: list[str], content: bytes = b"not an onnx model") -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    for name in names:
        (directory / name).write_bytes(content)
    return directory


def test_a_transducer_manifest_names_its_files_and_search() -> None:
    settings = SherpaSettings.from_params(
        {"kind": "transducer", **TRANSDUCER, "decoding_method": "modified_beam_search", "bpe_vocab": "bpe.vocab"},
        language="fr",
    )
    assert settings.files == {**TRANSDUCER, "bpe_vocab": "bpe.vocab"}
    assert settings.language == "fr"
    assert settings.hotwords  # beam search on a transducer: the turn's words can bias it


def test_file_names_default_to_those_sherpa_models_ship_with() -> None:
    settings = SherpaSettings.from_params({"kind": "whisper", "language": "de"})
    assert settings.files == {"encoder": "encoder.onnx", "decoder": "decoder.onnx", "tokens": "tokens.txt"}
    assert settings.language == "de" and not settings.hotwords


@pytest.mark.parametrize(
    ("params", "problem"),
    [
        ({}, "need 'kind'"),
        ({"kind": "ctc"}, "kind must be one of whisper, transducer, streaming-transducer"),
        ({"kind": "transducer", "beam": 4}, "unknown key(s) beam"),
        ({"kind": "whisper", "decoding_method": "modified_beam_search"}, "Whisper with greedy_search only"),
        ({"kind": "transducer", "decoding_method": "best"}, "decoding_method must be one of"),
        ({"kind": "transducer", "encoder": "../encoder.onnx"}, "plain file name"),
        ({"kind": "transducer", "threads": 0}, "threads must be 1-16"),
        ({"kind": "whisper", "language": "French"}, "a code like 'fr'"),
    ],
)
def test_manifest_mistakes_are_explained(params: dict, problem: str) -> None:
    with pytest.raises(ConfigError) as caught:
        SherpaSettings.from_params(params)
    assert problem in str(caught.value)


def test_missing_model_files_are_named_before_sherpa_is_asked(tmp_path: Path) -> None:
    directory = _files(tmp_path / "zipformer", ["encoder.int8.onnx", "tokens.txt"])
    settings = SherpaSettings.from_params({"kind": "transducer", **TRANSDUCER})
    with pytest.raises(ModelError) as caught:
        SherpaRecognizer(directory, settings)
    assert caught.value.code == "model-missing"
    assert "decoder.onnx" in caught.value.detail and "joiner.int8.onnx" in caught.value.detail


@pytest.mark.parametrize("kind", ["whisper", "transducer", "streaming-transducer"])
def test_a_corrupt_model_is_a_model_error_from_sherpa_itself(tmp_path: Path, kind: str) -> None:
    settings = SherpaSettings.from_params({"kind": kind})
    directory = _files(tmp_path / kind, [name for name in settings.files.values() if name != "tokens.txt"])
    (directory / "tokens.txt").write_text("<blk> 0\n<sos/eos> 1\n▁bonjour 2\n")
    with pytest.raises(ModelError) as caught:
        SherpaRecognizer(directory, settings)
    assert caught.value.code == "model-load-failed"
    assert kind in caught.value.detail and str(directory) in caught.value.detail


@pytest.mark.parametrize("tokens", ["not an onnx model\n", "a 1 2\n", ""])
def test_a_tokens_file_sherpa_would_die_on_is_refused_first(tmp_path: Path, tokens: str) -> None:
    # sherpa-onnx ends the process on such a file instead of raising: it must never see one.
    settings = SherpaSettings.from_params({"kind": "transducer"})
    directory = _files(tmp_path / "broken", [name for name in settings.files.values() if name != "tokens.txt"])
    (directory / "tokens.txt").write_text(tokens)
    with pytest.raises(ModelError) as caught:
        SherpaRecognizer(directory, settings)
    assert caught.value.code == "model-invalid" and "tokens.txt" in caught.value.detail


def _provisioned_manifest(tmp_path: Path, params: str) -> tuple[ModelCatalog, Path]:
    location = _files(tmp_path / "device" / "zipformer-fr", list(TRANSDUCER.values()))
    (location / "tokens.txt").write_text("<blk> 0\n▁bonjour 1\n")
    manifests = tmp_path / "manifests"
    manifests.mkdir()
    import hashlib

    files = "".join(
        f'[[files]]\npath = "{name}"\nsize = {(location / name).stat().st_size}\n'
        f'sha256 = "{hashlib.sha256((location / name).read_bytes()).hexdigest()}"\n'
        for name in TRANSDUCER.values()
    )
    (manifests / "zipformer-fr.toml").write_text(
        'name = "zipformer-fr"\nrole = "asr"\nruntime = "sherpa-onnx-asr"\nlicense = "Apache-2.0"\n'
        f'languages = ["fr"]\n[source]\nkind = "provisioned"\nlocation = "{location}"\n{files}[params]\n{params}\n'
    )
    return ModelCatalog(manifests, tmp_path / "assembled"), location


def test_the_manifest_runtime_chooses_sherpa_and_its_kind(tmp_path: Path) -> None:
    catalog, location = _provisioned_manifest(
        tmp_path, 'kind = "transducer"\nencoder = "encoder.int8.onnx"\njoiner = "joiner.int8.onnx"'
    )
    manifest = catalog.get("zipformer-fr")
    assert catalog.ensure("zipformer-fr") == location  # verified in place
    # The files are placeholders: reaching sherpa-onnx's own loader proves the path was taken.
    with pytest.raises(ModelError, match="sherpa-onnx transducer model") as caught:
        load_recognizer(manifest, location, "fr")
    assert caught.value.code == "model-load-failed"


def test_a_provisioned_manifest_without_a_kind_is_refused(tmp_path: Path) -> None:
    catalog, location = _provisioned_manifest(tmp_path, 'threads = 2')
    with pytest.raises(ConfigError, match="need 'kind'"):
        load_recognizer(catalog.get("zipformer-fr"), location, "fr")


def test_sherpa_gives_no_language_evidence_so_a_call_keeps_its_language() -> None:
    recognizer = SherpaRecognizer.__new__(SherpaRecognizer)  # detection needs no model
    assert recognizer.detect_language(np.zeros(16000, dtype=np.float32)) == {}


def test_hotwords_reach_only_a_transducer_in_beam_search() -> None:
    def hotword_text(params: dict, words: tuple[str, ...]) -> str | None:
        recognizer = SherpaRecognizer.__new__(SherpaRecognizer)
        recognizer._settings = SherpaSettings.from_params(params)
        return recognizer._hotword_text(words)

    words = ("docteur Martin", " mardi ", "")
    assert hotword_text({"kind": "transducer", "decoding_method": "modified_beam_search"}, words) == (
        "docteur Martin/mardi"
    )
    assert hotword_text({"kind": "transducer"}, words) is None  # greedy search has no context graph
    assert hotword_text({"kind": "whisper"}, words) is None
    assert hotword_text({"kind": "transducer", "decoding_method": "modified_beam_search"}, ()) is None


def test_a_call_on_a_sherpa_model_never_switches_language() -> None:
    class NoEvidence:
        language = "fr"

        def detect_language(self, pcm16k: np.ndarray) -> dict[str, float]:
            return {}

        def transcribe(self, pcm16k, *, hotwords=(), language=None):  # type: ignore[no-untyped-def]
            from appliance.speech.asr import Transcript

            return Transcript(text="bonjour", language=language or "fr", audio_s=1.0, decode_s=0.1,
                              no_speech_prob=None, avg_logprob=None)

        def warm_up(self) -> None: ...

    call = CallRecognizer(NoEvidence(), offered=("fr", "en"), current="fr")
    heard = [call.transcribe(np.full(32000, 0.1 * i, dtype=np.float32)) for i in range(1, 4)]
    assert [t.language for t in heard] == ["fr", "fr", "fr"]
    assert heard[1].detected_language == "fr" and not call.detecting  # settled: stays French


@pytest.fixture
def tiny_transducer(tmp_path: Path) -> Path:
    for name, blob in _TINY_TRANSDUCER.items():
        (tmp_path / name).write_bytes(zlib.decompress(base64.b64decode(blob)))
    (tmp_path / "tokens.txt").write_text(_TINY_TOKENS)
    return tmp_path


@pytest.mark.parametrize("decoding_method", ["greedy_search", "modified_beam_search"])
def test_an_offline_transducer_decodes_a_turn_through_sherpa(tiny_transducer: Path, decoding_method: str) -> None:
    settings = SherpaSettings.from_params(
        {"kind": "transducer", "decoding_method": decoding_method, "modeling_unit": "cjkchar"}, language="fr"
    )
    recognizer = SherpaRecognizer(tiny_transducer, settings)
    recognizer.warm_up()
    noise = (np.random.default_rng(1).standard_normal(2 * 16000) * 0.1).astype(np.float32)

    heard = recognizer.transcribe(noise, hotwords=("B O N",))  # cjkchar: a hotword's tokens are spaced

    assert heard.text and set(heard.text) <= set("BONJU ")  # only the model's own tokens
    assert (heard.language, heard.audio_s, heard.no_speech_prob) == ("fr", 2.0, None)
    assert heard.decode_s > 0
    assert recognizer.transcribe(noise, hotwords=("B O N",)).text == heard.text  # the same turn, the same words
    assert recognizer.transcribe(np.zeros(0, dtype=np.float32)).text == ""
