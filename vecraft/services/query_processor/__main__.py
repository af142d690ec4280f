"""``python -m vecraft.services.query_processor``."""

from vecraft.services.query_processor.main import main

if __name__ == "__main__":
    main()
