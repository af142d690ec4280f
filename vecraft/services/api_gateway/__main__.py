"""``python -m vecraft.services.api_gateway``."""

from vecraft.services.api_gateway.main import main

main()
