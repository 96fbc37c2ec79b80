"""Invariant 5: the audit chain, its verification, and the commands that bootstrap and check."""

from __future__ import annotations

from sqlalchemy import select, update
from typer.testing import CliRunner

from openlfr.cli import app
from openlfr.governance import audit
from openlfr.store import open_store
from openlfr.store.models import AuditEntry, User


def _chain(database_url: str, n: int = 4):  # type: ignore[no-untyped-def]
    store = open_store(database_url)
    with store() as session:
        for i in range(n):
            audit.append(
                session, actor="rev", action="view", obj=f"alert:{i}", purpose="adjudication"
            )
        session.commit()
    return store


def test_chain_verifies_and_each_kind_of_tampering_is_caught(database_url: str) -> None:
    store = _chain(database_url)
    with store() as session:
        assert audit.verify_chain(session).ok
        assert audit.verify_chain(session).entries == 4
        session.execute(update(AuditEntry).where(AuditEntry.id == 2).values(purpose="curiosity"))
        result = audit.verify_chain(session)
        assert not result.ok and result.first_bad_id == 2 and "content" in result.problem
        session.rollback()
        session.execute(AuditEntry.__table__.delete().where(AuditEntry.id == 3))
        result = audit.verify_chain(session)
        assert not result.ok and result.first_bad_id == 4 and "follow" in result.problem


def test_user_add_from_stdin_and_audit_verify_command(database_url: str) -> None:
    runner = CliRunner()
    added = runner.invoke(
        app,
        ["user", "add", "chief", "--role", "admin", "--password-stdin"],
        input="a long enough password\n",
    )
    assert added.exit_code == 0, added.output
    refused = runner.invoke(
        app, ["user", "add", "x", "--role", "emperor", "--password-stdin"], input="p" * 12 + "\n"
    )
    assert refused.exit_code == 2 and "unknown role" in refused.output
    store = open_store(database_url)
    with store() as session:
        user = session.scalar(select(User).where(User.name == "chief"))
        assert user.role == "admin" and user.password_hash.startswith("$argon2")
    ok = runner.invoke(app, ["audit", "verify"])
    assert ok.exit_code == 0 and "1 entries" in ok.output
    with store() as session:
        session.execute(update(AuditEntry).values(actor="nobody"))
        session.commit()
    broken = runner.invoke(app, ["audit", "verify"])
    assert broken.exit_code == 1 and "broken" in broken.output


def test_concurrent_appends_keep_one_unbroken_chain(database_url: str) -> None:
    import threading

    store = open_store(database_url)
    errors: list[BaseException] = []

    def work(worker: int) -> None:
        try:
            for i in range(5):
                with store() as session:
                    audit.append(
                        session,
                        actor=f"w{worker}",
                        action="view",
                        obj=f"alert:{i}",
                        purpose="adjudication",
                    )
                    session.commit()
        except BaseException as exc:  # reported below, not lost in the thread
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    with store() as session:
        result = audit.verify_chain(session)
    assert result.ok and result.entries == 30
