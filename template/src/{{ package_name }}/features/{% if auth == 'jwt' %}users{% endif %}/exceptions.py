from ...core.errors import ConflictError, ForbiddenError


class EmailTakenError(ConflictError):
    code = "email_taken"

    def __init__(self) -> None:
        super().__init__("A user with this e-mail address already exists.")


class MissingRoleError(ForbiddenError):
    code = "missing_role"

    def __init__(self, roles: tuple[str, ...]) -> None:
        super().__init__(
            f"This needs the role {' or '.join(repr(role) for role in roles)}.",
            details={"roles": list(roles)},
        )
