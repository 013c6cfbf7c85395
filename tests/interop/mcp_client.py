"""Drives the hub's /mcp endpoint with the official Python MCP SDK (`mcp`, pinned in
tests/interop/requirements.txt) and checks what a real client sees.

Usage: python mcp_client.py URL TOKEN CONVERSATION_ID MODE
  URL              the MCP endpoint, e.g. http://127.0.0.1:8080/mcp
  TOKEN            a bot's bearer token
  CONVERSATION_ID  a conversation of the bot's tenant that can take a message
  MODE             auto   - 2026-07-28: server/discover, no session
                   legacy - the initialize handshake and an Mcp-Session-Id

Exits 0 and prints one summary line when every check passes; otherwise prints
"mcp_client FAILED [MODE]: ..." to stderr and exits 1 (2 for bad usage).
tests/api/mcp_interop.rs runs it against a hub started by the test.
"""

from __future__ import annotations

import asyncio
import importlib.metadata
import sys
import time
import traceback
from typing import Any

import httpx2  # mcp 2.x is built on httpx2, not httpx
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.exceptions import MCPError

TOOLS = {
    "list_conversations",
    "get_conversation",
    "send_message",
    "transfer_conversation",
    "assign_conversation",
    "close_conversation",
    "reopen_conversation",
    "add_note",
    "search_contacts",
    "queue_stats",
    "agent_status",
    "summarize_conversation",
    "handoff_to_ai",
}
MODERN_VERSION = "2026-07-28"


class CheckFailed(Exception):
    pass


def check(ok: bool, what: str) -> None:
    if not ok:
        raise CheckFailed(what)


def text_of(result: Any) -> str:
    return " ".join(getattr(c, "text", "") for c in result.content)


async def list_all_tools(client: Client) -> list[Any]:
    tools: list[Any] = []
    cursor = None
    for _ in range(100):
        page = await client.list_tools(cursor=cursor)
        tools.extend(page.tools)
        cursor = page.next_cursor
        if not cursor:
            return tools
    raise CheckFailed("tools/list kept returning a next cursor")


async def listed_ids(client: Client) -> list[str]:
    """Every conversation id list_conversations returns, following next_offset."""
    ids: list[str] = []
    offset = 0
    for _ in range(100):
        res = await client.call_tool("list_conversations", {"offset": offset})
        check(res.is_error is False, f"list_conversations refused: {text_of(res)}")
        sc = res.structured_content
        check(isinstance(sc, dict), f"list_conversations has no structured content: {res}")
        for key in ("total", "offset", "next_offset", "conversations"):
            check(key in sc, f"list_conversations result lacks {key!r}: {sc}")
        for conv in sc["conversations"]:
            for key in ("id", "status", "queue", "agent", "channel", "contact", "ticket"):
                check(key in conv, f"listed conversation lacks {key!r}: {conv}")
            ids.append(conv["id"])
        if sc["next_offset"] is None:
            return ids
        offset = sc["next_offset"]
    raise CheckFailed("list_conversations kept returning a next_offset")


async def run(url: str, token: str, conversation_id: str, mode: str) -> str:
    # Headers go on the httpx2 client: mcp's Client has no headers parameter.
    http = httpx2.AsyncClient(
        headers={"Authorization": f"Bearer {token}"},
        timeout=httpx2.Timeout(30, read=120),
    )
    async with http, Client(streamable_http_client(url, http_client=http), mode=mode) as client:
        version = client.protocol_version
        if mode == "auto":
            check(version == MODERN_VERSION, f"negotiated {version!r}, expected {MODERN_VERSION!r}")
        else:
            check(version.startswith("2025-"), f"negotiated {version!r}, expected a 2025-xx handshake revision")

        tools = await list_all_tools(client)
        names = {t.name for t in tools}
        check(TOOLS <= names, f"tools/list lacks {sorted(TOOLS - names)}; got {sorted(names)}")
        for tool in tools:
            schema = tool.input_schema
            check(
                isinstance(schema, dict) and schema.get("type") == "object",
                f"tool {tool.name} input schema is not an object schema: {schema!r}",
            )

        ids = await listed_ids(client)
        check(conversation_id in ids, f"list_conversations does not list {conversation_id}; got {ids}")

        text = f"mcp interop {mode} {time.time_ns()}"
        res = await client.call_tool("send_message", {"conversation_id": conversation_id, "text": text})
        check(res.is_error is False, f"send_message refused: {text_of(res)}")
        sc = res.structured_content or {}
        check(sc.get("outcome") == "applied", f"send_message outcome is not 'applied': {sc}")
        check(
            (sc.get("conversation") or {}).get("id") == conversation_id,
            f"send_message answered about another conversation: {sc}",
        )

        res = await client.call_tool("queue_stats", {})
        check(res.is_error is False, f"queue_stats refused: {text_of(res)}")
        queues = [q.get("queue") for q in (res.structured_content or {}).get("queues", [])]
        check({"vendas", "suporte"} <= set(queues), f"queue_stats lacks vendas/suporte: {queues}")

        bogus = "demo:whatsapp.main:0000000000000"
        res = await client.call_tool("get_conversation", {"conversation_id": bogus})
        check(res.is_error is True, f"get_conversation of a bogus id is not isError: {res}")
        check("not found" in text_of(res), f"get_conversation of a bogus id does not say 'not found': {text_of(res)!r}")

        try:
            res = await client.call_tool("no_such_tool", {})
        except MCPError as e:
            check(e.code == -32602, f"unknown tool gave code {e.code} ({e.message!r}), expected -32602")
        else:
            raise CheckFailed(f"unknown tool did not raise a protocol error: {res}")

        return (
            f"mcp_client ok [{mode}] mcp {importlib.metadata.version('mcp')}: protocol {version}, "
            f"{len(tools)} tools, {len(ids)} conversation(s) listed, sent {text!r}, queues {queues}"
        )


def leaf(exc: BaseException) -> BaseException:
    """The first real error inside (nested) ExceptionGroups: anyio task groups wrap them."""
    while isinstance(exc, BaseExceptionGroup) and exc.exceptions:
        exc = exc.exceptions[0]
    return exc


def main() -> int:
    if len(sys.argv) != 5 or sys.argv[4] not in ("auto", "legacy"):
        print(__doc__, file=sys.stderr)
        return 2
    url, token, conversation_id, mode = sys.argv[1:]
    try:
        print(asyncio.run(run(url, token, conversation_id, mode)), flush=True)
        return 0
    except CheckFailed as e:
        print(f"mcp_client FAILED [{mode}]: {e}", file=sys.stderr)
    except BaseException as e:  # noqa: BLE001 - errors arrive wrapped in (nested) ExceptionGroups
        traceback.print_exc()
        cause = leaf(e)
        if isinstance(cause, CheckFailed):
            print(f"mcp_client FAILED [{mode}]: {cause}", file=sys.stderr)
        else:
            code = f" (code {cause.code})" if isinstance(cause, MCPError) else ""
            print(f"mcp_client FAILED [{mode}]: {type(cause).__name__}{code}: {cause}", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())
