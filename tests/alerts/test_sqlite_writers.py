"""SQLite writers queue first come, first served inside a process (bot.store.db.WriterQueue).

These are about SQLite's own locking, so they use SQLite files only; PostgreSQL serialises
intake transactions with row locks instead (see test_webhooks and test_writer).
"""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
from sqlalchemy import func, select, text

from bot.clock import utcnow
from bot.store.db import WriterQueue, make_engine, transaction, upgrade
from bot.store.models import Incident
from tests.support import wait_for


def test_the_lock_goes_to_waiters_in_the_order_they_came():
    queue = WriterQueue()
    assert queue.acquire(1)
    order: list[int] = []
    threads = []

    def writer(n: int) -> None:
        assert queue.acquire(10)
        order.append(n)
        queue.release()

    for n in range(6):
        thread = threading.Thread(target=writer, args=(n,))
        thread.start()
        threads.append(thread)
        wait_for(lambda n=n: queue.waiting == n + 1, what=f"writer {n} queued")
    queue.release()
    for thread in threads:
        thread.join(10)
    assert order == list(range(6))


def test_a_waiter_that_gives_up_leaves_the_queue():
    queue = WriterQueue()
    assert queue.acquire(1)
    assert queue.acquire(0.01) is False
    assert queue.waiting == 0
    queue.release()
    assert queue.acquire(0)  # free again: the release was not handed to the waiter that left


@pytest.fixture
def engine(tmp_path: Path):
    engine = make_engine(f"sqlite:///{tmp_path / 'writers.db'}")
    upgrade(engine)
    yield engine
    engine.dispose()


def _in_thread(target) -> None:
    thread = threading.Thread(target=target)
    thread.start()
    thread.join(20)
    assert not thread.is_alive(), "the writer lock was not given back"


def test_a_failed_transaction_gives_the_writer_lock_back(engine):
    with pytest.raises(RuntimeError), transaction(engine) as session:
        session.add(Incident(title="rolled back", opened_at=utcnow()))
        session.flush()
        raise RuntimeError("boom")

    def write() -> None:
        with transaction(engine) as session:
            session.add(Incident(title="kept", opened_at=utcnow()))

    _in_thread(write)
    with engine.connect() as conn:
        assert conn.execute(select(Incident.title)).scalars().all() == ["kept"]


def test_a_connection_returned_without_commit_gives_the_writer_lock_back(engine):
    with engine.connect() as conn:
        conn.execute(text("SELECT 1"))  # begins (and takes the lock); closing rolls back

    def count() -> None:
        with engine.connect() as conn:
            conn.execute(select(func.count()).select_from(Incident)).scalar_one()
            conn.commit()

    _in_thread(count)


def test_many_threads_write_through_one_engine(engine):
    def write(n: int) -> None:
        for i in range(10):
            with transaction(engine) as session:
                session.add(Incident(title=f"t{n}-{i}", opened_at=utcnow()))

    threads = [threading.Thread(target=write, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    with engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(Incident)).scalar_one() == 80
