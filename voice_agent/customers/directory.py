"""The customer directory: a small interface, a CSV file, a SQLite file or an HTTP CRM behind it.

Every method blocks (file reads, HTTP): call them from a worker thread (``Callers`` does). A missing or corrupt
file and a CRM that does not answer raise ``DirectoryError`` with a message that names the directory, never a
customer's data.
"""

from __future__ import annotations

import csv
import json
import os
import re
import threading
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from voice_agent.customers.identity import normalise_number

FIELDS = ("id", "name", "phone", "account", "postcode", "plan", "open_tickets", "consent_recording",
          "consent_marketing")


class DirectoryError(Exception):
    """The directory cannot be read or asked; the message says which and why (no personal data)."""


@dataclass
class Customer:
    """One customer record."""

    id: str
    name: str = ""
    phones: tuple[str, ...] = ()  # normalised +<digits>
    account: str = ""  # account number (digits)
    postcode: str = ""  # upper case, no spaces
    plan: str = ""
    open_tickets: int = 0
    consent_recording: bool = True  # False: the call is not recorded
    consent_marketing: bool = False

    @property
    def first_name(self) -> str:
        """What the assistant calls the customer."""
        return self.name.split()[0] if self.name.strip() else ""

    def card(self) -> dict[str, Any]:
        """What the support console shows (no phone number, account number or postcode)."""
        return {"id": self.id, "name": self.name, "plan": self.plan, "open_tickets": self.open_tickets,
                "consent_recording": self.consent_recording, "consent_marketing": self.consent_marketing}


class Directory(Protocol):
    """Where customers are looked up (blocking)."""

    def lookup_by_phone(self, number: str) -> Customer | None:
        """The customer with this normalised number (``+<digits>``), if any."""
        ...

    def lookup_by_id(self, customer_id: str) -> Customer | None:
        """The customer with this id, if any."""
        ...

    def verify(self, account: str, postcode: str) -> Customer | None:
        """The customer whose account number and postcode both match, if any."""
        ...


def _flag(value: Any, default: bool) -> bool:
    text = str(value if value is not None else "").strip().lower()
    if text in ("1", "true", "yes", "y", "on"):
        return True
    if text in ("0", "false", "no", "n", "off"):
        return False
    return default


def clean_postcode(value: str) -> str:
    """``sw1a 1aa`` -> ``SW1A1AA``."""
    return re.sub(r"[^A-Za-z0-9]", "", value or "").upper()


def clean_account(value: str) -> str:
    """The digits of an account number."""
    return re.sub(r"\D", "", value or "")


def customer_from(row: dict[str, Any], country_code: str = "44") -> Customer:
    """A record from a CSV row, a SQLite row or a CRM's JSON (``phone`` may hold several numbers, ``;``-separated)."""
    cid = str(row.get("id") or "").strip()
    if not cid:
        raise ValueError("a record without an id")
    phones = row.get("phones", row.get("phone")) or ""
    items = phones if isinstance(phones, list) else str(phones).split(";")
    numbers = tuple(n for n in (normalise_number(str(p), country_code) for p in items) if n)
    try:
        tickets = int(str(row.get("open_tickets") or 0).strip() or 0)
    except ValueError:
        raise ValueError("open_tickets is not a number") from None
    return Customer(id=cid, name=str(row.get("name") or "").strip(), phones=numbers,
                    account=clean_account(str(row.get("account") or "")),
                    postcode=clean_postcode(str(row.get("postcode") or "")), plan=str(row.get("plan") or "").strip(),
                    open_tickets=tickets, consent_recording=_flag(row.get("consent_recording"), True),
                    consent_marketing=_flag(row.get("consent_marketing"), False))


class TableDirectory:
    """Records held in memory and looked up by number, id and account; reloaded when the file changes."""

    def __init__(self, path: Path, country_code: str = "44") -> None:
        self.path = path
        self.country_code = country_code
        self._lock = threading.Lock()
        self._stamp: tuple[float, int] | None = None
        self._by_id: dict[str, Customer] = {}
        self._by_phone: dict[str, Customer] = {}
        self._by_account: dict[str, Customer] = {}
        self._fresh()

    def _rows(self) -> list[dict[str, Any]]:
        raise NotImplementedError

    def _fresh(self) -> None:
        try:
            st = os.stat(self.path)
        except OSError as exc:
            raise DirectoryError(f"customer directory {self.path}: {exc.strerror or exc}") from None
        stamp = (st.st_mtime, st.st_size)
        with self._lock:
            if stamp == self._stamp:
                return
            by_id: dict[str, Customer] = {}
            for i, row in enumerate(self._rows(), start=2):
                try:
                    customer = customer_from(row, self.country_code)
                except ValueError as exc:
                    raise DirectoryError(f"customer directory {self.path}: record {i}: {exc}") from None
                by_id[customer.id] = customer
            self._by_id = by_id
            self._by_phone = {n: c for c in by_id.values() for n in c.phones}
            self._by_account = {c.account: c for c in by_id.values() if c.account}
            self._stamp = stamp

    def __len__(self) -> int:
        return len(self._by_id)

    def lookup_by_phone(self, number: str) -> Customer | None:
        """The customer with this normalised number."""
        self._fresh()
        return self._by_phone.get(normalise_number(number, self.country_code)) if number else None

    def lookup_by_id(self, customer_id: str) -> Customer | None:
        """The customer with this id."""
        self._fresh()
        return self._by_id.get(customer_id.strip())

    def verify(self, account: str, postcode: str) -> Customer | None:
        """The customer whose account number and postcode both match."""
        self._fresh()
        found = self._by_account.get(clean_account(account))
        return found if found is not None and found.postcode and found.postcode == clean_postcode(postcode) else None


class CsvDirectory(TableDirectory):
    """A CSV file with a header row: id, name, phone, account, postcode, plan, open_tickets, consent_* columns."""

    def _rows(self) -> list[dict[str, Any]]:
        try:
            with open(self.path, newline="", encoding="utf-8-sig") as f:
                reader = csv.DictReader(f)
                if not reader.fieldnames or "id" not in reader.fieldnames:
                    raise DirectoryError(f"customer directory {self.path}: not a CSV file with an id column "
                                         f"(expected columns: {', '.join(FIELDS)})")
                return list(reader)
        except (OSError, UnicodeDecodeError, csv.Error) as exc:
            raise DirectoryError(f"customer directory {self.path}: cannot be read ({type(exc).__name__})") from None


class SqliteDirectory(TableDirectory):
    """A SQLite file with a ``customers`` table of the CSV's columns (read only)."""

    def _rows(self) -> list[dict[str, Any]]:
        from voice_agent.store.customers import read_customer_rows

        return read_customer_rows(self.path)


class HttpDirectory:
    """A CRM over HTTP: ``GET {base}/customers?phone=``, ``{base}/customers/{id}``, ``{base}/customers/verify?...``.

    Each answers 200 with a JSON record (the CSV's fields) or 404. ``timeout_s`` bounds every request; a
    connection error, a timeout, another status or a body that is not a record raises DirectoryError.
    """

    def __init__(self, base_url: str, *, timeout_s: float = 2.0, api_key: str = "", country_code: str = "44") -> None:
        self.base = base_url.rstrip("/")
        self.timeout_s = timeout_s
        self.api_key = api_key
        self.country_code = country_code
        where = urllib.parse.urlsplit(self.base)
        self.where = f"{where.scheme}://{where.hostname}{f':{where.port}' if where.port else ''}"  # no credentials

    def _get(self, path: str, query: dict[str, str] | None = None) -> Customer | None:
        url = self.base + path + (("?" + urllib.parse.urlencode(query)) if query else "")
        request = urllib.request.Request(url, headers={"Accept": "application/json"})
        if self.api_key:
            request.add_header("Authorization", f"Bearer {self.api_key}")
        try:
            with urllib.request.urlopen(request, timeout=self.timeout_s) as response:
                body = response.read(1_000_000)
        except urllib.error.HTTPError as exc:
            if exc.code == 404:
                return None
            raise DirectoryError(f"customer CRM {self.where} answered {exc.code}") from None
        except (urllib.error.URLError, TimeoutError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            kind = "timed out" if isinstance(reason, TimeoutError) or "timed out" in str(reason) else "unreachable"
            raise DirectoryError(f"customer CRM {self.where} {kind} ({type(reason).__name__})") from None
        try:
            data = json.loads(body)
            if not isinstance(data, dict):
                raise ValueError("not an object")
            return customer_from(data, self.country_code)
        except ValueError:
            raise DirectoryError(f"customer CRM {self.where} answered with something not a customer record") from None

    def lookup_by_phone(self, number: str) -> Customer | None:
        """GET /customers?phone=+<digits>."""
        number = normalise_number(number, self.country_code)
        return self._get("/customers", {"phone": number}) if number else None

    def lookup_by_id(self, customer_id: str) -> Customer | None:
        """GET /customers/{id}."""
        return self._get("/customers/" + urllib.parse.quote(customer_id.strip(), safe="")) if customer_id else None

    def verify(self, account: str, postcode: str) -> Customer | None:
        """GET /customers/verify?account=&postcode=."""
        return self._get("/customers/verify", {"account": clean_account(account), "postcode": clean_postcode(postcode)})


def open_directory(location: str, *, timeout_s: float = 2.0, api_key: str = "",
                   country_code: str = "44") -> Directory:
    """The directory at ``location``: an http(s) URL, a ``.db``/``.sqlite``/``.sqlite3`` file or a CSV (blocking)."""
    if location.startswith(("http://", "https://")):
        return HttpDirectory(location, timeout_s=timeout_s, api_key=api_key, country_code=country_code)
    path = Path(location).expanduser()
    if path.suffix.lower() in (".db", ".sqlite", ".sqlite3"):
        return SqliteDirectory(path, country_code)
    return CsvDirectory(path, country_code)
