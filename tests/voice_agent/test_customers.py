"""Who is calling: number normalisation, signed references, the CSV/SQLite/HTTP directories, and the wiring."""

from __future__ import annotations

import json
import logging
import socket
import threading
import time
import urllib.parse
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from telephony.sip.ua import Trunk
from voice_agent.config import CustomersConfig
from voice_agent.customers import Callers, DirectoryError, check_reference, normalise_number, open_directory
from voice_agent.customers.directory import CsvDirectory, HttpDirectory
from voice_agent.customers.identity import hashed, sign_reference, sip_caller_number
from voice_agent.store import CallStore
from voice_agent.store.customers import write_customer_rows

ROOT = Path(__file__).resolve().parents[2]
SAMPLE = ROOT / "examples" / "customers.csv"
ANNA = "+447700900123"


def test_numbers_normalise_to_e164_digits() -> None:
    for given in ("+44 7700 900123", "0044 7700-900123", "sip:+447700900123@pbx.example;user=phone",
                  "tel:+44-7700-900123", "07700 900123", "(0)7700 900 123", "sips:07700900123@10.0.0.1:5061"):
        assert normalise_number(given) == ANNA, given
    assert normalise_number("0612345678", "31") == "+31612345678"
    for not_a_number in ("sip:alice@host", "anonymous", "", "sip:201@pbx", "+44 77x0"):
        assert normalise_number(not_a_number) == "", not_a_number


def test_p_asserted_identity_only_from_a_trusted_trunk() -> None:
    trunks = [Trunk(name="pbx", allow_ips=["10.0.0.0/24"], trust_identity=True),
              Trunk(name="other", allow_ips=["192.0.2.7"])]
    pai = '"Anna" <sip:+447700900123@pbx.example;user=phone>, <tel:+447700900123>'
    frm = "sip:+447700900456@caller.example"
    assert sip_caller_number(frm, pai, "10.0.0.9", trunks) == (ANNA, "p-asserted-identity")
    assert sip_caller_number(frm, pai, "192.0.2.7", trunks) == ("+447700900456", "from")  # not trusted
    assert sip_caller_number(frm, pai, "203.0.113.1", trunks) == ("+447700900456", "from")
    assert sip_caller_number("sip:anonymous@x", "", "10.0.0.9", trunks) == ("", "")
    assert sip_caller_number(frm, "<tel:+44-7700-900123>", "10.0.0.9", trunks)[0] == ANNA


def test_signed_references() -> None:
    ref = sign_reference("s3cret", "C-1001")
    assert check_reference("s3cret", ref) == "C-1001"
    assert check_reference("s3cret", sign_reference("s3cret", "a.b.c")) == "a.b.c"
    assert check_reference("other", ref) is None  # another key
    assert check_reference("", ref) is None  # no secret configured: nothing is believed
    assert check_reference("s3cret", "C-1001") is None  # unsigned
    assert check_reference("s3cret", "C-1002" + ref[6:]) is None  # the id changed
    assert check_reference("s3cret", ref[:-1] + ("0" if ref[-1] != "0" else "1")) is None
    assert check_reference("s3cret", ref.upper()) is None
    assert check_reference("s3cret", "x" * 300) is None
    assert len(hashed("C-1001")) == 12 and "1001" not in hashed("C-1001")


def _check_directory(directory: Any) -> None:
    anna = directory.lookup_by_phone("07700 900123")
    assert anna is not None and anna.id == "C-1001" and anna.first_name == "Anna" and anna.plan == "Fiber 500"
    assert anna.open_tickets == 1 and anna.consent_recording and not anna.consent_marketing
    ben = directory.lookup_by_phone("+44 20 7946 0018")  # his second number
    assert ben is not None and ben.id == "C-1002" and ben.consent_marketing
    assert directory.lookup_by_phone("+44 7700 900999") is None
    chiara = directory.lookup_by_id("C-1003")
    assert chiara is not None and not chiara.consent_recording and chiara.open_tickets == 2
    assert directory.lookup_by_id("C-9999") is None
    assert directory.verify("1001 2345", "sw1a 1aa") is not None
    assert directory.verify("10012345", "M1 1AE") is None  # Ben's postcode
    assert directory.verify("99999999", "SW1A1AA") is None
    card = anna.card()
    assert "phones" not in card and "account" not in card and "postcode" not in card


def test_csv_directory_the_sample_file() -> None:
    directory = open_directory(str(SAMPLE))
    assert isinstance(directory, CsvDirectory) and len(directory) == 4
    _check_directory(directory)


def test_sqlite_directory(tmp_path: Path) -> None:
    import csv

    rows = list(csv.DictReader(SAMPLE.open(encoding="utf-8")))
    write_customer_rows(tmp_path / "customers.db", rows)
    _check_directory(open_directory(str(tmp_path / "customers.db")))


def test_csv_directory_reloads_when_the_file_changes(tmp_path: Path) -> None:
    path = tmp_path / "c.csv"
    path.write_text("id,name,phone\nX1,Zoe Example,+44 7700 900001\n")
    directory = open_directory(str(path))
    assert directory.lookup_by_id("X1") is not None and directory.lookup_by_id("X2") is None
    path.write_text("id,name,phone\nX1,Zoe Example,+44 7700 900001\nX2,Yan Example,+44 7700 900002\n")
    assert directory.lookup_by_id("X2") is not None


def test_missing_and_corrupt_files_are_clear_errors(tmp_path: Path) -> None:
    with pytest.raises(DirectoryError, match="No such file"):
        open_directory(str(tmp_path / "nope.csv"))
    (tmp_path / "bad.csv").write_text("name,phone\nAnna Lindqvist,+447700900123\n")
    with pytest.raises(DirectoryError, match="id column") as err:
        open_directory(str(tmp_path / "bad.csv"))
    assert "Anna" not in str(err.value)
    (tmp_path / "tickets.csv").write_text("id,name,open_tickets\nX1,Anna Lindqvist,lots\n")
    with pytest.raises(DirectoryError, match="record 2: open_tickets") as err:
        open_directory(str(tmp_path / "tickets.csv"))
    assert "Anna" not in str(err.value)
    (tmp_path / "bin.csv").write_bytes(b"\xff\xfe\x00\x00garbage\x00")
    with pytest.raises(DirectoryError):
        open_directory(str(tmp_path / "bin.csv"))
    (tmp_path / "bad.db").write_bytes(b"this is not sqlite at all" * 100)
    with pytest.raises(DirectoryError, match="SQLite"):
        open_directory(str(tmp_path / "bad.db"))


# ---- the HTTP connector against a real local server -----------------------------------------------------
class Crm:
    """A CRM on loopback answering from the sample CSV, with a switch to hang (for the timeout)."""

    def __init__(self) -> None:
        source = CsvDirectory(SAMPLE)
        self.requests: list[tuple[str, str]] = []
        self.hang = threading.Event()
        self.release = threading.Event()
        crm = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                url = urllib.parse.urlsplit(self.path)
                q = dict(urllib.parse.parse_qsl(url.query))
                crm.requests.append((url.path, self.headers.get("Authorization", "")))
                if crm.hang.is_set():
                    crm.release.wait(10)
                    return
                if url.path == "/api/customers":
                    found = source.lookup_by_phone(q.get("phone", ""))
                elif url.path == "/api/customers/verify":
                    found = source.verify(q.get("account", ""), q.get("postcode", ""))
                elif url.path == "/api/customers/broken":
                    self.send_response(200)
                    self.end_headers()
                    self.wfile.write(b"<html>oops</html>")
                    return
                elif url.path.startswith("/api/customers/"):
                    found = source.lookup_by_id(urllib.parse.unquote(url.path.rsplit("/", 1)[1]))
                else:
                    self.send_error(500)
                    return
                if found is None:
                    self.send_error(404)
                    return
                body = json.dumps({"id": found.id, "name": found.name, "phone": list(found.phones),
                                   "account": found.account, "postcode": found.postcode, "plan": found.plan,
                                   "open_tickets": found.open_tickets, "consent_recording": found.consent_recording,
                                   "consent_marketing": found.consent_marketing}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/api"

    def close(self) -> None:
        self.release.set()
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def crm() -> Iterator[Crm]:
    server = Crm()
    yield server
    server.close()


def test_http_directory_against_a_real_server(crm: Crm) -> None:
    directory = open_directory(crm.url, timeout_s=2, api_key="tok")
    assert isinstance(directory, HttpDirectory)
    _check_directory(directory)
    assert all(auth == "Bearer tok" for _, auth in crm.requests)
    assert ("/api/customers", "Bearer tok") in crm.requests and ("/api/customers/C-1003", "Bearer tok") in crm.requests


def test_http_directory_failures_are_clear(crm: Crm) -> None:
    with pytest.raises(DirectoryError, match="not a customer record"):
        HttpDirectory(crm.url).lookup_by_id("broken")
    with pytest.raises(DirectoryError, match="answered 500"):
        HttpDirectory(crm.url.rsplit("/", 1)[0]).verify("1", "2")  # a path the CRM does not know: 500
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{s.getsockname()[1]}"
    with pytest.raises(DirectoryError, match="unreachable"):
        HttpDirectory(dead).lookup_by_id("C-1001")
    crm.hang.set()
    started = time.monotonic()
    with pytest.raises(DirectoryError, match="timed out"):
        HttpDirectory(crm.url, timeout_s=0.3).lookup_by_id("C-1001")
    assert time.monotonic() - started < 3


# ---- the wiring: identify, context from the store, fallbacks, no personal data in logs -------------------
def _sip_call(frm: str, pai: str = "", peer: str = "127.0.0.1") -> Any:
    return SimpleNamespace(remote_party=frm, asserted_identity=pai, peer=(peer, 5060))


async def test_callers_identify_and_tell_the_history(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    store = CallStore(f"sqlite:///{tmp_path / 'calls.db'}")
    now = time.time()
    store.add_call("phone", "sip:+447700900123@x", started_at=now - 86400, duration=30, outcome="transferred",
                   meta={"customer_id": "C-1001", "topics": ["Outages"]})
    store.add_call("phone", "sip:+447700900456@x", started_at=now - 3600, duration=30, outcome="contained",
                   meta={"customer_id": "C-1002", "topics": ["Billing"]})
    settings = CustomersConfig(directory=str(SAMPLE), reference_secret="k")
    callers = Callers(settings, store, trunks=[Trunk(allow_ips=["127.0.0.1"], trust_identity=True)])
    link = await callers.for_sip(_sip_call("sip:sipp@127.0.0.1", "<tel:+44 7700 900123>"))
    assert link.customer_id == "C-1001" and link.how == "phone" and link.context is not None
    assert link.context.last_calls == ["yesterday about outages and was put through to a colleague"]
    assert link.meta() == {"customer_id": "C-1001", "identified_by": "phone"}
    card = link.card()
    assert card is not None and card["name"] == "Anna Lindqvist" and card["last_calls"]
    # signed reference; a badly signed one is ignored and logged without its value
    link = await callers.for_reference(sign_reference("k", "C-1003"))
    assert link.customer_id == "C-1003" and not link.may_record
    assert link.meta()["recording_refused"] is True
    link = await callers.for_reference("C-1001.deadbeef")
    assert link.customer_id == "" and link.card() is None and link.meta() == {}
    assert any("customer_reference_rejected" in r.getMessage() for r in caplog.records)
    logged = " ".join(r.getMessage() + json.dumps(getattr(r, "fields", {}), default=str) for r in caplog.records)
    for personal in ("C-1001", "C-1003", "Anna", "Lindqvist", "7700", "deadbeef", "SW1A", "Fiber"):
        assert personal not in logged, personal
    assert hashed("C-1001") in logged
    store.close()


async def test_a_missing_directory_or_dead_crm_leaves_the_call_anonymous(tmp_path: Path,
                                                                         caplog: pytest.LogCaptureFixture) -> None:
    callers = Callers(CustomersConfig(directory=str(tmp_path / "missing.csv")))
    link = await callers.for_sip(_sip_call("sip:+447700900123@x"))
    assert link.customer_id == "" and link.context is None
    assert any("customer_directory_unavailable" in r.getMessage() for r in caplog.records)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{s.getsockname()[1]}"
    callers = Callers(CustomersConfig(directory=dead, timeout_s=0.5))
    link = await callers.for_sip(_sip_call("sip:+447700900123@x"))
    assert link.customer_id == ""
    assert any("customer_lookup_failed" in r.getMessage() for r in caplog.records)


async def test_verification_through_the_dialog_links_the_call() -> None:
    calls: list[Any] = []

    class FakeDialog:
        def set_caller(self, context: Any, verifier: Any, policy: str) -> None:
            calls.append((context, verifier, policy))

        def topics(self) -> list[str]:
            return ["Outages"]

    callers = Callers(CustomersConfig(directory=str(SAMPLE)))
    link = await callers.for_sip(_sip_call("sip:unknown@x"))
    link.attach(SimpleNamespace(brain=SimpleNamespace(call=FakeDialog())))  # found inside the wrappers
    (context, verifier, policy), = calls
    assert context is None and policy == "account"
    assert await verifier("10012345", "SW1A1AA") is not None
    assert link.meta() == {"customer_id": "C-1001", "identified_by": "verified", "topics": ["Outages"]}
    assert await verifier("10012345", "EH11YZ") is None


@pytest.mark.parametrize("sealed", [False, True])
def test_customer_calls_on_the_store(store_url: str, sealed: bool) -> None:
    """SQLite and PostgreSQL; with a key the customer id is sealed in the details and found by its keyed ref."""
    from tests.voice_agent.test_store_protection import cipher

    store = CallStore(store_url, cipher=cipher() if sealed else None)
    for i in range(4):
        store.add_call("phone", "x", started_at=1000.0 + i, outcome="contained", meta={"customer_id": "C-1"})
    store.start_call("live", "phone", "x", worker="w", meta={"customer_id": "C-1"})
    store.add_call("phone", "x", started_at=2000.0, outcome="contained", meta={"customer_id": "C-2"})
    got = store.customer_calls("C-1", 3)
    assert [c.started_at for c in got] == [1003.0, 1002.0, 1001.0]
    assert store.customer_calls("C-3") == []
    store.close()


def test_config_checks() -> None:
    from voice_agent.config import ConfigError, load_config

    config = load_config(env={}, overrides={"customers": {"directory": str(SAMPLE), "verify": "off"}})
    assert config.customers.directory == str(SAMPLE) and config.customers.verify == "off"
    with pytest.raises(ConfigError, match=r"customers\.verify"):
        load_config(env={}, overrides={"customers": {"verify": "sometimes"}})


def test_cli_signs_checks_and_looks_up(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                       capsys: pytest.CaptureFixture[str]) -> None:
    from voice_agent.cli import main

    monkeypatch.setenv("VOICE_AGENT_HOME", str(tmp_path))
    where = ["--set", f"customers.directory={SAMPLE}"]
    assert main(["--set", "customers.reference_secret=k", "customers", "sign", "C-1001"]) == 0
    assert check_reference("k", capsys.readouterr().out.strip()) == "C-1001"
    assert main([*where, "customers", "check"]) == 0
    assert json.loads(capsys.readouterr().out) == {"directory": "CsvDirectory", "customers": 4}
    assert main([*where, "customers", "lookup", "--phone", "07700 900123"]) == 0
    assert json.loads(capsys.readouterr().out)["name"] == "Anna Lindqvist"
    assert main([*where, "customers", "lookup", "--id", "C-0"]) == 1
    assert main(["--set", f"customers.directory={tmp_path / 'gone.csv'}", "customers", "check"]) == 2
    assert "gone.csv: No such file" in capsys.readouterr().err
    assert main(["customers", "sign", "C-1001"]) == 2
    assert "reference_secret is not set" in capsys.readouterr().err


async def test_keypad_verification_through_a_session() -> None:
    """Keys typed quickly through a real CallSession reach the dialog's verification one by one: the silent
    replies to digits do not disturb the call, and the hash ends each answer."""
    from dialog.caller import CallerContext, CallerDesk
    from tests.voice_agent.fakes import FakeBrain, FakeReply
    from tests.voice_agent.test_session_api import make
    from voice_agent.ports import TurnInput, TurnOutcome
    from voice_agent.session import CallSession

    async def verify(account: str, postcode: str) -> CallerContext | None:
        return CallerContext("C-1001", first_name="Anna", plan="Fiber 500") if (account, postcode) == (
            "10012345", "10001") else None

    class DeskBrain(FakeBrain):
        """The dialog's caller desk behind the session's Brain port (as dialog.Call._caller_reply does)."""

        def __init__(self) -> None:
            super().__init__(token_delay=0.0)
            self.desk = CallerDesk(verify)
            self.desk.state = "account"  # the caller asked about their account

        async def respond(self, turn: TurnInput) -> FakeReply:
            self.turns.append(turn)
            said = await self.desk.handle(turn.text, turn.dtmf)
            return FakeReply(" ".join(said), TurnOutcome(), 0.0)

    brain = DeskBrain()
    line = make(brain)
    keys = iter("10012345#10001#")

    async def script(s: CallSession, tick: int) -> None:
        if tick >= 30 and tick % 3 == 0:  # a key every 60 ms, while the agent may still be talking
            key = next(keys, None)
            if key is not None:
                s.press(key)

    line.ticks, line.script = 300, script
    result = await line.run()
    assert brain.desk.context is not None and brain.desk.context.customer_id == "C-1001"
    agent = " ".join(t["text"] for t in result.transcript if t["speaker"] == "agent")
    # the postcode question was cut short by the first key of the postcode (a key interrupts the agent)
    assert "Thank you, Anna. You're on the Fiber 500 plan." in agent and result.outcome != "error"
    assert len(brain.turns) == 15
