"""Ctrl-C and SIGTERM: raised as interrupts that unwind the command (temporary outputs removed, locks released), and
said in one line with the exit code a shell expects (130, 143)."""

from __future__ import annotations

import sys

from latentbridge import utils


class Terminated(KeyboardInterrupt):
    """SIGTERM (``timeout``, Slurm, ``kill``, a container stopping) raised as an interrupt, so that it unwinds
    like Ctrl-C: temporary outputs removed, locks released, nothing half-written left."""


def _terminate(signum, frame):
    raise Terminated()


def on_sigterm() -> None:
    import signal
    import threading

    if threading.current_thread() is threading.main_thread() and signal.getsignal(signal.SIGTERM) in (
            signal.SIG_DFL, None):
        signal.signal(signal.SIGTERM, _terminate)


def stopped(e: KeyboardInterrupt, args) -> int:
    """Say that the command of ``args`` was stopped (with what it left: :func:`~latentbridge.outputs.stopped_hint`);
    its exit code."""
    from latentbridge.outputs import stopped_hint

    utils.close_progress_bars()
    print(("terminated" if isinstance(e, Terminated) else "interrupted") + stopped_hint(args), file=sys.stderr)
    return 143 if isinstance(e, Terminated) else 130
