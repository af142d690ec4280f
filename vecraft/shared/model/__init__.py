"""The data model shared by every service: schema, records, filters, consistency levels, routing."""
