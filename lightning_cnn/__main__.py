"""The one command line, ``lightning-cnn`` (or ``python -m lightning_cnn``): Lightning's subcommands
(``lightning_cnn.cli``) and every tool (``lightning_cnn.tools``), and the error boundary around all of them.

Whatever goes wrong ends as one ``error:`` line and a non-zero exit: 2 for a mistake in the command or its config, 1 for
anything else; ``LIGHTNING_CNN_DEBUG=1`` shows the traceback.
"""

from __future__ import annotations

import errno
import importlib
import importlib.util
import os
import sys
import threading
from collections.abc import Sequence

from lightning_cnn.tools import TOOLS

PROG = "lightning-cnn"
DEBUG_ENV_VAR = "LIGHTNING_CNN_DEBUG"

# Lightning's subcommands, run by the LightningCLI in ``lightning_cnn.cli``.
LIGHTNING_SUBCOMMANDS: dict[str, str] = {
    "fit": "train a model (and test it with --test_after_fit true)",
    "validate": "evaluate a checkpoint on the validation split",
    "test": "evaluate a checkpoint on the test split and write the report",
    "predict": "predict the test split with a checkpoint",
}

# Optional extras of the package (pyproject.toml) and the modules each brings: a tool that needs one says so.
EXTRAS: dict[str, tuple[str, ...]] = {
    "search": ("optuna",),
    "export": ("onnx", "onnxscript", "onnxruntime"),
}


def usage() -> str:
    """The top-level help: every subcommand and tool with one line each."""
    width = max(map(len, [*LIGHTNING_SUBCOMMANDS, *TOOLS]))
    lines = [
        f"usage: {PROG} SUBCOMMAND [options]   ({PROG} SUBCOMMAND --help for its options)",
        "",
        "Lightning subcommands (one config for all; --config FILE, --model NAME, --data NAME, --trainer.KEY VALUE):",
        *(f"  {name:<{width}}  {text}" for name, text in LIGHTNING_SUBCOMMANDS.items()),
        "",
        "tools:",
        *(f"  {name:<{width}}  {text}" for name, (_, text) in TOOLS.items()),
        "",
        f"Set {DEBUG_ENV_VAR}=1 to see the traceback behind an error.",
    ]
    return "\n".join(lines)


# what to do about a file-system error, by its errno; any other: the generic advice
OS_ERROR_ADVICE = {
    errno.ENOSPC: "free space or choose another folder",
    errno.EDQUOT: "free space or choose another folder",
    errno.EACCES: "fix its permissions or choose another folder",
    errno.EPERM: "fix its permissions or choose another folder",
    errno.EROFS: "the file system is read-only: choose another folder",
    errno.EEXIST: "a file stands where a folder is needed: move it or choose another path",
    errno.ENOTDIR: "a part of the path is a file, not a folder: choose another path",
    errno.EISDIR: "that is a folder: give the path of a file in it",
}


def describe(err: BaseException) -> str:
    """One line for any exception: the user-facing message where there is one, else what failed and on which
    path, else the exception itself with the way to its traceback; then what a failed run kept."""
    line = _describe(err)
    notes = getattr(err, "__notes__", None) or []  # what the failed run kept (added by the CLI)
    return "; ".join([line, *(" ".join(str(note).split()) for note in notes)])


def _describe(err: BaseException) -> str:
    from lightning_cnn.errors import exception_chain, user_error

    found = user_error(err)
    if found is not None:
        return " ".join(str(found).split())
    os_error = next((e for e in exception_chain(err) if isinstance(e, OSError) and e.strerror), None)
    if os_error is not None:
        path = os_error.filename or ""
        path2 = f" -> {os_error.filename2}" if os_error.filename2 else ""
        where = f": {path}{path2}" if path else ""
        advice = OS_ERROR_ADVICE.get(os_error.errno, "free space, fix permissions or choose another folder")
        return f"{os_error.strerror}{where}; {advice}"
    text = " ".join(str(err).split())[:300]
    return f"{type(err).__name__}: {text} (set {DEBUG_ENV_VAR}=1 for the traceback)"


def check_extra(tool: str) -> None:
    """A tool whose optional dependencies are missing fails with the pip command that installs them."""
    from lightning_cnn.errors import require

    if tool in EXTRAS:
        require(EXTRAS[tool], f"{PROG} {tool}")


def run(argv: Sequence[str], from_sys_argv: bool = False) -> None:
    """Run one subcommand or tool (errors propagate); ``from_sys_argv`` lets LightningCLI read ``sys.argv`` itself."""
    argv = list(argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(usage())
        return
    if argv[0] in TOOLS:
        check_extra(argv[0])
        module, _ = TOOLS[argv[0]]
        importlib.import_module(module).main(argv[1:])
        return
    from lightning_cnn.cli import cli_main
    from lightning_cnn.config_files import check_config_files

    argv = check_config_files(argv)
    if from_sys_argv:
        sys.argv[1:] = argv
    cli_main(None if from_sys_argv else argv)


def is_sigterm(exit_: SystemExit) -> bool:
    """Whether ``exit_`` is Lightning's ``SIGTERMException``, raised after the checkpoint callback saved its files.
    Looked up only when Lightning is loaded already: ``--help`` and the tools that never train start without it."""
    exceptions = sys.modules.get("lightning.pytorch.utilities.exceptions")
    return exceptions is not None and isinstance(exit_, exceptions.SIGTERMException)


def _thread_error(args: threading.ExceptHookArgs) -> None:
    """A file-system error in a writer thread (TensorBoard's, on a full disk) is raised again where the run next
    writes, and reported there in one line: the thread's own traceback only with the debug variable."""
    if isinstance(args.exc_value, OSError) and not os.environ.get(DEBUG_ENV_VAR):
        return
    threading.__excepthook__(args)


def main(args: Sequence[str] | None = None) -> None:
    """Console entry point: the error boundary of every subcommand and tool."""
    if sys.argv and sys.argv[0].endswith("__main__.py"):
        sys.argv[0] = "python -m lightning_cnn"
    argv = sys.argv[1:] if args is None else list(args)
    threading.excepthook = _thread_error
    try:
        run(argv, from_sys_argv=args is None)
    except KeyboardInterrupt:
        sys.stderr.write("interrupted\n")
        sys.exit(130)
    except SystemExit as exit_:
        if is_sigterm(exit_):
            sys.stderr.write("terminated by SIGTERM\n")
            sys.exit(143)
        raise
    except Exception as err:  # the one boundary: every failure becomes one line
        if os.environ.get(DEBUG_ENV_VAR):
            import traceback

            traceback.print_exception(err)
        from lightning_cnn.errors import exit_code, user_error

        sys.stderr.write(f"error: {describe(err)}\n")
        sys.exit(exit_code(user_error(err) or err))


if __name__ == "__main__":
    main()
