from typing import Any

from httpx import AsyncClient

URL = "/api/v1/items"


async def create(client: AsyncClient, name: str, **fields: Any) -> dict[str, Any]:
    response = await client.post(URL, json={"name": name, **fields})
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


async def names(client: AsyncClient, **params: str) -> list[str]:
    response = await client.get(URL, params=params)
    return [item["name"] for item in response.json()["items"]]


async def test_create_then_read(client: AsyncClient) -> None:
    created = await create(client, "  Widget  ", description="A small part")
    assert created["name"] == "Widget"
    assert created["description"] == "A small part"
    assert created["updated_at"] >= created["created_at"]

    response = await client.get(f"{URL}/{created['id']}")
    assert response.status_code == 200
    assert response.json() == created


async def test_update_changes_only_sent_fields_and_touches_updated_at(client: AsyncClient) -> None:
    created = await create(client, "Widget", description="old")
    response = await client.patch(f"{URL}/{created['id']}", json={"description": "new"})
    assert response.status_code == 200
    updated = response.json()
    assert updated["name"] == "Widget"
    assert updated["description"] == "new"
    assert updated["updated_at"] > created["updated_at"]
    assert updated["created_at"] == created["created_at"]


async def test_delete_then_404(client: AsyncClient) -> None:
    created = await create(client, "Widget")
    assert (await client.delete(f"{URL}/{created['id']}")).status_code == 204
    assert (await client.get(f"{URL}/{created['id']}")).status_code == 404
    assert (await client.delete(f"{URL}/{created['id']}")).status_code == 404


async def test_missing_item_is_404_in_the_envelope_with_the_request_id(
    client: AsyncClient,
) -> None:
    response = await client.get(f"{URL}/999999", headers={"X-Request-ID": "trace-me-42"})
    assert response.status_code == 404
    assert response.headers["x-request-id"] == "trace-me-42"
    assert response.json() == {
        "error": {
            "code": "item_not_found",
            "message": "Item 999999 was not found.",
            "details": {"id": 999999},
            "request_id": "trace-me-42",
        }
    }


async def test_duplicate_name_is_409(client: AsyncClient) -> None:
    await create(client, "Widget")
    response = await client.post(URL, json={"name": "Widget"})
    assert response.status_code == 409
    assert response.json()["error"]["code"] == "item_name_taken"
    # The request's transaction survived the refused insert: the table still works.
    assert (await client.get(URL)).json()["total"] == 1


async def test_renaming_onto_an_existing_name_is_409(client: AsyncClient) -> None:
    await create(client, "Widget")
    other = await create(client, "Gadget")
    response = await client.patch(f"{URL}/{other['id']}", json={"name": "Widget"})
    assert response.status_code == 409
    assert (await client.get(f"{URL}/{other['id']}")).json()["name"] == "Gadget"


async def test_invalid_input_is_422_in_the_envelope(client: AsyncClient) -> None:
    response = await client.post(URL, json={"name": "", "colour": "red"})
    assert response.status_code == 422
    error = response.json()["error"]
    assert error["code"] == "validation_error"
    assert error["request_id"] == response.headers["x-request-id"]
    problems = {tuple(detail["loc"]): detail["type"] for detail in error["details"]}
    assert problems == {("body", "name"): "string_too_short", ("body", "colour"): "extra_forbidden"}


async def test_name_cannot_be_patched_to_null(client: AsyncClient) -> None:
    created = await create(client, "Widget")
    response = await client.patch(f"{URL}/{created['id']}", json={"name": None})
    assert response.status_code == 422


async def test_list_paginates_filters_and_sorts(client: AsyncClient) -> None:
    for name in ["cherry", "apple", "banana", "Apple pie", "100%_real"]:
        await create(client, name)

    page = (await client.get(URL, params={"size": 2, "page": 2})).json()
    assert (page["total"], page["page"], page["size"], page["pages"]) == (5, 2, 2, 3)
    assert [item["name"] for item in page["items"]] == ["banana", "Apple pie"]

    found = (await client.get(URL, params={"name": "APPLE", "sort": "-id"})).json()
    assert [item["name"] for item in found["items"]] == ["Apple pie", "apple"]

    # LIKE wildcards in the filter are matched literally.
    literal = (await client.get(URL, params={"name": "%_"})).json()
    assert [item["name"] for item in literal["items"]] == ["100%_real"]

    ascending = await names(client, sort="name")
    descending = await names(client, sort="-name")
    assert descending == ascending[::-1]
    assert ascending.index("apple") < ascending.index("banana") < ascending.index("cherry")


async def test_list_refuses_bad_paging_and_unknown_sort(client: AsyncClient) -> None:
    for params in ({"size": 101}, {"page": 0}, {"sort": "price"}):
        response = await client.get(URL, params=params)
        assert response.status_code == 422, params
        assert response.json()["error"]["code"] == "validation_error"
