"""``python -m bot``."""

import sys

if __name__ == "__main__":  # not when multiprocessing's engine process imports this module to prepare itself
    code: int | None = None
    try:
        from bot.operations.cli import main
        from bot.operations.interrupts import exit_at_once_on_stop_signal

        code = main()
        exit_at_once_on_stop_signal(code)  # what is left is the interpreter's exit
    except KeyboardInterrupt:  # Ctrl-C before a command could see it (while Python imports and reads settings)
        if code is None:
            print("interrupted", file=sys.stderr)
            code = 130
    sys.exit(code)
