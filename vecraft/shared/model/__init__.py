"""The data model shared by every service: schema, records, filters, consistency levels, routing,
request limits and the validation the gateway runs before anything reaches the journal."""
