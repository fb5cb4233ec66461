from eksplain.cli.main import run

run()
