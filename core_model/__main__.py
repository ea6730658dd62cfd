from core_model.cli import run

run()
