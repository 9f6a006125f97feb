"""User accounts: registration, profile and password, with unique usernames and emails."""

from __future__ import annotations

import re

import msgspec

from core.aggregate import Entity
from core.errors import ErrorCollector
from core.passwords import check_password_strength, hash_password
from core.units import Unit

USERNAME_PATTERN = re.compile(r"^[\w.@+-]{1,150}$")
EMAIL_PATTERN = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


class User(Entity):
    KIND = "user"

    class Created(Entity.Created):
        user_id: int
        username: str
        email: str
        first_name: str
        last_name: str
        password_hash: str
        is_superuser: bool

    def __init__(
        self,
        user_id: int,
        username: str,
        email: str,
        first_name: str,
        last_name: str,
        password_hash: str,
        is_superuser: bool,
    ) -> None:
        self.user_id = user_id
        self.username = username
        self.email = email
        self.first_name = first_name
        self.last_name = last_name
        self.password_hash = password_hash
        self.is_superuser = is_superuser

    class PasswordChanged(Entity.Event):
        password_hash: str

        def apply(self, user: User) -> None:
            user.password_hash = self.password_hash

    class ProfileUpdated(Entity.Event):
        changes: dict[str, str]

        def apply(self, user: User) -> None:
            for field, value in self.changes.items():
                setattr(user, field, value)

    def change_password(self, password_hash: str) -> None:
        self.trigger_event(self.PasswordChanged, password_hash=password_hash)


class AccountName(Entity):
    """Claims a username (case-insensitively): a second claim fails to save."""

    KIND = "username"

    class Created(Entity.Created):
        user_id: int

    def __init__(self, user_id: int) -> None:
        self.user_id = user_id


class AccountEmail(Entity):
    """Claims an email address (case-insensitively)."""

    KIND = "email"

    class Created(Entity.Created):
        user_id: int

    def __init__(self, user_id: int) -> None:
        self.user_id = user_id


class Registration(msgspec.Struct):
    """CVAT's POST /api/auth/register body."""

    username: str
    password1: str
    password2: str
    email: str = ""
    first_name: str = ""
    last_name: str = ""
    confirmations: list[object] = []


def register_user(unit: Unit, form: Registration, *, is_superuser: bool = False) -> User:
    errors = ErrorCollector()
    if not USERNAME_PATTERN.match(form.username):
        errors.add("username", "Enter a valid username of letters, digits and @/./+/-/_ only.")
    elif unit.find(AccountName, form.username.lower()) is not None:
        errors.add("username", "A user with that username already exists.")
    if form.email:
        if not EMAIL_PATTERN.match(form.email):
            errors.add("email", "Enter a valid email address.")
        elif unit.find(AccountEmail, form.email.lower()) is not None:
            errors.add("email", "A user is already registered with this e-mail address.")
    if form.password1 != form.password2:
        errors.add("password2", "The two password fields didn't match.")
    for problem in check_password_strength(form.password1):
        errors.add("password1", problem)
    errors.raise_if_any()
    user_id = unit.next_id("user")
    user = User._start(
        user_id,
        user_id=user_id,
        username=form.username,
        email=form.email,
        first_name=form.first_name,
        last_name=form.last_name,
        password_hash=hash_password(form.password1),
        is_superuser=is_superuser,
    )
    unit.add(user)
    unit.add(AccountName._start(form.username.lower(), user_id=user_id))
    if form.email:
        unit.add(AccountEmail._start(form.email.lower(), user_id=user_id))
    return user


def change_password(unit: Unit, user_id: int, old_ok: bool, new1: str, new2: str) -> None:
    errors = ErrorCollector()
    if not old_ok:
        errors.add("old_password", "Your old password was entered incorrectly.")
    check_new_password(new1, new2, errors)
    errors.raise_if_any()
    unit.get(User, user_id).change_password(hash_password(new1))


def check_new_password(new1: str, new2: str, errors: ErrorCollector | None = None) -> None:
    """The checks of a new password (new_password1/2), raised unless `errors` collects them."""
    collector = errors if errors is not None else ErrorCollector()
    if new1 != new2:
        collector.add("new_password2", "The two password fields didn't match.")
    for problem in check_password_strength(new1):
        collector.add("new_password1", problem)
    if errors is None:
        collector.raise_if_any()
