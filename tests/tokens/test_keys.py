from __future__ import annotations

import stat

import pytest

from codesuggest.tokens import (
    PrivateKey,
    PublicKey,
    jwks_document,
    openid_configuration,
    parse_jwks,
)
from codesuggest.tokens.keys import thumbprint

# RFC 7638 section 3.1 example key and its published thumbprint.
RFC7638_N = (
    "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRX"
    "jBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8"
    "KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xB"
    "niIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw"
)


def test_rfc7638_thumbprint_vector() -> None:
    jwk = {"kty": "RSA", "n": RFC7638_N, "e": "AQAB", "alg": "RS256", "kid": "2011-04-29"}
    assert thumbprint(jwk) == "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"
    assert PublicKey.from_jwk(jwk).kid == "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"


def test_pem_roundtrip_and_file_mode(tmp_path) -> None:
    key = PrivateKey.generate()
    assert key.key.key_size == 2048
    path = tmp_path / "keys" / "signing.pem"
    key.write(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert PrivateKey.from_file(path).kid == key.kid
    assert PrivateKey.from_pem(key.to_pem()).kid == key.kid


def test_jwks_document_and_parse() -> None:
    a, b = PrivateKey.generate(), PrivateKey.generate()
    doc = jwks_document([a.public, b.public, a.public])
    assert [k["kid"] for k in doc["keys"]] == [a.kid, b.kid]
    assert all(k["use"] == "sig" and k["alg"] == "RS256" and "d" not in k for k in doc["keys"])
    doc["keys"].append({"kty": "EC", "kid": "ec", "crv": "P-256", "x": "a", "y": "b"})
    doc["keys"].append({**a.public.jwk(), "kid": "enc", "use": "enc"})
    parsed = parse_jwks(doc)
    assert set(parsed) == {a.kid, b.kid}
    with pytest.raises(ValueError):
        parse_jwks({"nokeys": []})


def test_openid_configuration() -> None:
    assert openid_configuration("http://portal.example/") == {
        "issuer": "http://portal.example/",
        "jwks_uri": "http://portal.example/oauth/discovery/keys",
        "id_token_signing_alg_values_supported": ["RS256"],
    }
