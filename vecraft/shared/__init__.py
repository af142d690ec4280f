"""Code shared by every Vecraft service: data model, wire stubs, clock, indexes, utilities."""
