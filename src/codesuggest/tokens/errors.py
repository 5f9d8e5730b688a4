"""Typed token failures. `reason` is for logs and metrics; clients see only a generic message."""


class TokenError(Exception):
    """A token was refused. `reason` is a short, stable, log-safe code."""

    reason = "invalid"

    def __init__(self, detail: str = "", *, reason: str | None = None) -> None:
        if reason is not None:
            self.reason = reason
        super().__init__(detail or self.reason)


class TooLarge(TokenError):
    reason = "too_large"


class Malformed(TokenError):
    reason = "malformed"


class BadAlgorithm(TokenError):
    reason = "bad_algorithm"


class UnknownIssuer(TokenError):
    reason = "unknown_issuer"


class UnknownKey(TokenError):
    reason = "unknown_kid"


class KeysUnavailable(TokenError):
    """The issuer's keys could not be loaded (it is unreachable): the token can be neither
    accepted nor refused yet, so the caller should try again rather than give up."""

    reason = "keys_unavailable"


class BadSignature(TokenError):
    reason = "bad_signature"


class MissingClaim(TokenError):
    reason = "missing_claim"


class Expired(TokenError):
    reason = "expired"


class NotYetValid(TokenError):
    reason = "not_yet_valid"


class IssuedInFuture(TokenError):
    reason = "issued_in_future"


class BadAudience(TokenError):
    reason = "bad_audience"
