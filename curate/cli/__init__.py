"""The ``curate`` command line: one module per command, each thin (parse, call one function, print)."""
