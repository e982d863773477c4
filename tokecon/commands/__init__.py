"""One function per subcommand; each builds a :class:`tokecon.results.Result` (plain data)."""
