"""Report steps: each turns a task's result into the files of an output folder (``metrics.json``,
CSV, plots, example audio, ``report.html``). Tasks compute; these write; the CLI and the server
call both."""
