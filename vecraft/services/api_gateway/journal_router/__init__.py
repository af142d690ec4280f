"""Smart journal routing: data writes to the collection's data partition, session tokens,
journal payloads and their audit summaries."""
