from ...core.errors import UnauthorizedError
from ...core.security import InvalidTokenError


class InvalidCredentialsError(UnauthorizedError):
    code = "invalid_credentials"
    message = "The e-mail address or password is wrong."

    def __init__(self) -> None:
        super().__init__(headers={"WWW-Authenticate": "Bearer"})


class RefreshTokenRevokedError(InvalidTokenError):
    code = "refresh_token_revoked"
    message = "The refresh token was revoked; log in again."


class RefreshTokenReusedError(InvalidTokenError):
    code = "refresh_token_reused"
    message = "The refresh token was already used; every session it belongs to is revoked."
    keeps_writes = True  # the family's revocation commits although the request fails
