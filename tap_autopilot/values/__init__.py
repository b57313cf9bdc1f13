"""Values: converting what the API sends to the schema's types, and cleaning what warehouses refuse."""
