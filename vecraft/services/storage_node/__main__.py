"""``python -m vecraft.services.storage_node``."""

from vecraft.services.storage_node.main import main

if __name__ == "__main__":
    main()
