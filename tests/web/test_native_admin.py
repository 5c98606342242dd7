"""The native API's moderation routes, each through the core's moderator actions, as /admin does."""

from __future__ import annotations

import httpx

from tests.web.conftest import MEMBER_ID, MODERATOR_ID, bearer
from tests.web.native import API, balance, create


async def test_a_moderator_cancels_a_members_job_and_it_is_refunded(
    client: httpx.AsyncClient, member_key: str, moderator_key: str
) -> None:
    """The member's job shows in the admin queue with its member; cancelling it gives the credits back."""
    before = await balance(client, member_key)
    jobs = (await create(client, member_key, prompt="a tower --steps 60 --repeat 3")).json()["jobs"]
    listing = (await client.get(f"{API}/admin/queue", headers=bearer(moderator_key))).json()
    listed = [job for job in listing["running"] + listing["queued"] if job["user_id"] == MEMBER_ID]
    assert {job["id"] for job in listed} == {job["id"] for job in jobs}
    assert listing["summary"]["total_queued"] + listing["summary"]["running"] >= 3
    for job in jobs:
        response = await client.post(
            f"{API}/admin/jobs/{job['id']}/cancel", json={"reason": "test"}, headers=bearer(moderator_key)
        )
        assert response.status_code == 200, response.text
        assert response.json()["status"] == "cancelled" and response.json()["user_id"] == MEMBER_ID
    assert await balance(client, member_key) == before
    missing = await client.post(f"{API}/admin/jobs/999999999/cancel", headers=bearer(moderator_key))
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "job_not_found"


async def test_credits_tiers_and_the_account(client: httpx.AsyncClient, member_key: str, moderator_key: str) -> None:
    """give, take and set move the balance (audited in the ledger); a tier change shows; a refused change is 400."""
    start = await balance(client, member_key)
    url = f"{API}/admin/credits"
    mod = bearer(moderator_key)
    given = await client.post(
        url, json={"user_id": MEMBER_ID, "change": "give", "amount": 7, "reason": "a"}, headers=mod
    )
    assert given.json() == {"user_id": MEMBER_ID, "balance": start + 7}
    taken = await client.post(
        url, json={"user_id": MEMBER_ID, "change": "take", "amount": 2, "reason": "b"}, headers=mod
    )
    assert taken.json()["balance"] == start + 5
    zero = await client.post(
        url, json={"user_id": MEMBER_ID, "change": "give", "amount": 0, "reason": "c"}, headers=mod
    )
    assert zero.status_code == 422 and zero.json()["error"]["code"] == "invalid_request"
    tier = await client.post(f"{API}/admin/tier", json={"user_id": MEMBER_ID, "tier": "supporter"}, headers=mod)
    assert tier.json()["tier"] == "supporter" and tier.json()["user_id"] == MEMBER_ID
    unknown = await client.post(f"{API}/admin/tier", json={"user_id": MEMBER_ID, "tier": "gold"}, headers=mod)
    assert unknown.status_code == 400 and "gold" in unknown.json()["error"]["message"]
    account = (await client.get(f"{API}/admin/accounts/{MEMBER_ID}", headers=mod)).json()
    assert account["member"]["tier"] == "supporter" and account["member"]["balance"] == tier.json()["balance"]
    changes = [(entry["kind"], entry["delta"]) for entry in account["entries"]]
    assert changes.index(("take", -2)) < changes.index(("grant", 7))  # newest first
    stranger = (await client.get(f"{API}/admin/accounts/5", headers=mod)).json()
    assert stranger == {"user_id": 5, "member": None, "entries": []}


async def test_a_moderator_cannot_ban_themselves_and_stats_count_jobs(
    client: httpx.AsyncClient, member_key: str, moderator_key: str
) -> None:
    """Banning oneself is refused with Discord's text; the day's stats count the jobs queued."""
    mod = bearer(moderator_key)
    refused = await client.post(f"{API}/admin/ban", json={"user_id": MODERATOR_ID, "reason": "x"}, headers=mod)
    assert refused.status_code == 400 and refused.json()["error"]["message"] == "you cannot ban yourself"
    await create(client, member_key, prompt="a kite --relax")
    stats = (await client.get(f"{API}/admin/stats", headers=mod)).json()
    assert stats["jobs"] == 1 and stats["members"] == 1
