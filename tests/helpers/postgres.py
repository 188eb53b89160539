"""A throwaway PostgreSQL server for tests: Debian's server binaries, run as the ``postgres`` user (initdb and
postgres refuse root), listening on 127.0.0.1 only on a free port, with its data in a temporary folder."""

from __future__ import annotations

import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path

from lightning_cnn.errors import installed

PG_BIN = Path(os.environ.get("LIGHTNING_CNN_PG_BIN", "/usr/lib/postgresql/15/bin"))
USER = "postgres"  # the operating-system user the server runs as, and its database superuser


def why_unavailable() -> str | None:
    """Why this machine cannot run the server (None when it can)."""
    if not (PG_BIN / "postgres").is_file() or not (PG_BIN / "initdb").is_file():
        return f"no PostgreSQL server binaries in {PG_BIN}: apt-get install postgresql-15 (or set LIGHTNING_CNN_PG_BIN)"
    if os.geteuid() != 0 or shutil.which("runuser") is None:
        return "the PostgreSQL tests run the server as the postgres user through runuser, which needs root"
    try:
        pwd.getpwnam(USER)
    except KeyError:
        return f"no {USER} user to run the PostgreSQL server as"
    if not installed("psycopg2"):
        return "psycopg2 is not installed: pip install psycopg2-binary"
    return None


def free_port() -> int:
    """A TCP port of 127.0.0.1 that nothing listens on now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class PostgresServer:
    """A server in a fresh temporary folder (``start``; ``stop`` ends it and deletes the folder). Databases made
    with ``create_database`` accept the ``postgres`` user without a password, from 127.0.0.1 only."""

    def __init__(self) -> None:
        # not under pytest's temporary folders: those are readable by root alone, and the server runs as postgres
        self.root = Path(tempfile.mkdtemp(prefix="lightning-cnn-postgres-"))
        shutil.chown(self.root, USER)
        self.data = self.root / "data"
        self.port = 0

    def run(self, *args: str) -> None:
        """Run a server binary as the postgres user; its output is in the error when it fails."""
        command = ["runuser", "-u", USER, "--", str(PG_BIN / args[0]), *args[1:]]
        done = subprocess.run(command, cwd=self.root, capture_output=True, text=True, timeout=60)
        if done.returncode != 0:
            log = self.root / "server.log"
            server_log = log.read_text()[-2000:] if log.is_file() else ""
            raise RuntimeError(f"{' '.join(command)} failed:\n{done.stdout}{done.stderr}{server_log}")

    def start(self) -> None:
        self.run(
            "initdb", "-D", str(self.data), "-U", USER, "--auth=trust", "--no-sync", "-E", "UTF8", "--no-instructions"
        )
        for attempt in range(3):  # another process may take the free port before the server does
            self.port = free_port()
            options = (
                f"-c listen_addresses=127.0.0.1 -p {self.port} -c unix_socket_directories=''"
                " -c fsync=off -c synchronous_commit=off -c full_page_writes=off"  # a test server: speed over safety
            )
            try:
                self.run("pg_ctl", "start", "-D", str(self.data), "-l", str(self.root / "server.log"), "-w", "-t", "30",
                         "-o", options)  # fmt: skip
                return
            except RuntimeError:
                if attempt == 2:
                    raise

    def stop(self) -> None:
        try:
            if (self.data / "postmaster.pid").is_file():
                self.run("pg_ctl", "stop", "-D", str(self.data), "-m", "fast", "-w", "-t", "30")
        finally:
            shutil.rmtree(self.root, ignore_errors=True)

    def url(self, database: str = "postgres", driver: str = "") -> str:
        """The database's URL; ``driver`` (``+psycopg2``) pins the driver where SQLAlchemy's default is another."""
        return f"postgresql{driver}://{USER}@127.0.0.1:{self.port}/{database}"

    def create_database(self, name: str) -> None:
        import psycopg2

        connection = psycopg2.connect(host="127.0.0.1", port=self.port, user=USER, dbname="postgres")
        try:
            connection.autocommit = True  # CREATE DATABASE cannot run in a transaction
            with connection.cursor() as cursor:
                cursor.execute(f'CREATE DATABASE "{name}"')
        finally:
            connection.close()
