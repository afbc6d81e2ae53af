from ...core.errors import ConflictError, NotFoundError


class ItemNotFoundError(NotFoundError):
    code = "item_not_found"

    def __init__(self, item_id: int) -> None:
        super().__init__(f"Item {item_id} was not found.", details={"id": item_id})


class ItemNameTakenError(ConflictError):
    code = "item_name_taken"

    def __init__(self, name: str) -> None:
        super().__init__(f"An item named {name!r} already exists.", details={"name": name})
