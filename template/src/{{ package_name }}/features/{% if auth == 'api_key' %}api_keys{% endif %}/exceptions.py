from ...core.errors import ForbiddenError, NotFoundError, UnauthorizedError


class MissingApiKeyError(UnauthorizedError):
    code = "missing_api_key"
    message = "Send an API key in the X-API-Key header."


class InvalidApiKeyError(UnauthorizedError):
    code = "invalid_api_key"
    message = "The API key is not valid."


class MissingScopeError(ForbiddenError):
    code = "missing_scope"

    def __init__(self, missing: list[str]) -> None:
        super().__init__(
            f"The API key lacks the scope(s): {', '.join(missing)}.", details={"missing": missing}
        )


class ApiKeyNotFoundError(NotFoundError):
    code = "api_key_not_found"

    def __init__(self, key_id: int) -> None:
        super().__init__(f"API key {key_id} was not found.", details={"id": key_id})
