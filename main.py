"""roam: walk through a video as a 4D world. `python main.py ...` is the `roam` command (cli/main.py)."""
from cli.main import exit_process, main, run

__all__ = ["exit_process", "main"]

if __name__ == "__main__":
    run()
