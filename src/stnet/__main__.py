"""``python -m stnet``: the ``stnet`` command, for an interpreter whose scripts folder is not on PATH."""
from stnet.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
