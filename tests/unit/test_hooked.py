"""The hooked wrappers of driver attributes reached by delegation."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from bluegreen._hooked import HookedContext, hooked
from bluegreen.drivers._surface import Kind


class Refuse(Exception):
    pass


def recorder(
    log: list[str], refuse: set[str] | None = None
) -> Callable[[Any, str, Callable[[], Any]], Any]:
    def hook(conn: Any, name: str, call: Callable[[], Any]) -> Any:
        log.append(name)
        if refuse and name in refuse:
            raise Refuse(name)
        return call()

    return hook


class CM:
    def __init__(self, log: list[str]) -> None:
        self.log = log

    def __enter__(self) -> str:
        self.log.append("BEGIN")
        return "tx"

    def __exit__(self, t: Any, v: Any, tb: Any) -> bool:
        self.log.append("ROLLBACK" if t else "COMMIT")
        return t is not None and issubclass(t, KeyError)  # swallows KeyError


def test_call_goes_through_the_hook_with_its_arguments() -> None:
    log: list[str] = []
    fn = hooked(None, recorder(log), "ping", Kind.CALL, lambda *a, **k: (a, k))  # type: ignore[arg-type]
    assert fn(1, x=2) == ((1,), {"x": 2})
    assert fn() == ((), {})
    assert log == ["ping", "ping"]


def test_transaction_enter_and_leave_are_hooked() -> None:
    log: list[str] = []
    factory = hooked(
        None, recorder(log), "transaction", Kind.TRANSACTION, lambda: CM(log)
    )  # type: ignore[arg-type]
    with factory() as tx:
        assert tx == "tx"
    assert log == ["transaction", "BEGIN", "commit", "COMMIT"]
    log.clear()
    with factory():
        raise KeyError("swallowed by the driver's context manager")
    assert log == ["transaction", "BEGIN", "rollback", "ROLLBACK"]


def test_a_refused_commit_rolls_back_and_raises() -> None:
    log: list[str] = []
    factory = hooked(
        None,
        recorder(log, {"commit"}),
        "transaction",
        Kind.TRANSACTION,
        lambda: CM(log),  # type: ignore[arg-type]
    )
    with pytest.raises(Refuse), factory():
        pass
    assert log == ["transaction", "BEGIN", "commit", "ROLLBACK"]


def test_a_failed_commit_is_the_drivers_error_unchanged() -> None:
    log: list[str] = []

    class Failing(CM):
        def __exit__(self, t: Any, v: Any, tb: Any) -> bool:
            if t is None:
                raise ValueError("commit failed on the server")
            return super().__exit__(t, v, tb)

    factory = hooked(
        None, recorder(log), "transaction", Kind.TRANSACTION, lambda: Failing(log)
    )  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="commit failed"), factory():
        pass


def test_context_hooks_only_entering() -> None:
    log: list[str] = []
    factory = hooked(None, recorder(log), "copy", Kind.CONTEXT, lambda: CM(log))  # type: ignore[arg-type]
    ctx = factory()
    assert isinstance(ctx, HookedContext)
    with ctx:
        pass
    assert log == ["copy", "BEGIN", "COMMIT"]


def test_iter_is_lazy_and_hooks_only_the_first_step() -> None:
    log: list[str] = []
    closed: list[bool] = []

    def stream() -> Iterator[int]:
        log.append("query sent")
        try:
            yield from range(3)
        finally:
            closed.append(True)

    it = hooked(None, recorder(log), "stream", Kind.ITER, stream)()  # type: ignore[arg-type]
    assert log == []  # nothing sent before the first next()
    assert next(it) == 0
    assert log == ["stream", "query sent"]
    assert next(it) == 1
    it.close()  # closing early closes the driver's generator
    assert closed == [True]
    assert (
        list(hooked(None, recorder(log), "stream", Kind.ITER, lambda: iter(()))()) == []
    )  # type: ignore[arg-type]
