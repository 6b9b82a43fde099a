"""The console password policy: long enough, not a common password, not the user name, not one character.

The list is small and embedded (no download): the passwords that top every leaked-password
list, at or above the minimum length, compared without case and ignoring trailing digits
and punctuation ("Password123!" is "password").
"""

from __future__ import annotations

import re

MIN_LENGTH = 10

COMMON = frozenset("""
password passw0rd p@ssword p@ssw0rd passwordpassword password1234 letmein letmeinnow welcome welcomehome
qwerty qwertyuiop qwertyuiop123 qwerty12345 asdfghjkl asdfghjkl123 zxcvbnm zxcvbnmasd 1qaz2wsx3edc
1q2w3e4r5t 1q2w3e4r5t6y qazwsxedc qazwsxedcrfv 1234567890 0987654321 12345678910 11111111111 123123123123
123456789a 123456789q abcdefghij abcdefghijk abc1234567 abcd123456 iloveyou iloveyou123 iloveyouforever
sunshine sunshine123 princess princess123 football football123 baseball baseball123 basketball
superman batman batman123 spiderman starwars starwars123 pokemon123 computer computer123 internet
dragon dragon1234 monkey monkey12345 shadow shadow1234 master master1234 trustno1 whatever whatever123
changeme changemeplease administrator admin12345 adminadmin administrator1 rootroot rootpassword
secret secretpassword default defaultpassword guest guestguest support support123 helpdesk
helloworld helloworld123 hello12345 freedom freedom123 michael jennifer jordan23 charlie charlie123
mustang mustang123 liverpool chelsea arsenal manchester soccer123 hockey12345 ranger ranger123
summer2024 summer2025 summer2026 winter2024 winter2025 winter2026 spring2025 autumn2025 january2025
correcthorsebatterystaple opensesame letmein123 access14 accessgranted
""".split())


class PasswordRejected(ValueError):
    """Why a password is refused, in one line."""


def _core(password: str) -> str:
    """The password without case and without the digits and symbols people add at the end."""
    return re.sub(r"[\d\W_]+$", "", password.lower()) or password.lower()


def check_password(password: str, user_name: str = "") -> None:
    """Raise PasswordRejected when the password is too weak for a console account."""
    if len(password) < MIN_LENGTH:
        raise PasswordRejected(f"the password must have at least {MIN_LENGTH} characters")
    low = password.lower()
    if len(set(low)) <= 2:
        raise PasswordRejected("the password must not be one or two characters repeated")
    if user_name and (user_name.lower() in low or _core(password) == user_name.lower()):
        raise PasswordRejected("the password must not contain the user name")
    if low in COMMON or _core(password) in COMMON or re.sub(r"\d+$", "", low) in COMMON:
        raise PasswordRejected("that password is on the list of the most common passwords; choose another")
    if re.fullmatch(r"(0123456789|1234567890|9876543210|abcdefghijklmnopqrstuvwxyz)+.*", low):
        raise PasswordRejected("the password must not be a plain sequence")
