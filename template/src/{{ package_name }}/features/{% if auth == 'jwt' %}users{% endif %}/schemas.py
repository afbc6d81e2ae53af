from datetime import datetime
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, EmailStr

from ...shared.pagination import PageParams

Role = Literal["user", "admin"]

MIN_PASSWORD_LENGTH = 12
MAX_PASSWORD_LENGTH = 128


def _normalise_email(value: object) -> object:
    return value.strip().lower() if isinstance(value, str) else value


def _character_classes(password: str) -> int:
    return sum(
        [
            any(char.islower() for char in password),
            any(char.isupper() for char in password),
            any(char.isdigit() for char in password),
            any(not char.isalnum() for char in password),
        ]
    )


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
Password = Annotated[str, AfterValidator(check_password_policy)]


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
