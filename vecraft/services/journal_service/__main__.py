"""``python -m vecraft.services.journal_service``."""

from vecraft.services.journal_service.main import main

main()
