import re
from datetime import datetime
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, EmailStr, Field

from ...shared.pagination import PageParams

Role = Literal["user", "admin"]

MIN_PASSWORD_LENGTH = 12
MAX_PASSWORD_LENGTH = 128


def _normalise_email(value: object) -> object:
    return value.strip().lower() if isinstance(value, str) else value


# The kinds of characters a password mixes: lower case, upper case, digits, and the rest.
_KINDS = ("[a-z]", "[A-Z]", "[0-9]", "[^A-Za-z0-9]")
# The same rule as a pattern, for the OpenAPI schema: a character of one kind, later another.
PASSWORD_PATTERN = "|".join(
    f"{first}[\\s\\S]*{second}" for first in _KINDS for second in _KINDS if first != second
)
_KIND_PATTERNS = [re.compile(kind) for kind in _KINDS]


def _character_classes(password: str) -> int:
    return sum(1 for kind in _KIND_PATTERNS if kind.search(password))


def check_password_policy(password: str) -> str:
    if len(password) < MIN_PASSWORD_LENGTH:
        raise ValueError(f"Password must be at least {MIN_PASSWORD_LENGTH} characters long.")
    if len(password) > MAX_PASSWORD_LENGTH:
        raise ValueError(f"Password must be at most {MAX_PASSWORD_LENGTH} characters long.")
    if _character_classes(password) < 2:
        raise ValueError(
            "Password must mix at least two kinds of characters:"
            " lower case, upper case, digits, symbols."
        )
    return password


Email = Annotated[EmailStr, BeforeValidator(_normalise_email)]
# The schema states the policy (length, pattern) so clients see it; the check says it in words.
Password = Annotated[
    str,
    Field(
        json_schema_extra={
            "minLength": MIN_PASSWORD_LENGTH,
            "maxLength": MAX_PASSWORD_LENGTH,
            "pattern": PASSWORD_PATTERN,
        }
    ),
    AfterValidator(check_password_policy),
]


class UserCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    email: Email
    password: Password


class UserRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    email: str
    role: Role
    created_at: datetime


class UserQuery(PageParams):
    model_config = ConfigDict(extra="forbid")
