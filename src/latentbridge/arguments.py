"""The command line's parser (the CLI's and the edge scorer's): light, for devices without torch."""

from __future__ import annotations

import argparse
import os
import re
import sys


#: options whose empty value has a message of its own (`--device ''`, `--api-key ''`, `--out ''`, `--mz=`)
_OWN_MESSAGE = frozenset({"device", "api_key", "out", "mz"})


#: the CLI's commands (its parser fills it in): named where one is given under another command
TOP_COMMANDS: set[str] = set()


class ArgumentParser(argparse.ArgumentParser):
    """argparse's parser (the CLI's and the edge scorer's), whose usage errors also say how to pass a path that
    starts with '-' (MIMII's folders are named ``-6_dB_pump``): argparse reads it as an option, and said only "the
    following arguments are required: paths"."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        # values that read as negative numbers, not options: -inf, -nan, -1e400 too (`--threshold -inf` was "expected
        # one argument", where `--threshold=-inf` was refused by name)
        self._negative_number_matcher = re.compile(r"^-(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?$|^-(inf|infinity|nan)$", re.I)

    def parse_known_args(self, args=None, namespace=None):
        self.given = list(sys.argv[1:] if args is None else args)  # a subcommand's parser: the words it reads
        namespace, extras = super().parse_known_args(args, namespace)
        for action in self._actions:  # an empty word (`--config ""`) was read as the folder "." ("is a folder")
            value = getattr(namespace, action.dest, None)
            if action.dest in _OWN_MESSAGE:
                continue
            if any(isinstance(v, str) and not v.strip() for v in (value if isinstance(value, list) else [value])):
                self.error(f"argument {'/'.join(action.option_strings) or action.metavar or action.dest}: an empty "
                           "value")
        return namespace, extras

    def error(self, message):
        dashed = [a for a in getattr(self, "given", ()) if a[:1] == "-" and a not in ("-", "--") and os.path.lexists(a)]
        if dashed:
            message += (f" ({dashed[0]} starts with '-', so it was read as an option: give it as ./{dashed[0]}, or put "
                        "-- after the options, before the paths)")
        # a command of its own given under another (`anomaly export`: "invalid choice", no word of `export`)
        found = re.search(r"invalid choice: '([^']+)'", message)
        if found and found.group(1) in TOP_COMMANDS and self.prog.split()[1:]:
            message += f" (`{found.group(1)}` is a command of its own: latentbridge {found.group(1)} --help)"
        super().error(message)

    def _match_arguments_partial(self, actions, arg_strings_pattern):
        # a positional that may take no words (nargs "*" or "?") after another, with options between them and its
        # words, took none and left its words unrecognised (`anomaly calibrate RUN --method quantile NORMAL_DIR`):
        # it waits for the words after the options, as argparse itself does since CPython gh-59317
        counts = super()._match_arguments_partial(actions, arg_strings_pattern)
        end = sum(counts)  # where the positionals' match ends: the groups cover it
        if end < len(arg_strings_pattern) and arg_strings_pattern[end] == "O":
            while counts and not counts[-1]:
                counts.pop()
        return counts
