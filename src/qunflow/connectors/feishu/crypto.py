"""Feishu event crypto, as the open platform documents it (事件订阅 → 接收事件), on `cryptography`.

Encrypted events arrive as {"encrypt": base64(iv + AES-256-CBC(PKCS#7, key = SHA-256(encrypt_key)))}. Each
event request is signed: X-Lark-Signature = sha256 hex of timestamp + nonce + encrypt_key + the raw body.
Everything arriving here is untrusted: a bad signature is Unauthorized, anything malformed InvalidInput.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os

from cryptography.hazmat.primitives import padding
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from qunflow.errors import InvalidInput, Unauthorized


class FeishuCrypto:
    def __init__(self, encrypt_key: str) -> None:
        self._encrypt_key = encrypt_key
        self._key = hashlib.sha256(encrypt_key.encode("utf-8")).digest()

    def signature(self, timestamp: str, nonce: str, body: bytes) -> str:
        return hashlib.sha256((timestamp + nonce + self._encrypt_key).encode("utf-8") + body).hexdigest()

    def verify(self, timestamp: str, nonce: str, body: bytes, signature: str) -> None:
        if not hmac.compare_digest(self.signature(timestamp, nonce, body), (signature or "").lower()):
            raise Unauthorized("feishu event: X-Lark-Signature does not match; check encrypt_key in "
                               "[platforms.feishu] is the Encrypt Key on 事件与回调 → 加密策略",
                               zh="飞书事件:X-Lark-Signature 签名不符;请确认 [platforms.feishu] 里的 encrypt_key "
                                  "就是「事件与回调 → 加密策略」上的 Encrypt Key")

    def decrypt(self, encrypted: str) -> str:
        try:
            raw = base64.b64decode(encrypted, validate=True)
        except (binascii.Error, ValueError) as exc:
            raise InvalidInput("feishu event: the encrypted part is not base64",
                               zh="飞书事件:加密部分不是 base64") from exc
        if len(raw) < 32 or len(raw) % 16:
            raise InvalidInput("feishu event: the encrypted part is not an IV and whole AES blocks",
                               zh="飞书事件:加密部分不是 IV 加完整的 AES 分组")
        decryptor = Cipher(algorithms.AES(self._key), modes.CBC(raw[:16])).decryptor()
        padded = decryptor.update(raw[16:]) + decryptor.finalize()
        unpadder = padding.PKCS7(128).unpadder()
        try:
            plain = unpadder.update(padded) + unpadder.finalize()
            return plain.decode("utf-8")
        except (ValueError, UnicodeDecodeError) as exc:
            # A wrong Encrypt Key lands here (the url_verification call is not signed).
            raise Unauthorized("feishu event: cannot decrypt; check encrypt_key in [platforms.feishu]",
                               zh="飞书事件:无法解密;请检查 [platforms.feishu] 里的 encrypt_key") from exc

    def encrypt(self, plain: str) -> str:
        """What Feishu sends; used by the fake server and tests."""
        iv = os.urandom(16)
        padder = padding.PKCS7(128).padder()
        data = padder.update(plain.encode("utf-8")) + padder.finalize()
        encryptor = Cipher(algorithms.AES(self._key), modes.CBC(iv)).encryptor()
        return base64.b64encode(iv + encryptor.update(data) + encryptor.finalize()).decode()
