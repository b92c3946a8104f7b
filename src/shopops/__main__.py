"""`python -m shopops` is the `shopops` command."""

from shopops.cli.main import app

app(prog_name="shopops")
