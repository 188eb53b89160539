"""Where a search's Optuna study lives and how its workers take turns: ``study.db`` in the search folder for the
workers of one machine, or a ``--storage`` database (PostgreSQL, MySQL, SQLite) that workers on several machines
share, with a lock the database server holds and the trials' heartbeat to tell a dead worker.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import sys
import threading
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import optuna
import sqlalchemy
from sqlalchemy.engine import URL, Engine, make_url
from sqlalchemy.pool import NullPool

try:
    import fcntl
except ImportError:  # Windows: no advisory locks; one search process per folder there
    fcntl = None  # type: ignore[assignment]

from lightning_cnn.errors import ConfigError, LightningCnnError, exception_chain, installed


class DatabaseError(LightningCnnError):
    """A --storage database that cannot be opened or fails during the search: the machine's problem (a server that
    is down, a missing driver), not the command's, unless the URL names no kind of database at all."""


# default --heartbeat: seconds between a running trial's heartbeats in a --storage database; a trial is failed
# (its worker died) once 2 × this has passed since its last one
HEARTBEAT_S = 60
CONNECT_TIMEOUT_S = 10  # seconds a worker tries to reach a --storage server before it says it cannot
POSTGRES_DRIVERS = ("psycopg2", "psycopg")  # for a postgresql:// URL, the first of them that is installed
# the pip package of each database driver a --storage URL may name
DRIVER_PACKAGES = {
    "psycopg2": "psycopg2-binary",
    "psycopg": "'psycopg[binary]'",
    "pg8000": "pg8000",
    "mysqldb": "mysqlclient",
    "pymysql": "PyMySQL",
    "mysqlconnector": "mysql-connector-python",
}
# seconds a worker waits for SQLite's write lock while another worker writes to the study
SQLITE_TIMEOUT_S = 120
STUDY_NAME = "search"  # the Optuna study in a search folder's study.db, which every worker of that search shares


@dataclass
class StudyStorage:
    """Where a search's study lives. By default ``study.db`` in the search folder, shared by the workers of one
    machine, which tell a dead worker by its lock file; with ``--storage`` a database that workers on several
    machines share, which tell a dead worker by its trials' heartbeat."""

    url: str
    study_name: str
    shown: str  # the URL for messages, its password hidden
    heartbeat: int | None = None  # seconds between heartbeats; None for the search folder's own study.db
    engine: Engine | None = None  # the --storage database, for the claim lock

    @property
    def shared(self) -> bool:
        return self.heartbeat is not None


def study_storage(args: argparse.Namespace, folder: Path) -> StudyStorage:
    """The study's storage for ``--storage`` and ``--heartbeat``. A database is connected to once here, so a bad URL,
    a missing driver or a server out of reach is one line before anything is written."""
    if args.storage is None:
        if args.heartbeat is not None:
            raise ConfigError("--heartbeat applies to a study in a --storage database; give --storage URL too")
        return StudyStorage(f"sqlite:///{(folder / 'study.db').absolute()}", STUDY_NAME, str(folder / "study.db"))
    heartbeat = HEARTBEAT_S if args.heartbeat is None else args.heartbeat
    if heartbeat < 1:
        raise ConfigError(f"--heartbeat must be at least 1 (seconds), got {heartbeat}")
    try:
        given = make_url(args.storage)
    except (sqlalchemy.exc.ArgumentError, ValueError):
        raise ConfigError(
            f"--storage {args.storage!r} is not a database URL; give one like postgresql://USER@HOST:PORT/DATABASE"
            " or sqlite:///PATH"
        ) from None
    url = with_installed_driver(given)
    text = args.storage if url is given else url.render_as_string(hide_password=False)
    shown = given.render_as_string(hide_password=True) if given.password else args.storage
    storage = StudyStorage(text, folder.name, shown, heartbeat)
    try:
        storage.engine = sqlalchemy.create_engine(url, poolclass=NullPool, **connect_kwargs(url))
        storage.engine.connect().close()
    except (ImportError, sqlalchemy.exc.SQLAlchemyError) as err:
        raise storage_error(storage, url, err) from None
    return storage


def with_installed_driver(url: URL) -> URL:
    """``url`` with a PostgreSQL driver that is installed when it names none (``postgresql://``): SQLAlchemy's own
    default is psycopg2 up to version 2.0 and psycopg from 2.1, while the search extra installs psycopg2."""
    if url.drivername != "postgresql":
        return url
    driver = next((name for name in POSTGRES_DRIVERS if installed(name)), POSTGRES_DRIVERS[0])
    return url.set(drivername=f"postgresql+{driver}")  # none installed: the error names the extra's driver


def connect_kwargs(url: URL) -> dict[str, Any]:
    """Engine options for a --storage database: SQLite waits for the write lock as a search folder's study.db does;
    a server that does not answer is given up on after CONNECT_TIMEOUT_S (unless the URL says otherwise)."""
    if url.get_backend_name() == "sqlite":
        return {"connect_args": {"timeout": SQLITE_TIMEOUT_S}}
    if url.get_driver_name() in ("psycopg2", "psycopg", "mysqldb", "pymysql") and "connect_timeout" not in url.query:
        return {"connect_args": {"connect_timeout": CONNECT_TIMEOUT_S}}
    return {}


def storage_error(storage: StudyStorage, url: URL, err: BaseException) -> LightningCnnError:
    """One line for a --storage database that cannot be used: what failed and what to do."""
    where = f"--storage {storage.shown}"
    if isinstance(err, sqlalchemy.exc.NoSuchModuleError):
        hint = "postgresql://" if url.get_backend_name() == "postgres" else "postgresql://, mysql:// or sqlite:///"
        return ConfigError(f"{where}: unknown kind of database {url.drivername!r}; write {hint}")
    if isinstance(err, ImportError):
        driver = url.get_driver_name()
        package = DRIVER_PACKAGES.get(driver, driver)
        return DatabaseError(f"{where}: its database driver {driver} is not installed: pip install {package}")
    reason = database_reason(err) or type(err).__name__
    if url.get_backend_name() == "sqlite":
        advice = "check that the file's folder exists and is writable"
    else:
        advice = "check that the server runs and that the URL's host, port, user, password and database are right"
    return DatabaseError(f"{where}: cannot open the database ({reason}); {advice}")


@contextlib.contextmanager
def storage_errors(storage: StudyStorage) -> Iterator[None]:
    """A --storage database that fails while the search runs (the server stopped, the network went) is one line; the
    trials finished so far are kept in it. A heartbeat that fails says so in a line too, not in its thread's
    traceback (Optuna's heartbeat thread does not catch errors)."""
    if not storage.shared:
        yield
        return
    original = threading.excepthook

    def heartbeat_failed(args: threading.ExceptHookArgs) -> None:
        reason = database_reason(args.exc_value) if args.exc_value is not None else None
        if reason is None:
            original(args)
            return
        print(f"search: a heartbeat could not reach the database ({reason}); the trial runs on, and another worker"
              f" may run it again after {2 * (storage.heartbeat or 0)} s", file=sys.stderr, flush=True)  # fmt: skip

    threading.excepthook = heartbeat_failed
    try:
        yield
    except Exception as err:
        reason = database_reason(err)
        if reason is None:
            raise
        raise DatabaseError(
            f"--storage {storage.shown}: a database operation failed ({reason}); the study's finished trials are"
            " kept in it: run the command again once the database works"
        ) from None
    finally:
        threading.excepthook = original


def database_reason(err: BaseException) -> str | None:
    """The first line of the database error behind ``err``, if there is one: Optuna wraps SQLAlchemy's errors in
    StorageInternalError, and its trial loop may raise another error while it handles one."""
    kinds = (sqlalchemy.exc.SQLAlchemyError, optuna.exceptions.StorageInternalError)
    found = [e for e in exception_chain(err) if isinstance(e, kinds)]
    if not found:
        return None
    drivers = [e.orig for e in found if isinstance(e, sqlalchemy.exc.DBAPIError) and e.orig is not None]
    cause = drivers[0] if drivers else found[-1]  # the driver's own words, without SQLAlchemy's SQL and links
    return (str(cause).strip().splitlines() or [type(cause).__name__])[0]


def lock_statements(dialect: str, study_name: str) -> tuple[str, str, dict[str, Any]] | None:
    """SQL taking and releasing a lock named after the study that the database server holds for one connection
    (and drops when the connection ends), with its parameters; None for a database without such locks."""
    digest = hashlib.sha256(f"lightning_cnn search {study_name}".encode()).digest()
    if dialect == "postgresql":
        key = int.from_bytes(digest[:8], "big", signed=True)  # advisory locks take a 64-bit key
        return "SELECT pg_advisory_lock(:key)", "SELECT pg_advisory_unlock(:key)", {"key": key}
    if dialect in ("mysql", "mariadb"):
        name = f"lightning_cnn.{digest.hex()[:40]}"  # lock names are at most 64 characters
        return "SELECT GET_LOCK(:name, -1)", "SELECT RELEASE_LOCK(:name)", {"name": name}
    return None


@contextlib.contextmanager
def database_lock(storage: StudyStorage) -> Iterator[None]:
    """Hold the study's claim lock in the --storage database while the block runs: workers on every machine wait for
    it, and the server drops it when the worker holding it dies. SQLite's is a lock file beside the database."""
    if storage.engine is None:
        yield
        return
    if storage.engine.dialect.name == "sqlite":
        database = storage.engine.url.database
        lock = locked(Path(f"{database}.lock")) if database and database != ":memory:" else contextlib.nullcontext()
        with lock:
            yield
        return
    statements = lock_statements(storage.engine.dialect.name, storage.study_name)
    if statements is None:  # another server: only workers sharing a search folder are kept apart
        yield
        return
    take, release, params = statements
    # a connection of its own (NullPool: closed, not pooled, on exit), so the lock ends with it whatever happens
    with storage.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
        connection.execute(sqlalchemy.text(take), params)
        yield
        connection.execute(sqlalchemy.text(release), params)


def rdb_storage(storage: StudyStorage) -> optuna.storages.RDBStorage:
    """Optuna's storage of the study; in a --storage database every running trial sends its heartbeat."""
    if not storage.shared:
        return optuna.storages.RDBStorage(storage.url, engine_kwargs={"connect_args": {"timeout": SQLITE_TIMEOUT_S}})
    url = make_url(storage.url)
    # pool_pre_ping: a connection left idle through a long trial may have been closed by the server
    engine_kwargs = {**connect_kwargs(url), **({} if url.get_backend_name() == "sqlite" else {"pool_pre_ping": True})}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)  # heartbeat_interval is "experimental"
        try:
            return optuna.storages.RDBStorage(storage.url, engine_kwargs=engine_kwargs,
                                              heartbeat_interval=storage.heartbeat)  # fmt: skip
        except RuntimeError as err:  # tables of another Optuna version: the message says how to upgrade them
            raise DatabaseError(f"--storage {storage.shown}: {' '.join(str(err).split())}") from None


@contextlib.contextmanager
def locked(path: Path) -> Iterator[None]:
    """Hold an exclusive lock on the file ``path`` (waiting for it) while the block runs; the OS drops it when the
    process ends, however it ends."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as handle:
        if fcntl is not None:
            fcntl.flock(handle, fcntl.LOCK_EX)
        yield


@contextlib.contextmanager
def claim_lock(folder: Path, storage: StudyStorage) -> Iterator[None]:
    """Let one worker at a time create the study, look for cut-short trials and claim the next trial: the lock file
    of the search folder keeps apart the workers that share it, the database's lock those on other machines."""
    with locked(folder / "claim.lock"), database_lock(storage):
        yield
