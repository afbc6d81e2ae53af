"""Hostile input answers 422 in the envelope, never 500: integers past the columns' range,
NUL in text, names that are only whitespace, null where a value may only be left out."""

from typing import Any

import pytest
from httpx import AsyncClient

URL = "/api/v1/items"


def _validation_error(response: Any) -> list[dict[str, Any]]:
    assert response.status_code == 422, response.text
    error = response.json()["error"]
    assert error["code"] == "validation_error"
    details: list[dict[str, Any]] = error["details"]
    return details


@pytest.mark.parametrize("item_id", ["2147483648", "9223372036854775808", "0", "-1"])
@pytest.mark.parametrize("method", ["GET", "PATCH", "DELETE"])
async def test_ids_outside_the_column_range_are_422(
    client: AsyncClient, method: str, item_id: str
) -> None:
    response = await client.request(method, f"{URL}/{item_id}", json={"name": "x"})
    [detail] = _validation_error(response)
    assert detail["loc"] == ["path", "item_id"]


async def test_the_largest_id_is_a_plain_404(client: AsyncClient) -> None:
    response = await client.get(f"{URL}/2147483647")
    assert response.status_code == 404


@pytest.mark.parametrize("page", ["4611686018427387904", "2147483648"])
async def test_pages_past_the_offset_range_are_422(client: AsyncClient, page: str) -> None:
    [detail] = _validation_error(await client.get(URL, params={"page": page}))
    assert detail["loc"] == ["query", "page"]


async def test_the_last_allowed_page_is_empty(client: AsyncClient) -> None:
    response = await client.get(URL, params={"page": "2147483647", "size": "100"})
    assert response.status_code == 200
    assert response.json()["items"] == []


@pytest.mark.parametrize(
    "body",
    [
        {"name": "nul\x00inside"},
        {"name": "ok", "description": "nul\x00inside"},
        {"name": " \t\u3000\x1c "},
    ],
)
async def test_text_the_database_cannot_hold_is_422(
    client: AsyncClient, body: dict[str, str]
) -> None:
    _validation_error(await client.post(URL, json=body))


async def test_nul_in_the_name_filter_is_422(client: AsyncClient) -> None:
    [detail] = _validation_error(await client.get(URL, params={"name": "a\x00b"}))
    assert detail["loc"] == ["query", "name"]


async def test_name_may_be_left_out_of_a_patch_but_not_set_to_null(client: AsyncClient) -> None:
    created = (await client.post(URL, json={"name": "Widget"})).json()
    kept = await client.patch(f"{URL}/{created['id']}", json={"description": "d"})
    assert kept.status_code == 200
    assert kept.json()["name"] == "Widget"
    _validation_error(await client.patch(f"{URL}/{created['id']}", json={"name": None}))


async def test_the_schema_says_what_is_refused(client: AsyncClient) -> None:
    schema = (await client.get("/openapi.json")).json()
    create = schema["components"]["schemas"]["ItemCreate"]["properties"]
    update = schema["components"]["schemas"]["ItemUpdate"]["properties"]
    assert "pattern" in create["name"]
    assert update["name"]["type"] == "string"  # no null
    item_id = schema["paths"][URL + "/{item_id}"]["get"]["parameters"][0]["schema"]
    assert (item_id["minimum"], item_id["maximum"]) == (1, 2**31 - 1)
