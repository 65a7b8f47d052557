import httpx2
import pytest

from embedding_distillation.hub_client import is_transient, redact, resolve_endpoint


@pytest.mark.parametrize(
    ("error", "transient"),
    [
        (httpx2.ReadTimeout("slow"), True),
        (httpx2.ConnectError("refused"), True),
        (httpx2.RemoteProtocolError("dropped"), True),
        (ValueError("bad"), False),
    ],
)
def test_is_transient(error, transient):
    assert is_transient(error) is transient


def test_redact_hides_the_token_and_anything_shaped_like_one():
    text = "token=secret-value other=hf_abcdefgh12345"
    assert redact(text, "secret-value") == "token=hf_*** other=hf_***"


def test_endpoint_argument_wins_over_hf_endpoint(monkeypatch):
    monkeypatch.setenv("HF_ENDPOINT", "https://hub.example.com/")
    assert resolve_endpoint(None) == "https://hub.example.com"
    assert resolve_endpoint("http://127.0.0.1:9/") == "http://127.0.0.1:9"
