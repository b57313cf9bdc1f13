"""What the values' unit tests share."""


def contact(**fields):
    return {"contact_id": "person_1", "updated_at": "2020-01-01T00:00:00Z", **fields}
