"""WeCom callback crypto (developer.work.weixin.qq.com/document/path/91144), on `cryptography`'s AES-CBC.

msg_signature = sha1 of the sorted token, timestamp, nonce and ciphertext. The ciphertext is base64 of
AES-256-CBC (key = b64decode(EncodingAESKey + "="), IV = key[:16], PKCS#7 padding to 32-byte blocks) over
16 random bytes + the message length (4 bytes, big-endian) + the message + the receive id (the corp id).
Everything that arrives here is untrusted: a bad signature is Unauthorized, anything malformed is
InvalidInput, never an unexpected exception.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os
import struct

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from qunflow.errors import InvalidInput, Unauthorized

BLOCK = 32  # WeCom pads to 32 bytes, not AES's 16
AES_KEY_LENGTH = 43


class WeComCrypto:
    """Signs, verifies, encrypts and decrypts WeCom callback payloads for one corp."""

    def __init__(self, token: str, encoding_aes_key: str, receive_id: str) -> None:
        if len(encoding_aes_key) != AES_KEY_LENGTH:
            raise InvalidInput(f"the EncodingAESKey must be exactly {AES_KEY_LENGTH} characters "
                               f"(got {len(encoding_aes_key)}); copy it from the callback settings page",
                               zh=f"EncodingAESKey 须正好 {AES_KEY_LENGTH} 个字符(当前 {len(encoding_aes_key)} 个);"
                                  "请从回调设置页面复制")
        try:
            key = base64.b64decode(encoding_aes_key + "=", validate=True)
        except (binascii.Error, ValueError) as exc:
            raise InvalidInput("the EncodingAESKey must be letters and digits only (base64 without '=')",
                               zh="EncodingAESKey 只能包含字母和数字(不带 '=' 的 base64)") from exc
        if len(key) != 32:
            raise InvalidInput("the EncodingAESKey does not decode to a 32-byte AES key",
                               zh="EncodingAESKey 解码后不是 32 字节的 AES 密钥")
        self._token = token
        self._key = key
        self._receive_id = receive_id

    def signature(self, timestamp: str, nonce: str, encrypt: str) -> str:
        """sha1 hex of the four strings sorted and joined (the msg_signature WeCom sends)."""
        parts = sorted([self._token, timestamp, nonce, encrypt])
        return hashlib.sha1("".join(parts).encode()).hexdigest()

    def verify_url(self, msg_signature: str, timestamp: str, nonce: str, echostr: str) -> str:
        """The GET check on saving the callback URL: the decrypted echostr, to answer as-is."""
        return self.decrypt(msg_signature, timestamp, nonce, echostr)

    def decrypt(self, msg_signature: str, timestamp: str, nonce: str, encrypt: str) -> str:
        """Check the signature, then decrypt; the plaintext's receive id must be our corp id."""
        expected = self.signature(timestamp, nonce, encrypt)
        if not hmac.compare_digest(expected, (msg_signature or "").lower()):
            raise Unauthorized("wecom callback: msg_signature does not match; check the callback Token "
                               "in [platforms.wecom] is the one on the WeCom callback settings page",
                               zh="企业微信回调:msg_signature 签名不符;请确认 [platforms.wecom] 里的回调 Token "
                                  "与企业微信回调设置页面上的一致")
        try:
            ciphertext = base64.b64decode(encrypt, validate=True)
        except (binascii.Error, ValueError) as exc:
            raise InvalidInput("wecom callback: the encrypted part is not base64",
                               zh="企业微信回调:加密部分不是 base64") from exc
        if not ciphertext or len(ciphertext) % 16:
            raise InvalidInput("wecom callback: the encrypted part is not whole AES blocks",
                               zh="企业微信回调:加密部分不是完整的 AES 分组")
        decryptor = Cipher(algorithms.AES(self._key), modes.CBC(self._key[:16])).decryptor()
        padded = decryptor.update(ciphertext) + decryptor.finalize()
        pad = padded[-1]
        if not 1 <= pad <= BLOCK or padded[-pad:] != bytes([pad]) * pad:
            # A wrong EncodingAESKey lands here: the signature (made with the token) can still match.
            raise InvalidInput("wecom callback: bad padding after decryption; check the EncodingAESKey",
                               zh="企业微信回调:解密后的填充有误;请检查 EncodingAESKey")
        plain = padded[:-pad]
        if len(plain) < 20:
            raise InvalidInput("wecom callback: decrypted payload too short",
                               zh="企业微信回调:解密后的内容过短")
        (length,) = struct.unpack(">I", plain[16:20])
        if 20 + length > len(plain):
            raise InvalidInput("wecom callback: decrypted length field overruns the payload",
                               zh="企业微信回调:解密后的长度字段超出了内容长度")
        message, receive_id = plain[20:20 + length], plain[20 + length:]
        if not hmac.compare_digest(receive_id, self._receive_id.encode()):
            raise Unauthorized("wecom callback: encrypted for another corp id; check corp_id in [platforms.wecom]",
                               zh="企业微信回调:这是加密给另一个企业 ID 的;请检查 [platforms.wecom] 里的 corp_id")
        try:
            return message.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise InvalidInput("wecom callback: decrypted message is not UTF-8",
                               zh="企业微信回调:解密后的消息不是 UTF-8") from exc

    def encrypt(self, message: str, timestamp: str, nonce: str) -> tuple[str, str]:
        """(base64 ciphertext, msg_signature) as WeCom would send them; used by the fake server and tests."""
        body = message.encode("utf-8")
        plain = os.urandom(16) + struct.pack(">I", len(body)) + body + self._receive_id.encode()
        pad = BLOCK - len(plain) % BLOCK
        plain += bytes([pad]) * pad
        encryptor = Cipher(algorithms.AES(self._key), modes.CBC(self._key[:16])).encryptor()
        encrypted = base64.b64encode(encryptor.update(plain) + encryptor.finalize()).decode()
        return encrypted, self.signature(timestamp, nonce, encrypted)
