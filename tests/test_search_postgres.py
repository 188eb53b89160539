"""Search workers on several machines sharing one study in a real PostgreSQL server (``search --storage URL``):
each trial runs once, a killed worker's trial is failed by its heartbeat and runs again, a worker paused past the
grace period drops its trial's result, and a database that cannot be used, or is lost mid-search, is one error
line. Each worker has a search folder of its own, as on machines of their own.

The server is started here (tests.helpers.postgres); where it cannot be, the tests that need it are skipped, or
fail when CI=true, so that CI cannot skip them unseen."""

from __future__ import annotations

import csv
import os
import signal
import sys
import time
from collections.abc import Iterator
from itertools import count
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState

from tests.helpers.faults import run_in_child, start_in_child
from tests.helpers.postgres import PostgresServer, free_port, why_unavailable
from tests.test_search import RANDOM_SPACE, SEARCH_QUICK, write_space

HEARTBEAT = 1  # seconds: a killed worker's trial is failed 2 s after its last heartbeat
TINY = [*SEARCH_QUICK, "--trainer.limit_train_batches", "4", "--trainer.limit_val_batches", "2"]
FINISHED = (TrialState.COMPLETE, TrialState.PRUNED)
databases = count()


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresServer]:
    """A PostgreSQL server for the whole session, stopped (and its folder deleted) at the end."""
    reason = why_unavailable()
    if reason is not None:
        if os.environ.get("CI") == "true":
            pytest.fail(f"{reason} (CI=true: the PostgreSQL tests must run there, not be skipped)")
        pytest.skip(reason)
    server = PostgresServer()
    try:
        server.start()
        yield server
    finally:
        server.stop()


@pytest.fixture
def storage(postgres: PostgresServer) -> str:
    """A fresh database of the server for one test: the URL the workers are given."""
    name = f"search_test_{next(databases)}"
    postgres.create_database(name)
    return postgres.url(name)


def load(storage: str, name: str = "search_space") -> optuna.Study:
    """The study as the test reads it: psycopg2 named, since SQLAlchemy 2.1's default PostgreSQL driver is psycopg."""
    return optuna.load_study(study_name=name, storage=storage.replace("postgresql://", "postgresql+psycopg2://"))


def search_args(space: Path, storage: str, machine: Path, mnist_dir: Path) -> list[str]:
    """A worker's command line: the shared study, a search folder of its own."""
    return ["search", "--space", str(space), "--storage", storage, "--heartbeat", str(HEARTBEAT),
            "--data.data_dir", str(mnist_dir), "--trainer.default_root_dir", str(machine), *TINY]  # fmt: skip


def test_three_workers_on_three_machines_run_each_trial_of_one_study_once(storage, mnist_dir, tmp_path):
    space = write_space(tmp_path, {**RANDOM_SPACE, "trials": 6})
    machines = [tmp_path / f"machine{i}" for i in range(3)]
    workers = [start_in_child(*search_args(space, storage, machine, mnist_dir)) for machine in machines]
    outputs = [worker.communicate(timeout=300) for worker in workers]
    for worker, (_, err) in zip(workers, outputs, strict=True):
        assert worker.returncode == 0, err
        assert "Traceback" not in err and "search: study search_space in " in err
    trials = load(storage).trials
    assert [t.number for t in trials] == list(range(6))
    assert all(t.state in FINISHED for t in trials), [t.state for t in trials]  # none failed: all workers lived
    assert len({tuple(sorted(t.params.items())) for t in trials}) == 6  # different values drawn for each
    assert len({t.user_attrs["worker"] for t in trials}) == 3  # every worker ran trials
    assert len({t.user_attrs["run_dir"] for t in trials}) == 6  # each in a run folder of its own
    for machine in machines:  # each machine's summary lists the whole study
        rows = list(csv.DictReader((machine / "lightning_logs" / "search_space" / "search.csv").open()))
        assert sorted(int(r["trial"]) for r in rows) == list(range(6))
    print(
        f"3 workers: {len(trials)} trials, {sum(t.state in FINISHED for t in trials)} finished",
        [t.user_attrs["worker"] for t in trials],
    )


def test_a_killed_workers_trial_is_failed_by_its_heartbeat_and_runs_again(storage, mnist_dir, tmp_path):
    space = write_space(tmp_path, {**RANDOM_SPACE, "trials": 3})
    killer = ["--trainer.callbacks+=tests.helpers.faults.SignalInRun", "--trainer.callbacks.version", "1"]
    first = run_in_child(*search_args(space, storage, tmp_path / "machine0", mnist_dir), *killer)
    assert first.returncode == -9, first.stderr  # SIGKILL at the first batch of its second trial
    assert [t.state for t in load(storage).trials] == [TrialState.COMPLETE, TrialState.RUNNING]
    time.sleep(2 * HEARTBEAT + 0.5)  # Optuna's grace period: twice the heartbeat interval

    second = run_in_child(*search_args(space, storage, tmp_path / "machine1", mnist_dir))
    assert second.returncode == 0, second.stderr
    assert "search: trial 1 (worker " in second.stderr and "sent no heartbeat" in second.stderr
    assert "1 of 3 trials done" in second.stderr
    trials = load(storage).trials
    states = [t.state for t in trials]
    assert states == [TrialState.COMPLETE, TrialState.FAIL, TrialState.COMPLETE, TrialState.COMPLETE], states
    assert trials[2].params == trials[1].params and trials[2].user_attrs["retry_of"] == 1  # the killed trial again
    assert sum(state in FINISHED for state in states) == 3
    print(f"killed worker: {len(trials)} trials, {sum(s in FINISHED for s in states)} finished, 1 failed")


def stopped(pid: int) -> bool:
    """Whether process ``pid`` is stopped (SIGSTOP): state T in /proc."""
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] in ("T", "t")


def test_a_worker_silent_past_the_grace_period_loses_its_trial_and_goes_on(storage, mnist_dir, tmp_path):
    """A suspended worker (a laptop closed, a job paused) looks dead: its trial runs again elsewhere, and once it
    wakes up it drops that trial's result instead of counting it twice."""
    space = write_space(tmp_path, {**RANDOM_SPACE, "trials": 2})
    pause = ["--trainer.callbacks+=tests.helpers.faults.SignalAt", "--trainer.callbacks.epoch", "0",
             "--trainer.callbacks.batch", "1", "--trainer.callbacks.signal_name", "SIGSTOP"]  # fmt: skip
    sleeper = start_in_child(*search_args(space, storage, tmp_path / "machine0", mnist_dir), *pause)
    try:
        deadline = time.monotonic() + 120
        while not stopped(sleeper.pid) and sleeper.poll() is None and time.monotonic() < deadline:
            time.sleep(0.2)
        assert stopped(sleeper.pid), sleeper.communicate()[1] if sleeper.poll() is not None else "never paused"
        time.sleep(2 * HEARTBEAT + 0.5)
        other = run_in_child(*search_args(space, storage, tmp_path / "machine1", mnist_dir))
        assert other.returncode == 0, other.stderr
        assert "search: trial 0 (worker " in other.stderr
    finally:
        sleeper.send_signal(signal.SIGCONT)
    _, err = sleeper.communicate(timeout=120)
    assert sleeper.returncode == 0, err
    assert "search: trial 0 was failed by another worker: its heartbeat was missing" in err
    states = [t.state for t in load(storage).trials]
    assert states == [TrialState.FAIL, TrialState.COMPLETE, TrialState.COMPLETE], states


def test_a_database_lost_during_the_search_is_one_line(postgres, mnist_dir, tmp_path):
    server = PostgresServer()  # one of its own, to stop under the worker
    try:
        server.start()
        server.create_database("lost")
        space = write_space(tmp_path, {**RANDOM_SPACE, "trials": 50})
        worker = start_in_child(*search_args(space, server.url("lost"), tmp_path / "machine0", mnist_dir))
        second_run = tmp_path / "machine0" / "lightning_logs" / "version_1"
        deadline = time.monotonic() + 120
        while worker.poll() is None and not second_run.exists() and time.monotonic() < deadline:
            time.sleep(0.2)  # until the second trial starts: the search is under way
        server.run("pg_ctl", "stop", "-D", str(server.data), "-m", "immediate", "-w")
        _, err = worker.communicate(timeout=120)
    finally:
        server.stop()
    assert worker.returncode == 1 and "Traceback" not in err, err
    # the driver's reason depends on the moment the server went: "connection to server at ...", "server closed ..."
    assert err.strip().splitlines()[-1].startswith(f"error: --storage {server.url('lost')}: a database operation"
                                                   " failed (")  # fmt: skip
    assert err.strip().endswith("the study's finished trials are kept in it: run the command again once the database"
                                " works")  # fmt: skip


def test_a_worker_of_another_space_under_the_same_name_is_refused(storage, run_cli, mnist_dir, tmp_path):
    other = optuna.create_study(study_name="search_space", storage=storage.replace("postgresql", "postgresql+psycopg2"))
    other.set_user_attr("search", {"space": {"data.batch_size": {"type": "categorical", "choices": [8]}}})
    code, err = run_cli("search", "--space", write_space(tmp_path, RANDOM_SPACE), "--storage", storage,
                        "--data.data_dir", mnist_dir, "--trainer.default_root_dir", tmp_path, *TINY)  # fmt: skip
    assert code == 2
    assert err.strip().splitlines()[-1].endswith("holds a search of another space (its user attribute 'search'"
                                                 " records it); give --name NEW for a new study")  # fmt: skip
    assert load(storage).trials == []  # none of its trials mixed in


def no_driver(monkeypatch: pytest.MonkeyPatch) -> None:
    """Neither PostgreSQL driver importable, as where psycopg2-binary was not installed."""
    for module in [name for name in sys.modules if name.split(".")[0] in ("psycopg2", "psycopg")]:
        monkeypatch.delitem(sys.modules, module)
    monkeypatch.setitem(sys.modules, "psycopg2", None)
    monkeypatch.setitem(sys.modules, "psycopg", None)


BAD_STORAGES = [
    ("not a url", ["--storage", "db.example.org"], "--storage 'db.example.org' is not a database URL; give one like"),
    ("no server", ["--storage", "postgresql://postgres@127.0.0.1:{port}/db"], "cannot open the database (connection"),
    (
        "no driver",
        ["--storage", "postgresql://u@127.0.0.1:{port}/db"],
        "psycopg2 is not installed: pip install psycopg2-binary",
    ),
    ("unknown kind", ["--storage", "postgres://h/db"], "unknown kind of database 'postgres'; write postgresql://"),
    ("heartbeat 0", ["--storage", "sqlite:///study.db", "--heartbeat", "0"], "--heartbeat must be at least 1"),
    ("heartbeat alone", ["--heartbeat", "5"], "--heartbeat applies to a study in a --storage database"),
]


@pytest.mark.parametrize("case, args, message", BAD_STORAGES, ids=[case for case, _, _ in BAD_STORAGES])
def test_a_database_that_cannot_be_used_is_one_line_naming_storage(
    run_cli, mnist_dir, tmp_path, monkeypatch, case, args, message
):
    if case == "no driver":
        no_driver(monkeypatch)
    monkeypatch.chdir(tmp_path)
    args = [arg.format(port=free_port()) for arg in args]
    code, err = run_cli("search", "--space", write_space(tmp_path, RANDOM_SPACE), *args,
                        "--data.data_dir", mnist_dir, "--trainer.default_root_dir", tmp_path, *TINY)  # fmt: skip
    assert code != 0
    lines = [line for line in err.strip().splitlines() if not line.startswith("💡")]
    assert len(lines) == 1 and lines[0].startswith("error: --"), err
    assert message in lines[0] and "Traceback" not in err
    assert not (tmp_path / "lightning_logs").exists()  # refused before the search folder was made
