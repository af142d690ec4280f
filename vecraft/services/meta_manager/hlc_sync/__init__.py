"""HLC coordination: services report their clocks; the manager keeps the high-water mark."""

from vecraft.services.meta_manager.hlc_sync.coordinator import HlcCoordinator, HlcReport

__all__ = ["HlcCoordinator", "HlcReport"]
