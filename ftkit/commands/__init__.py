"""The command line of each stage: what `ftkit <stage>` and the guide's `scripts/*.py` run.

Each module has a `main()` that parses its flags (its `--help` is the module's docstring) and raises
`UserError` for anything the user can fix; `ftkit.core.cli.run` turns that into a one-line error and exit 2.
"""
