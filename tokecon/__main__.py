from tokecon.cli.main import run

run()
