"""WeCom callback crypto against Tencent's published sample vectors (WXBizMsgCrypt Sample.py)."""

from __future__ import annotations

import base64

import pytest

from qunflow.connectors.wecom.crypto import WeComCrypto
from qunflow.errors import InvalidInput, Unauthorized

# Tencent's sample library (callback/Sample.py): the settings it assumes and the two requests it shows.
TOKEN = "hJqcu3uJ9Tn2gXPmxx2w9kkCkCE2EPYo"
AES_KEY = "6qkdMrq68nTKduznJYO1A37W2oEgpkMUvkttRToqhUt"
CORP_ID = "ww1436e0e65a779aee"
URL_CHECK = {
    "msg_signature": "012bc692d0a58dd4b10f8dfe5c4ac00ae211ebeb", "timestamp": "1476416373", "nonce": "47744683",
    "echostr": "fsi1xnbH4yQh0+PJxcOdhhK6TDXkjMyhEPA7xB2TGz6b+g7xyAbEkRxN/3cNXW9qdqjnoVzEtpbhnFyq6SVHyA==",
}
POST = {
    "msg_signature": "0c3914025cb4b4d68103f6bfc8db550f79dcf48e", "timestamp": "1476422779", "nonce": "1597212914",
    "encrypt": (
        "Kl7kjoSf6DMD1zh7rtrHjFaDapSCkaOnwu3bqLc5tAybhhMl9pFeK8NslNPVdMwmBQTNoW4mY7AIjeLvEl3NyeTkAgGzBhzTtRLNshw2"
        "AEew+kkYcD+Fq72Kt00fT0WnN87hGrW8SqGc+NcT3mu87Ha3dz1pSDi6GaUA6A0sqfde0VJPQbZ9U+3JWcoD4Z5jaU0y9GSh010wsHF8"
        "KZD24YhmZH4ch4Ka7ilEbjbfvhKkNL65HHL0J6EYJIZUC2pFrdkJ7MhmEbU2qARR4iQHE7wy24qy0cRX3Mfp6iELcDNfSsPGjUQVDGxQ"
        "DCWjayJOpcwocugux082f49HKYg84EpHSGXAyh+/oxwaWbvL6aSDPOYuPDGOCI8jmnKiypE+"),
}
POST_PLAINTEXT = ("<xml><ToUserName>ww1436e0e65a779aee</ToUserName><FromUserName>ChenJiaShun</FromUserName>"
                  "<CreateTime>1476422779</CreateTime><MsgType>text</MsgType><Content>你好</Content>"
                  "<MsgId>1456453720</MsgId><AgentID>1000002</AgentID></xml>")


@pytest.fixture
def crypto() -> WeComCrypto:
    return WeComCrypto(TOKEN, AES_KEY, CORP_ID)


def test_signature_matches_tencents_url_check_vector(crypto: WeComCrypto) -> None:
    assert crypto.signature(URL_CHECK["timestamp"], URL_CHECK["nonce"], URL_CHECK["echostr"]) \
        == URL_CHECK["msg_signature"]


def test_url_check_decrypts_tencents_echostr(crypto: WeComCrypto) -> None:
    assert crypto.verify_url(**URL_CHECK) == "1288432023552776189"


def test_post_vector_decrypts_to_tencents_plaintext(crypto: WeComCrypto) -> None:
    assert crypto.decrypt(**POST) == POST_PLAINTEXT


def test_round_trip_keeps_utf8_and_pads_to_32_byte_blocks(crypto: WeComCrypto) -> None:
    message = "<xml><Content>欢迎加入 qunflow 社群</Content></xml>"
    encrypted, signature = crypto.encrypt(message, "1700000000", "abc")
    assert len(base64.b64decode(encrypted)) % 32 == 0
    assert crypto.decrypt(signature, "1700000000", "abc", encrypted) == message


def test_bad_signature_is_unauthorized(crypto: WeComCrypto) -> None:
    with pytest.raises(Unauthorized, match="msg_signature"):
        crypto.decrypt("0" * 40, POST["timestamp"], POST["nonce"], POST["encrypt"])


def test_another_token_is_unauthorized() -> None:
    with pytest.raises(Unauthorized):
        WeComCrypto("another-token", AES_KEY, CORP_ID).decrypt(**POST)


def test_payload_for_another_corp_is_unauthorized() -> None:
    with pytest.raises(Unauthorized, match="corp id"):
        WeComCrypto(TOKEN, AES_KEY, "ww0000000000000000").decrypt(**POST)


def test_wrong_aes_key_is_refused_not_crashed() -> None:
    other = WeComCrypto(TOKEN, "a" * 43, CORP_ID)
    with pytest.raises((InvalidInput, Unauthorized)):
        other.decrypt(**POST)


@pytest.mark.parametrize("garbage", ["", "not base64 at all!", base64.b64encode(b"short").decode(),
                                     base64.b64encode(b"x" * 31).decode(), base64.b64encode(b"\0" * 32).decode()])
def test_garbage_ciphertext_is_invalid_input(crypto: WeComCrypto, garbage: str) -> None:
    signature = crypto.signature("1", "2", garbage)
    with pytest.raises(InvalidInput):
        crypto.decrypt(signature, "1", "2", garbage)


def test_length_field_overrunning_the_payload_is_invalid_input(crypto: WeComCrypto) -> None:
    from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

    key = base64.b64decode(AES_KEY + "=")
    plain = b"r" * 16 + (10_000).to_bytes(4, "big") + b"hi" + CORP_ID.encode()
    plain += bytes([32 - len(plain) % 32]) * (32 - len(plain) % 32)
    enc = Cipher(algorithms.AES(key), modes.CBC(key[:16])).encryptor()
    garbage = base64.b64encode(enc.update(plain) + enc.finalize()).decode()
    with pytest.raises(InvalidInput, match="length"):
        crypto.decrypt(crypto.signature("1", "2", garbage), "1", "2", garbage)


@pytest.mark.parametrize("key", ["short", "a" * 44, "!" * 43])
def test_malformed_encoding_aes_key_is_invalid_input(key: str) -> None:
    with pytest.raises(InvalidInput, match="EncodingAESKey"):
        WeComCrypto(TOKEN, key, CORP_ID)
